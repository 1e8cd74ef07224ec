"""Process memory-allocator settings for fitting processes.

The kernel allocates the same few hundred kilobyte-to-megabyte tensors thousands of times
per job. Under glibc's defaults such blocks are mapped fresh from the kernel (above the
128 KiB mmap threshold) or handed back when the top of the heap is trimmed, so every
iteration pays page faults on memory it just freed: up to 160,000 faults and ~2/3 of
the wall time of a small recovery job (docs/kernel.md, "Memory, device, allocator"). Keeping freed
memory in the process removes them; the peak is unchanged, freed memory is only returned
to the system later.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

# mallopt(3) parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 2**20  # glibc's own ceiling for its adaptive threshold
TOP_PAD = 64 * 2**20
TRIM_THRESHOLD = 2**30


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to reuse freed blocks instead of returning them to the
    system between iterations: blocks below 32 MiB come from the heap, the heap grows in
    64 MiB steps and is trimmed only when 1 GiB at its top is free.

    Returns whether the settings were applied (False on a C library other than glibc,
    where the call does nothing). Affects the whole process from the call on.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    ok = all(libc.mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TOP_PAD, TOP_PAD),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
    if not ok:
        log.debug("mallopt refused an allocator setting; glibc defaults stay")
    return ok

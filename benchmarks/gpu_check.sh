#!/usr/bin/env bash
# The GPU path in one prepared check, meant to finish within 10 minutes on one GPU:
#   1. the device torch sees;
#   2. the GPU target fit: 1,854 objects, 4.2M triplets, d = 1,024, float32, the
#      config's tolerances (benchmarks/scaling.py --target-point);
#   3. the THINGS rehearsal (config/things_rehearsal.yaml: 1,854 concepts, 20 candidate
#      models) reduced to two generators, run end to end with fitting.device set to the
#      device: every rule, from generating the world to the report's figures.
# It prints the device, each part's wall time, and each rule's wall time and peak memory
# (resident, from Snakemake's benchmark files; on CUDA the allocator's peak, from each
# fitting job's last log line).
#
#   bash benchmarks/gpu_check.sh        # from the environment `make venv` builds
#
# Settings, from the environment: DEVICE (cuda; cpu runs the same steps on the CPU),
# CONFIG (the study; config/things_rehearsal.yaml), GENERATORS (net14_d net20_twin),
# SIZES (1000 10000 100000), TARGET_TRIPLETS (4200000), CORES (all), WORK (a new
# temporary folder; the rehearsal's files stay there).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/.venv/bin
[ -x "$bin/python" ] || bin=$(dirname "$(command -v python3)")
export PATH="$bin:$PATH"
device=${DEVICE:-cuda}
config=${CONFIG:-$root/config/things_rehearsal.yaml}
work=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")}
mkdir -p "$work"
work=$(cd "$work" && pwd)
start=$SECONDS

echo "== 1. device"
python - "$device" <<'EOF'
import sys
import torch
device = sys.argv[1]
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}")
if device.startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit(f"gpu_check: DEVICE={device} but torch sees no CUDA device "
                 f"(CUDA build {torch.version.cuda}); install a CUDA build of torch or "
                 f"run with DEVICE=cpu")
    props = torch.cuda.get_device_properties(torch.device(device))
    print(f"device: {props.name}, {props.total_memory / 2**30:.1f} GiB")
else:
    print(f"device: {device} ({torch.get_num_threads()} threads)")
EOF

echo "== 2. the target fit (1,854 objects, ${TARGET_TRIPLETS:-4200000} triplets, d = 1,024)"
t0=$SECONDS
python "$root/benchmarks/scaling.py" --device "$device" \
    --target-point "[1854, 1024, ${TARGET_TRIPLETS:-4200000}, 0.001]" > "$work/target.json"
python - "$work/target.json" "$device" <<'EOF'
import json, sys
row = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
kind = "the CUDA allocator's" if sys.argv[2].startswith("cuda") else "resident"
print(f"fit: {row['seconds']:.2f} s, {row['iterations']} iterations ({row['status']}), "
      f"{row['mode']} mode, peak memory {row['peak_memory_mb'] / 1024:.2f} GiB ({kind}; "
      f"the memory model: {row['estimated_memory_mb'] / 1024:.2f} GiB)")
EOF
echo "part 2: $((SECONDS - t0)) s"

echo "== 3. the rehearsal end to end ($work)"
# The overlay is written by Python from the settings as data: nothing in them is run.
python - "$work/overlay.yaml" "$device" "${GENERATORS:-net14_d net20_twin}" \
    "${SIZES:-1000 10000 100000}" <<'EOF'
import json, sys
out, device, generators, sizes = sys.argv[1:]
json.dump({"results": "results", "generators": generators.split(),
           "simulation": {"training_sizes": [int(n) for n in sizes.split()]},
           "fitting": {"device": device}}, open(out, "w"))
EOF
t0=$SECONDS
snakemake -s "$root/workflow/Snakefile" -d "$work" --configfile "$config" "$work/overlay.yaml" \
    --cores "${CORES:-all}" --quiet rules
echo "part 3: $((SECONDS - t0)) s"
python "$root/benchmarks/rule_times.py" "$work"
echo "total: $((SECONDS - start)) s"

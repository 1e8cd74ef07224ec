"""Importers for real data: THINGS odd-one-out triplets, object lists and model features.

Every reader validates everything before anything is written and raises
:class:`~modelrecovery.errors.InputError` naming the file, the place (a 1-based *data row*
of a table with a header, a 1-based *line* of a text file, or a 0-based object row of an
array; each message says which) and the rule that was broken. The ``import_*`` functions
write through :mod:`modelrecovery.io`, whose writers are atomic, and only after all
validation has passed, so a refused import leaves no output behind.

Formats (see the function docstrings for details):

- THINGS behaviour file as published on OSF (project f5rn6,
  ``data/triplet_dataset/triplets_large_final_correctednc_correctedorder.csv``): despite
  its name TAB-separated with a header. The preprocessing script that wrote it gives the
  header ``image1 image2 image3 choice RT noise_ceiling subject_id HIT_nr trial_nr age
  gender date time`` plus a ``dataset`` column appended when the four collection batches
  were combined. Only ``image1..3``, ``choice``, ``subject_id`` and ``noise_ceiling`` are
  used; every other column is ignored. ``choice`` is the 1-based position of the odd one
  out among ``image1..image3`` (the same script derives ``testset*.txt`` by moving that
  image last), ``noise_ceiling`` is 0 for the training data and 1, 2, 3 for the repeated
  test sets.
- older THINGS triplet arrays (``trainset.txt``, ``testset1.txt``, ...): three 0-based
  indices per line, space-separated, odd one out last; or the same as ``.npy``.
- thingsvision's ``save_features(features, out_path, file_format)`` (module
  ``thingsvision.utils.storing``) writes ``out_path/features.npy`` (``np.save``),
  ``features.txt`` (``np.savetxt``, space-separated), ``features.pt`` (``torch.save`` of a
  tensor), ``features.hdf5`` (one dataset named ``features``) or ``features.mat``
  (``scipy.io.savemat``: one variable per image named after ``file_names.txt`` in the
  same folder, or a single variable ``features`` when that list is absent). When saving
  runs out of memory it splits rows into ``features_01.npy``, ``features_02.npy``, ...
  (for HDF5: datasets ``features_01``, ... in one file). Rows follow ``file_names.txt``,
  the order thingsvision's ``ImageDataset`` read the images in: that order must be the
  object order of ``objects.parquet``.

Modules: :mod:`.things` (THINGS triplets), :mod:`.objects` (object lists),
:mod:`.scores` (external benchmark scores), :mod:`.published` (the published study's
results databases),
:mod:`.features` (feature files and their import), :mod:`.feature_formats` (the
array formats), :mod:`.preprocessing` (centring, unit norm, PCA) and :mod:`.parsing`
(the text, field and row checks they share). Their public functions are re-exported
here. torch is imported only to read a ``.pt`` file.
"""

from __future__ import annotations

from ..io import PathLike
from .features import FEATURE_FORMATS, import_features, read_features_file
from .objects import import_objects, read_object_names
from .parsing import Where
from .preprocessing import preprocess
from .published import read_published
from .scores import import_scores, read_scores
from .things import (SPLIT_NAMES, THINGS_REQUIRED, import_things, read_things_triplets,
                     read_triplet_array)

__all__ = [
    "FEATURE_FORMATS", "SPLIT_NAMES", "THINGS_REQUIRED", "PathLike", "Where",
    "import_features", "import_objects", "import_scores", "import_things", "preprocess",
    "read_published", "read_scores",
    "read_features_file", "read_object_names", "read_things_triplets",
    "read_triplet_array",
]

"""The column lists of the data contracts (docs/study.md, "Data contracts"), in one place.

Every table the workflow writes or reads is named here by its columns; the readers in
this package check them, and the jobs that build the tables select them, so a table's
layout is defined once. This module imports nothing heavier than the standard library,
so analysis code can name a contract without loading the fitting stack.
"""

from __future__ import annotations

import os

#: A file path as the readers and writers take it.
PathLike = str | os.PathLike[str]

#: ``objects.parquet``: ``object_id`` (int32, 0..n−1 in order) and ``name`` (string).
OBJECTS_COLUMNS: tuple[str, ...] = ("object_id", "name")

#: One model's features: ``object_id`` (int32) and ``embedding`` (list<float32>[d]).
FEATURES_COLUMNS: tuple[str, ...] = ("object_id", "embedding")

#: A triplet file: 0-based int32 object indices, ``k`` the odd one out.
TRIPLET_COLUMNS: tuple[str, ...] = ("i", "j", "k")

#: A simulated shard: per fold (int8) and split (train, val, test) the answered
#: triplets in display ``position`` order (int32), ``k`` the chosen odd one out.
SHARD_COLUMNS: tuple[str, ...] = ("fold", "split", "position", "i", "j", "k")

#: A design: the shard's columns (the triplets to show, ``k`` a placeholder until
#: answered) plus each triplet's expected information ``utility`` (float64, nats).
DESIGN_COLUMNS: tuple[str, ...] = (*SHARD_COLUMNS, "utility")

#: ``design/<design>/triplets_summary.csv``, what the report shows of a design instead of
#: its per-row triplets.csv: one row per split (train, val, test) and one for all of them
#: (``split`` = all), so its size does not depend on the number of triplets. ``folds``,
#: ``triplets`` (rows of triplets.csv), ``objects`` (objects in the split in at least one
#: fold), ``objects_covered`` (of those, the ones in at least one triplet), ``uses_min``,
#: ``uses_median``, ``uses_max`` (triplets per object over ``objects``, all folds),
#: ``uniform_share`` (share of uniformly drawn triplets), ``utility_mean`` (nats),
#: ``file`` (triplets.csv relative to the results folder) and ``file_bytes``.
DESIGN_SUMMARY_COLUMNS: tuple[str, ...] = (
    "split", "folds", "triplets", "objects", "objects_covered", "uses_min", "uses_median",
    "uses_max", "uniform_share", "utility_mean", "file", "file_bytes",
)

#: One recovery row per candidate × fold × λ fitted to one simulated dataset: labels
#: (experiment, design, generator, candidate, n_train, seed, fold, lambda), scores
#: (``train_nll``, ``test_nll`` in nats per judgement at T = 1; ``val_acc``,
#: ``test_acc`` fractions of held-out triplets), fit health (``iterations``,
#: ``converged``, ``seconds`` of wall time, ``objective``, ``status``) and the sizes of
#: the held-out sets (``n_val``, ``n_test`` triplets).
RECOVERY_COLUMNS: tuple[str, ...] = (
    "experiment", "design", "generator", "candidate", "n_train", "seed", "fold", "lambda",
    "train_nll", "val_acc", "test_acc", "test_nll", "iterations", "converged", "seconds",
    "objective", "status", "n_val", "n_test",
)

#: Parameter recovery, one row per fold of one simulated dataset: labels (experiment,
#: design, generator, n_train, seed, fold), the λ chosen for the generator's own
#: candidate, its refitted transform Ŵ (``dim`` d int32, ``rank`` k int32, ``weights``
#: list<float64>[d·k] in row-major order) and how close it is to the generating one
#: (``similarity_r``, ``metric_error``, ``accuracy_gap``; modelrecovery.analysis.parameters).
PARAMETER_COLUMNS: tuple[str, ...] = (
    "experiment", "design", "generator", "n_train", "seed", "fold", "lambda", "dim", "rank",
    "weights", "similarity_r", "metric_error", "accuracy_gap",
)

#: External benchmark scores, long: one row per scored model and score (``metric``), the
#: score's ``group`` (neural, behavioural, …) and its value ``score`` (float64).
EXTERNAL_SCORE_COLUMNS: tuple[str, ...] = ("model", "metric", "group", "score")

#: The arrays every generator NPZ has: ``W`` (d, k) float64 and the temperature ``T`` (a
#: float64 scalar); beside them the string ``similarity`` (:mod:`.generators`).
GENERATOR_ARRAYS: tuple[str, ...] = ("W", "T")

#: The published study's (Avitan & Golan, NeurIPS 2025) settings of one simulated
#: dataset, as its results database stores them: ``experiment`` (the database file's
#: stem, e.g. full_W), ``method`` (its constraint in this project's words: full,
#: diagonal, zero_shot, low_rank:k; any other stored text as it is), and as stored, "None"
#: where unset: ``constraint_type``, ``dim_reduction_method``,
#: ``generator_regularization`` and ``candidate_regularization``.
PUBLISHED_VARIANT_COLUMNS: tuple[str, ...] = (
    "experiment", "method", "constraint_type", "dim_reduction_method",
    "generator_regularization", "candidate_regularization",
)

#: Imported published scores, one row per dataset × candidate: the variant, ``generator``,
#: ``candidate``, ``n_train`` (training triplets per fold), ``seed`` (the published
#: simulation_idx), ``job_id``, the chosen ``lambda`` and the published means over folds
#: of ``train_acc``, ``val_acc``, ``test_acc`` (fractions) and ``train_nll``, ``val_nll``,
#: ``test_nll`` (as the published code stores them).
PUBLISHED_SCORE_COLUMNS: tuple[str, ...] = (
    *PUBLISHED_VARIANT_COLUMNS, "generator", "candidate", "n_train", "seed", "job_id",
    "lambda", "train_acc", "val_acc", "test_acc", "train_nll", "val_nll", "test_nll",
)

#: Imported published outcomes, one row per finished dataset: the winner as the published
#: analysis decides it (the first best test accuracy in stored row order), ``n_tied``
#: and ``tie`` (candidates sharing that accuracy exactly), ``credit`` (1 when the winner
#: is the generator), the generator's competition ``rank``, the NLL winner and its
#: ``nll_credit``, and ``complete`` (the seed is finished for every generator at that
#: size: the datasets the published curves count).
PUBLISHED_OUTCOME_COLUMNS: tuple[str, ...] = (
    *PUBLISHED_VARIANT_COLUMNS, "generator", "n_train", "seed", "job_id", "winner",
    "n_tied", "tie", "credit", "rank", "nll_winner", "nll_credit", "complete",
)

#: The published recovery curve per variant × training size, pooled over generators:
#: the columns of modelrecovery.analysis.aggregate.recovery_curve.
PUBLISHED_RECOVERY_COLUMNS: tuple[str, ...] = (
    *PUBLISHED_VARIANT_COLUMNS, "n_train", "datasets", "recovered", "recovery", "ci_low",
    "ci_high", "tie_rate", "nll_recovered", "nll_recovery", "mean_rank", "mrr",
)

#: The published recovery curves per variant × generator × training size.
PUBLISHED_CURVE_COLUMNS: tuple[str, ...] = (
    *PUBLISHED_VARIANT_COLUMNS, "generator", *PUBLISHED_RECOVERY_COLUMNS[6:],
)

"""Noise ceiling: leave-one-out majority agreement with ties split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelrecovery import io
from modelrecovery.errors import InputError
from modelrecovery.world.ceiling import ceiling_by_split, noise_ceiling

# One object set {3, 5, 8}; the odd one out is the LAST column.
A = (3, 5, 8)   # 8 odd
A2 = (5, 3, 8)  # the same answer with i, j swapped
B = (3, 8, 5)   # 5 odd
C = (8, 5, 3)   # 3 odd


def test_two_of_three():
    # A, A, B: each A sees {A, B}, a tie → 1/2; B sees {A, A} → 0; mean 1/3
    res = noise_ceiling(np.array([A, A2, B]))
    assert res["ceiling"] == pytest.approx(1 / 3)
    assert res == {"ceiling": pytest.approx(1 / 3), "responses": 3, "triplets": 1,
                   "skipped_single": 0, "total_responses": 3}


def test_unanimous_and_three_way():
    assert noise_ceiling(np.array([A, A2]))["ceiling"] == 1.0
    assert noise_ceiling(np.array([A, B, C]))["ceiling"] == 0.0  # others always tie 1:1
    # A, B, C, A: each A sees a three-way tie → 1/3; B and C see A twice → 0
    assert noise_ceiling(np.array([A, B, C, A]))["ceiling"] == pytest.approx(2 / 12)
    # A, A, B, B: everyone sees the other answer in the majority → 0
    assert noise_ceiling(np.array([A, A, B, B]))["ceiling"] == 0.0


def test_mean_is_over_responses_and_singles_are_skipped():
    other = np.array([(10, 11, 12), (11, 10, 12)])    # unanimous pair: 1, 1
    single = np.array([(20, 21, 22)])                 # one response: skipped
    res = noise_ceiling(np.concatenate([np.array([A, A, B]), other, single]))
    assert res["ceiling"] == pytest.approx((0.5 + 0.5 + 0 + 1 + 1) / 5)
    assert (res["responses"], res["triplets"], res["skipped_single"],
            res["total_responses"]) == (5, 2, 1, 6)


def test_between_subjects():
    # s1 answers A twice, s2 answers B. Within: 1/2, 1/2, 0. Between: s1 sees only B → 0
    # twice, s2 sees A, A → 0.
    res = noise_ceiling(np.array([A, A, B]), subjects=np.array(["s1", "s1", "s2"]))
    assert res["ceiling"] == pytest.approx(1 / 3)
    assert res["ceiling_between_subjects"] == 0.0
    assert res["responses_between_subjects"] == 3 and res["subjects"] == 2
    res = noise_ceiling(np.array([A, A, A, B]), subjects=["s1", "s2", "s3", "s1"])
    # s1:A sees only s2, s3: {A, A} → 1; s2:A sees s1, s3: {A, B, A} → 1; s3:A likewise
    # → 1; s1:B sees s2, s3: {A, A} → 0  ⇒ 3/4
    assert res["ceiling_between_subjects"] == pytest.approx(3 / 4)
    alone = noise_ceiling(np.array([A, A2]), subjects=["s1", "s1"])
    assert math.isnan(alone["ceiling_between_subjects"])
    assert alone["responses_between_subjects"] == 0


def test_refusals():
    with pytest.raises(InputError) as err:
        noise_ceiling(np.array([(0, 1, 2), (3, 4, 5)]))
    assert str(err.value) == ("noise ceiling: none of the 2 responses repeats a triplet; a "
                              "noise ceiling needs triplets answered more than once")
    with pytest.raises(InputError, match=r"row 1 \(0-based\) = \(4, 4, 5\) repeats an "
                                         r"object"):
        noise_ceiling(np.array([(0, 1, 2), (4, 4, 5)]))
    with pytest.raises(InputError, match=r"shape \(N, 3\)"):
        noise_ceiling(np.zeros((3, 2), dtype=int))
    with pytest.raises(InputError, match=r"subjects must have shape \(2,\)"):
        noise_ceiling(np.array([A, A]), subjects=["s1"])


def _expected_loo(p: np.ndarray, m: int) -> float:
    """Exact expected LOO score with m responses per triplet, each odd ~ Categorical(p)."""
    others = m - 1
    total = 0.0
    for a in range(others + 1):
        for b in range(others + 1 - a):
            c = others - a - b
            counts = np.array([a, b, c])
            logp = (math.lgamma(others + 1) - sum(math.lgamma(v + 1) for v in counts)
                    + sum(v * math.log(q) for v, q in zip(counts, p)))
            top = counts.max()
            tied = int((counts == top).sum())
            score = sum(p[o] / tied for o in range(3) if counts[o] == top)
            total += math.exp(logp) * score
    return total


@pytest.mark.parametrize("m, n_triplets", [(2, 30000), (5, 20000), (201, 500)])
def test_simulated_agrees_with_analytic(m, n_triplets):
    rng = np.random.default_rng(7)
    p = np.array([0.55, 0.3, 0.15])
    objs = np.stack([rng.choice(1854, size=3, replace=False) for _ in range(n_triplets)])
    odd_pos = rng.choice(3, size=(n_triplets, m), p=p)  # which object of each set is odd
    rows = []
    for q in range(3):
        others = [c for c in range(3) if c != q]
        rows.append(np.stack([objs[:, others[0]], objs[:, others[1]], objs[:, q]], axis=1))
    by_pos = np.stack(rows, axis=0)                      # (3, n_triplets, 3)
    trip = by_pos[odd_pos.T, np.arange(n_triplets)[None, :]].reshape(-1, 3)
    res = noise_ceiling(trip)
    want = _expected_loo(p, m)
    assert res["ceiling"] == pytest.approx(want, abs=0.01)
    assert res["triplets"] == n_triplets and res["responses"] == n_triplets * m
    if m == 2:
        assert want == pytest.approx((p ** 2).sum())      # agreement of two draws
    if m == 201:
        assert want == pytest.approx(p.max(), abs=1e-3)   # the majority is always object 0


def test_ceiling_by_split(tmp_path):
    test1 = np.array([A, A2, B, (10, 11, 12), (11, 10, 12)])
    io.write_triplets(tmp_path / "test1.parquet", test1,
                      subject=np.array(["s1", "s2", "s3", "s1", "s2"], dtype=object))
    collapsed = np.array([A, B])
    io.write_triplets(tmp_path / "test2.parquet", collapsed,
                      count=np.array([2, 1], dtype=np.int32))
    txt = tmp_path / "testset3.txt"
    txt.write_text("".join(f"{a} {b} {c}\n" for a, b, c in test1))
    res = ceiling_by_split({"test1": tmp_path / "test1.parquet",
                            "test2": tmp_path / "test2.parquet", "test3": txt}, 40)
    assert res["test1"]["ceiling"] == pytest.approx(0.6)
    assert res["test1"]["subjects"] == 3
    assert res["test1"]["file"] == str(tmp_path / "test1.parquet")
    assert res["test2"]["ceiling"] == pytest.approx(1 / 3)  # counts expanded: A, A, B
    assert res["test2"]["responses"] == 3
    assert res["test3"]["ceiling"] == pytest.approx(0.6)
    io.write_triplets(tmp_path / "single.parquet", np.array([(0, 1, 2), (3, 4, 5)]))
    with pytest.raises(InputError) as err:
        ceiling_by_split({"x": tmp_path / "single.parquet"}, 40)
    assert str(err.value).startswith(f"{tmp_path / 'single.parquet'}: noise ceiling: none "
                                     f"of the 2 responses repeats a triplet")


def test_things_import_then_ceiling(tmp_path):
    from modelrecovery.importers import import_things
    from things_files import things_rows, write_table

    src = write_table(tmp_path / "things.csv", things_rows(seed=2))
    summary = import_things(src, tmp_path / "human")
    res = ceiling_by_split({name: tmp_path / "human" / f"{name}.parquet"
                            for name in ("test1", "test2", "test3")}, 1854)
    for name in ("test1", "test2", "test3"):
        assert res[name]["triplets"] == summary["splits"][name]["unique_triplets"]
        assert res[name]["responses"] == summary["splits"][name]["rows"]
        assert 0.0 <= res[name]["ceiling"] <= 1.0

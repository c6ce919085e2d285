"""Embedding-space similarity (NNGS, mutual k-NN, linear CKA) against brute-force references,
closed forms and hand-computed cases."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from audioconcepts import Embeddings
from audioconcepts.evaluate.similarity import (
    knn,
    linear_cka,
    mutual_knn,
    nngs,
    nngs_chance,
    nngs_per_point,
    nngs_spectrum,
)


# --------------------------------------------------------------------------------------------
# independent references (n x n, small n only)


def brute_scores(X: np.ndarray, metric: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if metric == "cosine":
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        return Xn @ Xn.T
    if metric == "dot":
        return X @ X.T
    return -((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)  # euclidean: larger = nearer


def brute_knn(S: np.ndarray, k: int) -> np.ndarray:
    """Rank every row of an n x n score matrix: score descending, then index ascending, self excluded."""
    n = S.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        j = np.array([c for c in range(n) if c != i])
        order = np.lexsort((j, -S[i, j]))  # last key is primary
        out[i] = j[order[:k]]
    return out


def brute_nngs(X, Y, k, metric="cosine"):
    A = brute_knn(brute_scores(X, metric), k)
    B = brute_knn(brute_scores(Y, metric), k)
    jac = [len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(A, B)]
    return float(np.mean(jac))


def huh_mutual_knn(X, Y, k):
    """Mutual k-NN as in Huh et al.'s reference code: normalise, mask the diagonal, top-k by
    similarity, count the neighbours shared by both masks, divide by k, average."""

    def topk_mask(F):
        F = F / np.linalg.norm(F, axis=1, keepdims=True)
        S = F @ F.T
        np.fill_diagonal(S, -1e8)
        idx = np.argsort(-S, axis=1)[:, :k]
        mask = np.zeros_like(S, dtype=bool)
        np.put_along_axis(mask, idx, True, axis=1)
        return mask

    return float(((topk_mask(X) & topk_mask(Y)).sum(1) / k).mean())


def hsic_cka(X, Y):
    """CKA from its definition: HSIC of centred linear Gram matrices (n x n)."""
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X @ X.T, Y @ Y.T

    def hsic(A, B):
        return np.trace(A @ H @ B @ H)

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def random_orthogonal(d, rng):
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))
    return Q * np.sign(np.diag(R))


@pytest.fixture
def pair():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 16))
    Y = X @ rng.standard_normal((16, 24)) + 0.8 * rng.standard_normal((300, 24))
    return X, Y


# --------------------------------------------------------------------------------------------
# exact blocked k-NN


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
@pytest.mark.parametrize("block_size", [1, 7, 64, None])
def test_blocked_knn_equals_brute_force(metric, block_size):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 12))
    got = knn(X, 9, metric, block_size=block_size)
    np.testing.assert_array_equal(got, brute_knn(brute_scores(X, metric), 9))


def test_blocked_knn_float32_and_sparse_inputs():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 10))
    ref = brute_knn(brute_scores(X, "euclidean"), 6)
    np.testing.assert_array_equal(knn(X.astype(np.float32), 6, "euclidean", block_size=17), ref)
    W = sp.random(120, 40, density=0.15, random_state=2, format="csr")
    W.data = np.abs(W.data) + 0.1
    W = W + sp.csr_matrix((np.ones(120), (np.arange(120), np.arange(120) % 40)), shape=(120, 40))  # no zero rows
    for metric in ("cosine", "euclidean"):
        np.testing.assert_array_equal(
            knn(W, 5, metric, block_size=13), brute_knn(brute_scores(W.toarray(), metric), 5)
        )


@pytest.mark.parametrize("metric", ["euclidean", "dot"])
def test_exact_ties_go_to_the_lower_index(metric):
    # small integers: every score is exact in floating point, so ties are real ties
    rng = np.random.default_rng(5)
    X = rng.integers(-2, 3, size=(80, 3)).astype(np.float64)  # many duplicate points and equal distances
    S = brute_scores(X, metric)
    got = knn(X, 12, metric, block_size=9)
    np.testing.assert_array_equal(got, brute_knn(S, 12))
    # and the rule is visible: among equal scores, indices ascend
    for i in range(80):
        s = S[i, got[i]]
        assert np.all((np.diff(s) < 0) | ((np.diff(s) == 0) & (np.diff(got[i]) > 0)))


def test_knn_prefix_property():
    X = np.random.default_rng(9).integers(0, 4, size=(60, 2)).astype(float)  # ties everywhere
    big = knn(X, 30, "euclidean")
    for k in (1, 5, 17):
        np.testing.assert_array_equal(knn(X, k, "euclidean"), big[:, :k])


# --------------------------------------------------------------------------------------------
# NNGS


def test_nngs_equals_brute_force_jaccard(pair):
    X, Y = pair
    for metric in ("cosine", "euclidean"):
        for k in (1, 5, 30):
            assert nngs(X, Y, k, metric) == pytest.approx(brute_nngs(X, Y, k, metric), abs=1e-12)
    assert 0.05 < nngs(X, Y, 10) < 0.95  # a genuinely partial overlap: the comparison above is not trivial


def test_identical_spaces_give_one(pair):
    X, _ = pair
    for metric in ("cosine", "euclidean", "dot"):
        assert nngs(X, X, 10, metric) == 1.0
        assert nngs(X, X.copy(), 0.2, metric) == 1.0
    # cosine ignores the length of each row: rescaled rows keep the same graph
    scale = np.random.default_rng(0).uniform(0.1, 10, size=(len(X), 1))
    assert nngs(X, X * scale, 10, "cosine") == 1.0
    assert nngs(X, X * scale, 10, "euclidean") < 0.9  # while euclidean notices
    W = sp.csr_matrix(np.abs(X))
    assert nngs(W, W, 7) == 1.0
    assert mutual_knn(X, X, 10) == 1.0


def test_k_n_minus_one_gives_one():
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((40, 5)), rng.standard_normal((40, 7))  # unrelated spaces
    assert nngs(X, Y, 39) == 1.0
    assert mutual_knn(X, Y, 39) == 1.0
    assert nngs(X, Y, 5) < 0.5


def test_random_permutation_is_near_chance():
    rng = np.random.default_rng(11)
    n, k = 1000, 10
    X = rng.standard_normal((n, 32))
    scores = []
    for seed in range(3):
        Y = X[np.random.default_rng(seed).permutation(n)]  # same geometry, items shuffled
        scores.append(nngs(X, Y, k))
    chance = nngs_chance(k, n)
    assert chance == pytest.approx(10 / (2 * 999 - 10))
    # per-item Jaccard has sd ~0.025 here; the mean of 3 x 1000 items is within ~0.0005 of its
    # expectation, which the first-order chance formula matches to ~1e-4
    assert abs(np.mean(scores) - chance) < 0.003
    spec = nngs_spectrum(X, Y, [5, 10, 50])
    assert np.all(np.abs(spec.normalized) < 0.01)
    # ... while a related space is far above chance (the bound above can fail)
    assert nngs(X, X + 0.3 * rng.standard_normal(X.shape), k) > 20 * chance


def test_nngs_invariant_to_rotation_for_cosine(pair):
    X, Y = pair
    rng = np.random.default_rng(8)
    Q = random_orthogonal(X.shape[1], rng)
    np.testing.assert_array_equal(knn(X @ Q, 10), knn(X, 10))
    assert nngs(X @ Q, Y, 10) == nngs(X, Y, 10)
    assert nngs(X, Y @ random_orthogonal(Y.shape[1], rng), 10) == nngs(X, Y, 10)
    # a non-orthogonal map does change it (the invariance test can fail)
    A = rng.standard_normal((X.shape[1], X.shape[1])) * np.linspace(0.1, 3, X.shape[1])
    assert nngs(X @ A, Y, 10) != nngs(X, Y, 10)


def test_spectrum_reuses_one_knn_and_matches_single_calls(pair):
    X, Y = pair
    spec = nngs_spectrum(X, Y, [20, 1, 0.1, 5, 5], metric="euclidean", block_size=31)
    assert list(spec.k) == [1, 5, 20, 30]  # sorted, duplicates merged, 0.1 * 300 = 30
    for k, s, c, z in zip(spec.k, spec.score, spec.chance, spec.normalized):
        assert s == pytest.approx(nngs(X, Y, int(k), "euclidean"), abs=1e-12)
        assert c == pytest.approx(k / (2 * 299 - k))
        assert z == pytest.approx((s - c) / (1 - c))
    frame = nngs_spectrum(X, Y).to_frame()
    assert list(frame.columns) == ["k", "score", "chance", "normalized"]
    assert list(frame["k"]) == [1, 2, 5, 10, 20, 50, 100, 200]
    last = nngs_spectrum(X, Y, [299])
    assert last.score[0] == 1.0 and np.isnan(last.normalized[0])


def test_per_point_and_mixed_metrics(pair):
    X, Y = pair
    per = nngs_per_point(X, Y, 8)
    assert per.shape == (300,) and per.mean() == pytest.approx(nngs(X, Y, 8))
    A = brute_knn(brute_scores(X, "cosine"), 8)
    B = brute_knn(brute_scores(Y, "euclidean"), 8)
    ref = np.mean([len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(A, B)])
    assert nngs(X, Y, 8, metric=("cosine", "euclidean")) == pytest.approx(ref, abs=1e-12)


def test_sparse_codes_and_embeddings_inputs(pair):
    X, _ = pair
    rng = np.random.default_rng(2)
    W = np.maximum(X @ rng.standard_normal((16, 50)) - 1.0, 0)  # non-negative, sparse-ish "codes"
    W[:, 0] += 0.01  # no all-zero rows
    dense = nngs(X, W, 10)
    assert nngs(X, sp.csr_matrix(W), 10) == pytest.approx(dense, abs=1e-12)
    assert nngs(X, sp.csr_matrix(W, dtype=np.float32), 10) == pytest.approx(dense, abs=0.02)
    E = Embeddings((X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), "test-model")
    assert nngs(E, W, 10) == pytest.approx(dense, abs=0.02)


def test_large_n_never_builds_the_n_by_n_matrix():
    n = 20_000
    X = np.random.default_rng(0).standard_normal((n, 8))
    Y = X + 0.1 * np.random.default_rng(1).standard_normal((n, 8))
    tracemalloc.start()
    try:
        s = nngs(X, Y, 5, block_size=500)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0.0 < s < 1.0
    assert peak < 0.05 * n * n * 8  # an n x n float64 matrix would be 3.2 GB; blocks are 80 MB


# --------------------------------------------------------------------------------------------
# mutual k-NN


def test_mutual_knn_hand_computed():
    # points on a line; neighbours by distance (worked out by hand, see below)
    X = np.array([[0.0], [1.0], [3.0], [7.0], [8.0]])
    Y = np.array([[0.0], [5.0], [1.0], [6.0], [2.0]])
    # k = 2: N_X = {1,2} {0,2} {1,0} {4,2} {3,2};  N_Y = {2,4} {3,4} {0,4} {1,4} {2,0}
    # shared: 1, 0, 1, 1, 1  ->  mutual = (0.5 + 0 + 0.5 + 0.5 + 0.5) / 5 = 0.4,  NNGS = (4 * 1/3) / 5
    assert mutual_knn(X, Y, 2, "euclidean") == pytest.approx(0.4)
    assert nngs(X, Y, 2, "euclidean") == pytest.approx(4 / 15)
    # k = 1 with a tie: item 2 (at 1) is 1 away from items 0 (at 0) and 4 (at 2): the lower index wins
    np.testing.assert_array_equal(knn(Y, 1, "euclidean")[:, 0], [2, 3, 0, 1, 2])
    # N_X(k=1) = 1, 0, 1, 4, 3 -> shared with N_Y: items 0? (1 vs 2) no; 1? (0 vs 3) no; 2? (1 vs 0) no;
    # 3? (4 vs 1) no; 4? (3 vs 2) no
    assert mutual_knn(X, Y, 1, "euclidean") == 0.0


def test_mutual_knn_matches_reference_code(pair):
    X, Y = pair
    for k in (3, 10):
        assert mutual_knn(X, Y, k) == pytest.approx(huh_mutual_knn(X, Y, k), abs=1e-12)
    # relation to NNGS per item: m = 2J / (1 + J)
    J = nngs_per_point(X, Y, 10)
    assert mutual_knn(X, Y, 10) == pytest.approx(np.mean(2 * J / (1 + J)))


# --------------------------------------------------------------------------------------------
# linear CKA


def test_cka_equals_hsic_closed_form(pair):
    X, Y = pair
    assert linear_cka(X, Y) == pytest.approx(hsic_cka(X, Y), rel=1e-10)
    rng = np.random.default_rng(6)
    Z = rng.standard_normal((300, 5)) + 3.0  # large mean: centring matters
    assert linear_cka(X, Z) == pytest.approx(hsic_cka(X, Z), rel=1e-10)
    assert linear_cka(X, X) == pytest.approx(1.0)
    assert linear_cka(X, Z) < 0.2  # unrelated


def test_cka_invariances(pair):
    X, Y = pair
    rng = np.random.default_rng(7)
    base = linear_cka(X, Y)
    assert linear_cka(X @ random_orthogonal(16, rng), Y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(X, 7.5 * Y @ random_orthogonal(24, rng)) == pytest.approx(base, rel=1e-10)
    assert linear_cka(X + 4.0, Y) == pytest.approx(base, rel=1e-10)  # column centring
    # not invariant to anisotropic scaling (so the invariance checks can fail)
    assert linear_cka(X * np.linspace(0.1, 5, 16), Y) != pytest.approx(base, rel=1e-3)


def test_cka_sparse_equals_dense(pair):
    X, _ = pair
    W = np.maximum(X @ np.random.default_rng(2).standard_normal((16, 60)) - 1.5, 0)
    W[:, 5] = 0  # an unused concept column
    assert linear_cka(X, sp.csr_matrix(W)) == pytest.approx(hsic_cka(X, W), rel=1e-10)
    assert linear_cka(sp.csr_matrix(W), sp.csr_matrix(W)) == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# errors


def test_clear_errors(pair):
    X, Y = pair
    with pytest.raises(ValueError, match="300 rows but Y has 299"):
        nngs(X, Y[:299], 5)
    with pytest.raises(ValueError, match="between 1 and n - 1 = 299"):
        nngs(X, Y, 300)
    with pytest.raises(ValueError, match="between 1 and n - 1"):
        nngs(X, Y, 0)
    with pytest.raises(ValueError, match=r"fraction of n and must lie in \(0, 1\)"):
        nngs(X, Y, 5.0)
    with pytest.raises(TypeError, match="not a bool"):
        nngs(X, Y, True)
    Xn = X.copy()
    Xn[17, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values in 1 rows \\(first: row 17\\)"):
        nngs(Xn, Y, 5)
    with pytest.raises(ValueError, match="NaN"):
        linear_cka(X, sp.csr_matrix(Xn))
    Xz = X.copy()
    Xz[[4, 9]] = 0
    with pytest.raises(ValueError, match="2 all-zero rows \\(first: row 4\\).*metric='euclidean'"):
        nngs(Xz, Y, 5)
    assert 0 < nngs(Xz, Y, 5, "euclidean") < 1
    with pytest.raises(ValueError, match="unknown metric 'manhattan'"):
        nngs(X, Y, 5, "manhattan")
    with pytest.raises(ValueError, match="must be 2-D"):
        nngs(X[:, 0], Y, 5)
    with pytest.raises(ValueError, match="all rows of Y are equal"):
        linear_cka(X, np.ones((300, 3)))
    with pytest.raises(ValueError, match="ks is empty"):
        nngs_spectrum(X, Y, [])
    with pytest.raises(ValueError, match="block_size"):
        nngs(X, Y, 5, block_size=0)

"""How alike two embedding spaces of the same items are: NNGS, mutual k-NN and linear CKA.

Used to compare dense CLAP embeddings with their concept codes (or recomposed embeddings) beyond
the per-item cosine: do items keep the same neighbours?

- `nngs` is the nearest-neighbour graph similarity of Tavares, Ayres & Smaragdis (2024): for every
  item i, the Jaccard index |N_X(i) & N_Y(i)| / |N_X(i) | N_Y(i)| of its k nearest neighbours
  (itself excluded) in space X and in space Y, averaged over items.
- `nngs_spectrum` gives it for several k at once, with the chance level k / (2(n-1) - k) (the
  expected Jaccard index of two independent random k-subsets of the n-1 other items, to first
  order) and the normalised score (s - chance) / (1 - chance).
- `mutual_knn` is the mutual k-NN alignment of Huh et al. (2024, "The platonic representation
  hypothesis"): the mean over items of |N_X(i) & N_Y(i)| / k.
- `linear_cka` is linear centred kernel alignment (Kornblith et al., 2019), feature-space formula.

Scale: neighbours are found exactly, in blocks of rows (one matrix product per block, then a
compiled top-k selection), so memory is O(block * n + n * len(ks)), never n x n; 100,000 points are
fine (see benchmarks/bench_similarity.py).

Ties: neighbours are ranked by similarity (descending), and items with exactly equal computed
similarity by index (ascending): the lower index is the nearer neighbour. This total order makes
the k-NN set of every k a prefix of that of any larger k, and results deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numba as nb
import numpy as np
import scipy.sparse as sp

__all__ = [
    "METRICS",
    "NNGSSpectrum",
    "knn",
    "linear_cka",
    "mutual_knn",
    "nngs",
    "nngs_per_point",
    "nngs_spectrum",
    "nngs_chance",
]

#: supported neighbour metrics. "euclidean" and "sqeuclidean" rank identically; "dot" ranks by
#: raw inner product (not a metric, but what some alignment papers use on unnormalised features).
METRICS = ("cosine", "euclidean", "sqeuclidean", "dot")
_ALIASES = {"l2": "euclidean", "inner_product": "dot", "ip": "dot"}
#: bytes of one block of similarities (block rows x n); sets the default block size
BLOCK_BYTES = 128 * 2**20
#: default spectrum: these k (and fractions of n are also accepted) up to min(n - 1, 1000)
DEFAULT_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


# --------------------------------------------------------------------------------------------
# input checking


def _as_matrix(X: Any, name: str) -> np.ndarray | sp.csr_matrix:
    """X as a finite 2-D dense float array or CSR matrix, with a clear error otherwise."""
    vectors = getattr(X, "vectors", None)  # audioconcepts.Embeddings
    if vectors is not None:
        X = vectors
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        data = X.data
    else:
        X = np.asarray(X)
        if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise TypeError(f"{name} must be a numeric array or scipy sparse matrix, got dtype {X.dtype}")
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        data = X
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n items, d features), got shape {X.shape}")
    if X.shape[0] < 2:
        raise ValueError(f"{name} has {X.shape[0]} rows; comparing neighbourhoods needs at least 2 items")
    if X.shape[1] < 1:
        raise ValueError(f"{name} has no columns")
    if not np.isfinite(data).all():
        bad = ~np.isfinite(data)
        if sp.issparse(X):
            rows = np.unique(np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))[bad])
        else:
            rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(
            f"{name} has NaN or infinite values in {rows.size} rows (first: row {rows[0]}); "
            "drop or repair those rows in both spaces before comparing"
        )
    return X


def _pair(X: Any, Y: Any) -> tuple[np.ndarray | sp.csr_matrix, np.ndarray | sp.csr_matrix]:
    X, Y = _as_matrix(X, "X"), _as_matrix(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"X has {X.shape[0]} rows but Y has {Y.shape[0]}; row i of X and row i of Y must be the same "
            "item in both spaces"
        )
    return X, Y


def _resolve_k(k: Any, n: int) -> int:
    """k as a neighbour count: an int in [1, n-1], or a float in (0, 1) meaning round(k * n)."""
    if isinstance(k, (bool, np.bool_)):
        raise TypeError("k must be an int (a count) or a float in (0, 1) (a fraction of n), not a bool")
    if isinstance(k, (int, np.integer)):
        kk = int(k)
    elif isinstance(k, (float, np.floating)):
        if not 0.0 < float(k) < 1.0:
            raise ValueError(
                f"k = {k} as a float is a fraction of n and must lie in (0, 1); pass an int for a count"
            )
        kk = max(1, int(round(float(k) * n)))
    else:
        raise TypeError(f"k must be an int or a float fraction of n, got {type(k).__name__}")
    if not 1 <= kk <= n - 1:
        raise ValueError(f"k = {kk} is out of range: with n = {n} items, k must be between 1 and n - 1 = {n - 1}")
    return kk


def _resolve_metric(metric: str) -> str:
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a string, one of {', '.join(METRICS)}")
    m = _ALIASES.get(metric.lower(), metric.lower())
    if m not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    return m


def _metrics(metric: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(metric, (tuple, list)):
        if len(metric) != 2:
            raise ValueError("metric as a pair must be (metric for X, metric for Y)")
        return _resolve_metric(metric[0]), _resolve_metric(metric[1])
    m = _resolve_metric(metric)
    return m, m


# --------------------------------------------------------------------------------------------
# exact k-NN in row blocks


@nb.njit(parallel=True, cache=True)
def _topk_rows(S, row0, K, out):  # pragma: no cover - compiled
    """For each row i of the block S (B, n): the K columns with the largest S[i, j], j != row0 + i,
    best first; equal values ordered by column index (lower first). Written into out (B, K)."""
    B, n = S.shape
    for i in nb.prange(B):
        me = row0 + i
        hv = np.empty(K, dtype=S.dtype)  # min-heap of the current top K; root = the worst member
        hi = np.empty(K, dtype=np.int64)
        size = 0
        for j in range(n):
            if j == me:
                continue
            s = S[i, j]
            if size < K:
                # push, sift up; "worse" = smaller value, or equal value and larger index
                c = size
                size += 1
                while c > 0:
                    p = (c - 1) // 2
                    if hv[p] < s or (hv[p] == s and hi[p] > j):
                        break  # parent is worse than the new element: heap order holds
                    hv[c] = hv[p]
                    hi[c] = hi[p]
                    c = p
                hv[c] = s
                hi[c] = j
            elif s > hv[0]:  # equal value never wins: j is larger than every index seen so far
                _replace_root(hv, hi, K, s, j)
        # pop the worst K times, filling from the back: out[i] is best first
        for t in range(K - 1, -1, -1):
            out[i, t] = hi[0]
            _replace_root(hv, hi, t, hv[t], hi[t])


@nb.njit(cache=True, inline="always")
def _replace_root(hv, hi, size, v, idx):  # pragma: no cover - compiled
    """Put (v, idx) at the root of the min-heap hv/hi[:size] and sift it down ("worse" = smaller
    value, or equal value and larger index)."""
    c = 0
    while True:
        left = 2 * c + 1
        if left >= size:
            break
        w = left
        r = left + 1
        if r < size and (hv[r] < hv[left] or (hv[r] == hv[left] and hi[r] > hi[left])):
            w = r
        if v < hv[w] or (v == hv[w] and idx > hi[w]):
            break
        hv[c] = hv[w]
        hi[c] = hi[w]
        c = w
    hv[c] = v
    hi[c] = idx


class _Space:
    """One embedding space prepared for blocked similarity products under one metric."""

    def __init__(self, X: np.ndarray | sp.csr_matrix, metric: str, name: str):
        self.metric = metric
        self.n = X.shape[0]
        self.sparse = sp.issparse(X)
        self.dtype = X.dtype
        self.offset = None  # per-column term added to the block product (euclidean)
        if metric == "cosine":
            if self.sparse:
                norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel())
            else:
                norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))  # no float64 copy of X
            zero = np.flatnonzero(norms == 0)
            if zero.size:
                raise ValueError(
                    f"{name} has {zero.size} all-zero rows (first: row {zero[0]}); cosine similarity is undefined "
                    "for them: drop those rows in both spaces, or use metric='euclidean'"
                )
            scale = (1.0 / norms).astype(self.dtype)
            X = sp.csr_matrix(sp.diags(scale) @ X) if self.sparse else X * scale[:, None]
        elif metric in ("euclidean", "sqeuclidean"):
            if self.sparse:
                sq = np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel()
            else:
                sq = np.einsum("ij,ij->i", X, X, dtype=np.float64)
            # argmin |x_i - x_j|^2 = argmax x_i.x_j - |x_j|^2 / 2  (|x_i|^2 is constant per row)
            self.offset = (-0.5 * sq).astype(self.dtype)
        self.X = X
        if not self.sparse:
            self.X = np.ascontiguousarray(X)

    def scores(self, start: int, stop: int) -> np.ndarray:
        """(stop - start, n) similarities of rows start:stop to all rows (larger = nearer)."""
        if self.sparse:
            left = self.X[start:stop].toarray()
            S = np.ascontiguousarray((self.X @ left.T).T)
        else:
            S = self.X[start:stop] @ self.X.T
        if self.offset is not None:
            S += self.offset
        return S

    def neighbours(self, start: int, stop: int, K: int) -> np.ndarray:
        S = self.scores(start, stop)
        out = np.empty((stop - start, K), dtype=np.int64)
        _topk_rows(S, start, K, out)
        return out


def _block_rows(n: int, block_size: int | None, itemsize: int = 8) -> int:
    if block_size is None:
        return int(max(1, min(n, BLOCK_BYTES // (n * itemsize))))
    if not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive int (rows per block), got {block_size!r}")
    return int(min(block_size, n))


def knn(X: Any, k: int | float, metric: str = "cosine", *, block_size: int | None = None) -> np.ndarray:
    """Exact k nearest neighbours of every row among the other rows: (n, k) int64 indices, nearest
    first (ties: lower index first). Memory O(block_size * n); never builds the n x n matrix."""
    X = _as_matrix(X, "X")
    n = X.shape[0]
    K = _resolve_k(k, n)
    space = _Space(X, _resolve_metric(metric), "X")
    B = _block_rows(n, block_size, X.dtype.itemsize)
    out = np.empty((n, K), dtype=np.int64)
    for start in range(0, n, B):
        stop = min(n, start + B)
        out[start:stop] = space.neighbours(start, stop, K)
    return out


def _overlap_counts(ix: np.ndarray, iy: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """(B, len(ks)) sizes of the intersection of the first k entries of ix[i] and iy[i], per k.

    An item at rank a in ix[i] and rank b in iy[i] is shared by the k-prefixes iff max(a, b) < k,
    so one sort of the concatenated rows answers every k."""
    B, K = ix.shape
    ids = np.concatenate([ix, iy], axis=1)
    ranks = np.concatenate([np.arange(K), np.arange(K)])
    order = np.argsort(ids, axis=1, kind="stable")
    sid = np.take_along_axis(ids, order, axis=1)
    sr = ranks[order]
    dup = sid[:, 1:] == sid[:, :-1]  # each id occurs at most once per list, so pairs = shared items
    rows, cols = np.nonzero(dup)
    depth = np.maximum(sr[rows, cols], sr[rows, cols + 1])
    out = np.empty((B, ks.size), dtype=np.int64)
    for t, k in enumerate(ks):
        out[:, t] = np.bincount(rows[depth < k], minlength=B)
    return out


def _shared_counts(
    X: Any, Y: Any, ks: Sequence[int | float], metric: str | tuple[str, str], block_size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(ks as ints, (n, len(ks)) per-item counts of shared neighbours). k-NN computed once for max k."""
    X, Y = _pair(X, Y)
    n = X.shape[0]
    kk = np.array([_resolve_k(k, n) for k in ks], dtype=np.int64)
    if kk.size == 0:
        raise ValueError("ks is empty; give at least one k")
    K = int(kk.max())
    mx, my = _metrics(metric)
    sx, sy = _Space(X, mx, "X"), _Space(Y, my, "Y")
    B = _block_rows(n, block_size, max(X.dtype.itemsize, Y.dtype.itemsize))
    counts = np.empty((n, kk.size), dtype=np.int64)
    for start in range(0, n, B):
        stop = min(n, start + B)
        counts[start:stop] = _overlap_counts(sx.neighbours(start, stop, K), sy.neighbours(start, stop, K), kk)
    return kk, counts


# --------------------------------------------------------------------------------------------
# public scores


def nngs_chance(k: int | float, n: int) -> float:
    """Chance level of NNGS: k / (2(n-1) - k), the Jaccard index of two independent random
    k-subsets of n-1 items with the expected intersection k^2/(n-1) plugged in."""
    k = _resolve_k(k, n)
    return k / (2 * (n - 1) - k)


def nngs_per_point(
    X: Any, Y: Any, k: int | float, metric: str | tuple[str, str] = "cosine", *, block_size: int | None = None
) -> np.ndarray:
    """(n,) Jaccard index of each item's k-NN set in X and in Y (itself excluded); `nngs` is its mean.
    Low values point at items whose neighbourhood the second space does not keep."""
    kk, counts = _shared_counts(X, Y, [k], metric, block_size)
    c = counts[:, 0].astype(np.float64)
    return c / (2 * kk[0] - c)


def nngs(
    X: Any, Y: Any, k: int | float, metric: str | tuple[str, str] = "cosine", *, block_size: int | None = None
) -> float:
    """Nearest-neighbour graph similarity (Tavares, Ayres & Smaragdis, 2024) of two spaces of the same
    n items: the mean over items of the Jaccard index of their k nearest neighbours in X and in Y.

    X, Y: (n, d_x) and (n, d_y) dense arrays, scipy sparse matrices (concept codes) or Embeddings;
    row i is the same item in both. k: neighbour count in [1, n-1], or a float in (0, 1) for
    round(k * n). metric: "cosine", "euclidean" ("sqeuclidean" ranks the same), "dot", or a pair
    (metric for X, metric for Y). 1 means identical neighbour graphs; see `nngs_chance` for the
    value of unrelated spaces. Exact; memory O(block_size * n) (see module docstring for ties)."""
    return float(nngs_per_point(X, Y, k, metric, block_size=block_size).mean())


@dataclass(frozen=True)
class NNGSSpectrum:
    """NNGS over a range of k: raw score, chance level and normalised score per k."""

    n: int
    k: np.ndarray  # (m,) int, ascending
    score: np.ndarray  # (m,) mean Jaccard index
    chance: np.ndarray  # (m,) k / (2(n-1) - k)
    normalized: np.ndarray  # (m,) (score - chance) / (1 - chance); NaN where chance = 1 (k = n-1)

    def to_frame(self):  # -> pandas.DataFrame
        """Columns k, score, chance, normalized (one row per k), for tables and plots."""
        import pandas as pd

        return pd.DataFrame({"k": self.k, "score": self.score, "chance": self.chance, "normalized": self.normalized})


def nngs_spectrum(
    X: Any,
    Y: Any,
    ks: Sequence[int | float] | None = None,
    metric: str | tuple[str, str] = "cosine",
    *,
    block_size: int | None = None,
) -> NNGSSpectrum:
    """NNGS for every k in ks (ints or fractions of n; default 1, 2, 5, ..., 1000 below n), with
    chance level and normalised score. Neighbours are found once, for the largest k, and every
    smaller k reuses their prefixes, so a spectrum costs about as much as one `nngs` call."""
    X, Y = _pair(X, Y)
    n = X.shape[0]
    if ks is None:
        ks = [k for k in DEFAULT_KS if k <= min(n - 1, 1000)]
    kk, counts = _shared_counts(X, Y, list(ks), metric, block_size)
    c = counts.astype(np.float64)
    score = (c / (2 * kk[None, :] - c)).mean(axis=0)
    order = np.argsort(kk, kind="stable")
    kk, score = kk[order], score[order]
    keep = np.concatenate([[True], kk[1:] != kk[:-1]])
    kk, score = kk[keep], score[keep]
    chance = kk / (2.0 * (n - 1) - kk)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalized = np.where(chance < 1.0, (score - chance) / (1.0 - chance), np.nan)
    return NNGSSpectrum(n=n, k=kk, score=score, chance=chance, normalized=normalized)


def mutual_knn(
    X: Any, Y: Any, k: int | float = 10, metric: str | tuple[str, str] = "cosine", *, block_size: int | None = None
) -> float:
    """Mutual k-NN alignment (Huh, Cheung, Wang & Isola, 2024, "The platonic representation
    hypothesis"): mean over items i of |N_X(i) & N_Y(i)| / k, where N(i) is the set of the k nearest
    neighbours of item i among the other n-1 items (self excluded; their reference code masks the
    diagonal and uses cosine similarity of L2-normalised features, our default). Chance level
    k / (n-1). Per item it equals 2J / (1 + J) for the NNGS Jaccard index J, so it ranks pairs of
    spaces like `nngs` but on a different scale. Huh et al. compute it within mini-batches; this is
    the exact value over all n items."""
    kk, counts = _shared_counts(X, Y, [k], metric, block_size)
    return float(counts[:, 0].mean() / kk[0])


# --------------------------------------------------------------------------------------------
# linear CKA

#: refuse feature-space CKA whose d x d accumulators would exceed this many bytes
CKA_MAX_BYTES = 4 * 2**30


def _cross_stats(A: np.ndarray | sp.csr_matrix, Bm: np.ndarray | sp.csr_matrix, chunk: int) -> np.ndarray:
    """Centred cross-product A_c^T B_c (float64), accumulated over row chunks."""
    n = A.shape[0]
    ma = np.asarray(A.sum(axis=0), dtype=np.float64).ravel() / n
    mb = np.asarray(Bm.sum(axis=0), dtype=np.float64).ravel() / n
    acc = np.zeros((A.shape[1], Bm.shape[1]), dtype=np.float64)
    for s in range(0, n, chunk):
        a, b = A[s : s + chunk], Bm[s : s + chunk]
        if sp.issparse(a):
            a = a.toarray()
        if sp.issparse(b):
            b = b.toarray()
        # centre each chunk before the product: no cancellation from large means
        acc += (a.astype(np.float64) - ma).T @ (b.astype(np.float64) - mb)
    return acc


def linear_cka(X: Any, Y: Any) -> float:
    """Linear CKA (Kornblith et al., 2019) between two spaces of the same n items:
    ||X_c^T Y_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F), X_c, Y_c column-centred.

    Feature-space formula: O(n d^2) time, O(d^2) memory, so n = 100,000 is fine. Equal to the
    HSIC form with centred linear Gram matrices; invariant to orthogonal transforms and isotropic
    scaling of either space. Sparse inputs (concept codes) are densified chunk by chunk; columns that
    are zero for every item are dropped first (they contribute nothing)."""
    X, Y = _pair(X, Y)
    mats = []
    for M in (X, Y):
        if sp.issparse(M):
            used = np.unique(M.indices[M.data != 0])
            M = M[:, used]
        mats.append(M)
    X, Y = mats
    dx, dy = X.shape[1], Y.shape[1]
    need = 8 * (dx * dx + dy * dy + dx * dy)
    if need > CKA_MAX_BYTES:
        raise ValueError(
            f"linear CKA here needs {need / 2**30:.1f} GiB of d x d accumulators (d_x = {dx}, d_y = {dy}); "
            "reduce the number of columns (e.g. keep the concepts that are used, or project with PCA)"
        )
    if dx == 0 or dy == 0:
        raise ValueError("linear CKA is undefined: one space has no non-zero column (no variance)")
    chunk = int(max(1, min(X.shape[0], 2**26 // max(dx, dy))))
    xy = np.linalg.norm(_cross_stats(X, Y, chunk)) ** 2
    xx = np.linalg.norm(_cross_stats(X, X, chunk))
    yy = np.linalg.norm(_cross_stats(Y, Y, chunk))
    if xx == 0 or yy == 0:
        which = "X" if xx == 0 else "Y"
        raise ValueError(f"linear CKA is undefined: all rows of {which} are equal (no variance)")
    return float(xy / (xx * yy))

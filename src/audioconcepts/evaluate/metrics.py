"""Evaluation metrics of the paper: accuracy, DCASE2017 Task 4 F1, AudioSet mAP, Clotho-style
retrieval (R@k, mAP@10, both directions) and bootstrap confidence intervals.

Conventions (chosen to match the benchmarks' own definitions):
- ``f1``: DCASE2017 Task 4 subtask A (audio tagging) ranks systems by the *overall* F1, which pools
  true positives, false positives and false negatives over every (clip, class) decision:
  micro-averaging. ``average="macro"`` (mean of per-class F1) is available for comparison.
- ``mean_average_precision``: AudioSet-style macro mAP: average precision per class over all clips
  (scikit-learn's step-function AP), then the mean over classes that have at least one positive.
- Retrieval with several captions per clip (Clotho: 5): text-to-audio, each caption is a query and
  its clip the one relevant item; audio-to-text, each clip is a query with its captions relevant.
  R@k is the share of queries with at least one relevant item in the top k; AP@10 is
  sum_{r<=10} P@r rel(r) / min(#relevant, 10) (with one relevant item this is 1/rank if rank <= 10,
  the Clotho/DCASE definition). Ties are broken by the item index (stable sort), deterministically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

KS = (1, 5, 10)


# ----------------------------------------------------------------------- classification
def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Share of items whose predicted class is the true class."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or y_true.size == 0:
        raise ValueError(f"accuracy needs two 1-D label arrays of the same non-zero length; got {y_true.shape}, {y_pred.shape}")
    return float(np.mean(y_true == y_pred))


def f1(y_true: np.ndarray, y_pred: np.ndarray, average: str = "micro") -> float:
    """F1 of binary multi-label decisions (n, c): micro (DCASE2017 Task 4 overall) or macro."""
    T, P = _binary_pair(y_true, y_pred)
    tp = (T & P).sum(axis=0).astype(float)
    fp = (~T & P).sum(axis=0).astype(float)
    fn = (T & ~P).sum(axis=0).astype(float)
    if average == "micro":
        denom = 2 * tp.sum() + fp.sum() + fn.sum()
        return float(2 * tp.sum() / denom) if denom else 0.0
    if average == "macro":
        denom = 2 * tp + fp + fn
        return float(np.mean(np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)))
    raise ValueError(f"average must be 'micro' or 'macro'; got {average!r}")


def _binary_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    T, P = np.asarray(y_true), np.asarray(y_pred)
    if T.shape != P.shape or T.ndim != 2:
        raise ValueError(f"expected two (n_items, n_classes) indicator matrices of one shape; got {T.shape}, {P.shape}")
    return T.astype(bool), P.astype(bool)


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one class: mean precision at the rank of each positive (ties: stable)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    # sort by score descending; tied scores are grouped so AP matches scikit-learn's threshold definition
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each tie group
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0, tp]) / n_pos
    return float(np.sum(precision * recall_gain))


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """AudioSet-style macro mAP over classes with at least one positive."""
    T = np.asarray(y_true).astype(bool)
    S = np.asarray(scores, dtype=np.float64)
    if T.shape != S.shape or T.ndim != 2:
        raise ValueError(f"expected labels and scores of one (n_items, n_classes) shape; got {T.shape}, {S.shape}")
    aps = [average_precision(T[:, j], S[:, j]) for j in range(T.shape[1]) if T[:, j].any()]
    if not aps:
        raise ValueError("no class has a positive item: mAP is undefined")
    return float(np.mean(aps))


# ----------------------------------------------------------------------------- retrieval
@dataclass(frozen=True)
class RetrievalRanks:
    """Per-query ranks (1-based) of relevant items; the raw material of every retrieval metric.

    ``ranks[q]`` is a sorted array of the ranks of query q's relevant items."""

    ranks: list[np.ndarray]

    def recall_at(self, k: int) -> np.ndarray:
        return np.array([float(r.size > 0 and r[0] <= k) for r in self.ranks])

    def ap_at(self, k: int = 10) -> np.ndarray:
        out = np.zeros(len(self.ranks))
        for q, r in enumerate(self.ranks):
            if r.size == 0:
                continue
            hits = r[r <= k]
            out[q] = np.sum(np.arange(1, hits.size + 1) / hits) / min(r.size, k)
        return out

    def per_query(self, ks: Sequence[int] = KS) -> dict[str, np.ndarray]:
        """Every metric per query: R@k for each k and AP@10 (means of these are the metrics)."""
        out = {f"R@{k}": self.recall_at(k) for k in ks}
        out["mAP@10"] = self.ap_at(10)
        return out


def relevant_ranks(similarity: np.ndarray, relevant: Sequence[Sequence[int]], block: int = 1024) -> RetrievalRanks:
    """Ranks of the relevant items of each query in `similarity` (n_queries, n_items), best = 1.

    Rank of item i = 1 + #items with a higher score + #items with an equal score and a lower index."""
    S = np.asarray(similarity)
    if S.ndim != 2 or len(relevant) != S.shape[0]:
        raise ValueError(f"similarity must be (n_queries, n_items) with one relevant list per query; got {S.shape}, {len(relevant)}")
    ranks = []
    n_items = S.shape[1]
    items = np.arange(n_items)
    for lo in range(0, S.shape[0], block):
        Sb = S[lo : lo + block]
        rel = [np.asarray(relevant[q], dtype=int) for q in range(lo, lo + len(Sb))]
        width = max((r.size for r in rel), default=0)
        if width == 0:
            ranks += [np.zeros(0, int) for _ in rel]
            continue
        # pad each query's relevant list to `width` by repeating its first item (ignored below)
        idx = np.array([np.r_[r, np.full(width - r.size, r[0] if r.size else 0)] for r in rel])
        score = np.take_along_axis(Sb, idx, axis=1)  # (b, width)
        step = max(1, (1 << 24) // (n_items * width))  # bound the (b, width, n) temporaries
        for s0 in range(0, len(Sb), step):
            Ss, sc, ix = Sb[s0 : s0 + step, None, :], score[s0 : s0 + step, :, None], idx[s0 : s0 + step, :, None]
            before = (Ss > sc) | ((Ss == sc) & (items[None, None, :] < ix))
            r_all = before.sum(axis=2) + 1
            for q in range(len(r_all)):
                ranks.append(np.sort(r_all[q, : rel[s0 + q].size]))
    return RetrievalRanks(ranks)


def _cosine(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    A = np.asarray(A, np.float64)
    B = np.asarray(B, np.float64)
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    return A @ B.T


def retrieval_ranks(
    audio: np.ndarray, text: np.ndarray, text_to_audio: Sequence[int]
) -> tuple[RetrievalRanks, RetrievalRanks]:
    """(text->audio, audio->text) ranks by cosine similarity; text_to_audio[j] is caption j's clip."""
    owner = np.asarray(text_to_audio, dtype=int)
    n_audio = len(audio)
    if owner.shape != (len(text),) or owner.min(initial=0) < 0 or owner.max(initial=0) >= n_audio:
        raise ValueError(f"text_to_audio must give, for each of the {len(text)} captions, a clip index in [0, {n_audio})")
    S = _cosine(text, audio)
    t2a = relevant_ranks(S, [[a] for a in owner])
    captions_of = [np.flatnonzero(owner == a) for a in range(n_audio)]
    a2t = relevant_ranks(S.T, captions_of)
    return t2a, a2t


def retrieval_metrics(
    audio: np.ndarray, text: np.ndarray, text_to_audio: Sequence[int], ks: Sequence[int] = KS
) -> dict[str, float]:
    """R@k and mAP@10 both ways: keys like "text_to_audio R@1", "audio_to_text mAP@10"."""
    t2a, a2t = retrieval_ranks(audio, text, text_to_audio)
    out = {}
    for name, ranks in (("text_to_audio", t2a), ("audio_to_text", a2t)):
        for metric, values in ranks.per_query(ks).items():
            out[f"{name} {metric}"] = float(values.mean())
    return out


# ------------------------------------------------------------------------------ bootstrap
@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap percentile interval."""

    value: float
    low: float
    high: float
    confidence: float
    n_resamples: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        return f"{self.value:.3f} ± {self.half_width:.3f}"


def bootstrap_ci(
    metric: Callable[..., float],
    *arrays: np.ndarray,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of metric(*arrays), resampling rows (queries / items) with replacement.

    Every array is indexed by the same resampled rows, so pass per-item arrays (labels and
    predictions, or per-query metric values with ``metric=np.mean``). Resamples where the metric
    is undefined (it raises ValueError or returns NaN, e.g. no positive of any class) are skipped."""
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array to resample")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive; got {n_resamples}")
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ValueError(f"arrays must be non-empty and have the same number of rows; got {[len(a) for a in arrays]}")
    value = float(metric(*arrays))
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        try:
            s = float(metric(*(a[idx] for a in arrays)))
        except ValueError:
            continue
        if np.isfinite(s):
            stats.append(s)
    return _interval(value, stats, confidence)


def _interval(value: float, stats: list[float], confidence: float) -> Interval:
    if not stats:
        raise ValueError("the metric was undefined on every bootstrap resample")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return Interval(value, float(low), float(high), confidence, len(stats))


def bootstrap_map(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """`bootstrap_ci(mean_average_precision, y_true, scores, ...)`, fast: same seed, same draws,
    same interval (to rounding), without re-sorting for each resample.

    A resample is a vector of item multiplicities; its AP per class is the multiplicity-weighted AP
    over that class's fixed score order (copies of an item are tied, which the tie groups already
    handle). A compiled loop does O(n_items x n_classes) work per resample; AudioSet's evaluation
    set (20k x 527) takes seconds for 1,000 resamples instead of most of an hour."""
    T = np.asarray(y_true).astype(bool)
    S = np.asarray(scores, dtype=np.float64)
    if T.shape != S.shape or T.ndim != 2:
        raise ValueError(f"expected labels and scores of one (n_items, n_classes) shape; got {T.shape}, {S.shape}")
    if not 0 < confidence < 1 or n_resamples < 1:
        raise ValueError(f"need 0 < confidence < 1 and n_resamples >= 1; got {confidence}, {n_resamples}")
    n, _ = T.shape
    value = mean_average_precision(T, S)
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_resamples)]).astype(np.int64)
    order = np.ascontiguousarray(np.argsort(-S, axis=0, kind="stable").T)  # (c, n)
    Ss = np.take_along_axis(S, order.T, axis=0).T
    Ys = np.ascontiguousarray(np.take_along_axis(T, order.T, axis=0).T)
    is_end = np.ones_like(Ss, dtype=bool)
    is_end[:, :-1] = Ss[:, 1:] != Ss[:, :-1]
    ap_sum, n_defined = _weighted_ap_sums(order, Ys, np.ascontiguousarray(is_end), counts)
    valid = n_defined > 0
    return _interval(value, (ap_sum[valid] / n_defined[valid]).tolist(), confidence)


@njit(parallel=True, cache=True)
def _weighted_ap_sums(order, Ys, is_end, counts):  # pragma: no cover - compiled
    """Per resample r: the sum over classes of the multiplicity-weighted AP, and the number of
    classes with a positive. order/Ys/is_end are (c, n) in each class's descending score order."""
    R = counts.shape[0]
    c, n = order.shape
    ap_sum = np.zeros(R)
    n_def = np.zeros(R)
    for r in prange(R):
        for j in range(c):
            tp = 0.0
            seen = 0.0
            group_tp = 0.0
            acc = 0.0
            for p in range(n):
                w = counts[r, order[j, p]]
                seen += w
                if Ys[j, p]:
                    tp += w
                    group_tp += w
                if is_end[j, p]:
                    if group_tp > 0:
                        acc += group_tp * tp / seen
                    group_tp = 0.0
            if tp > 0:
                ap_sum[r] += acc / tp
                n_def[r] += 1
    return ap_sum, n_def

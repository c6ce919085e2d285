"""Class-level concept profiles: the mean weight of every concept over the clips of each class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


def class_profiles(codes, labels: np.ndarray, class_names: Sequence[str], concepts: Sequence[str]):
    """DataFrame (classes x concepts) of mean concept weights per class. `labels` are class indices
    (n,) or an (n, c) indicator matrix (a clip counts for each of its classes). Classes without
    clips get NaN rows."""
    import pandas as pd

    W = sp.csr_matrix(codes)
    labels = np.asarray(labels)
    c = len(class_names)
    M = labels.astype(float) if labels.ndim == 2 else np.eye(c)[labels]
    if M.shape != (W.shape[0], c):
        raise ValueError(f"labels give {M.shape} clip-class memberships for {W.shape[0]} clips and {c} classes")
    counts = M.sum(axis=0)
    sums = np.asarray((sp.csr_matrix(M.T) @ W).todense())
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    return pd.DataFrame(means, index=list(class_names), columns=list(concepts))


def top_concepts(profiles, top: int = 5) -> dict[str, list[tuple[str, float]]]:
    """Each class's `top` concepts by mean weight, largest first (zero weights left out)."""
    out = {}
    for cls, row in profiles.iterrows():
        values = row.to_numpy(dtype=float)
        order = np.argsort(-np.nan_to_num(values, nan=0.0), kind="stable")[:top]
        out[str(cls)] = [(str(profiles.columns[j]), float(values[j])) for j in order if values[j] > 0]
    return out

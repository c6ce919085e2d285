"""The SpLiCE preprocessing: L2-normalise, subtract a mean, L2-normalise again."""

from __future__ import annotations

import numpy as np


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero."""
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=-1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def center(X: np.ndarray, mean: np.ndarray | None, normalize: bool = True) -> np.ndarray:
    """normalise(normalise(X) - mean); each step is skipped when mean is None / normalize is False."""
    X = l2_normalize(X) if normalize else np.asarray(X, dtype=np.float64)
    if mean is None:
        return X
    return l2_normalize(X - mean) if normalize else X - mean


def recompose(codes, concepts: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    """Dense unit-norm embeddings back from concept weights: normalise(normalise(W C) + mean)."""
    Z = l2_normalize(np.asarray(codes @ concepts))
    return Z if mean is None else l2_normalize(Z + mean)

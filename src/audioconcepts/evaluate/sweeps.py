"""Sweeps: a task metric, the mean number of concepts and the mean cosine(recomposed, original)
over lambda (warm-started along the path) and over vocabularies (sizes and recipes)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

#: The paper's lambda range.
DEFAULT_LAMBDAS = (0.01, 0.02, 0.05, 0.1, 0.15, 0.25, 0.5)


def lambda_sweep(
    decomposer,
    Z: np.ndarray,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    evaluate: Callable[[np.ndarray], float] | None = None,
):
    """One row per lambda: lambda, metric (evaluate(recomposed embeddings), NaN without evaluate),
    mean_nnz, mean_cosine. The decomposer must be fitted; decompose_path warm-starts the path."""
    import pandas as pd

    rows = []
    for lam, dec in zip(lambdas, decomposer.decompose_path(Z, list(lambdas), certify=False)):
        metric = float(evaluate(decomposer.inverse_transform(dec.codes))) if evaluate else float("nan")
        rows.append({"lambda": float(lam), "metric": metric, "mean_nnz": float(np.mean(dec.nnz)), "mean_cosine": float(np.nanmean(dec.cosine))})
    return pd.DataFrame(rows).sort_values("lambda", ignore_index=True)


def vocabulary_subsets(vocabulary, sizes: Sequence[int]) -> dict[str, object]:
    """The first n concepts of a vocabulary for each size n (vocabularies built by frequency keep
    their most frequent concepts first); sizes larger than the vocabulary are skipped."""
    from audioconcepts.vocab import Vocabulary

    out = {}
    for n in sizes:
        if n <= len(vocabulary):
            out[f"first {n}"] = Vocabulary(vocabulary.concepts[:n], vocabulary.embeddings[:n], vocabulary.fingerprint)
    return out


def vocabulary_sweep(
    vocabularies: Mapping[str, object],
    Z: np.ndarray,
    l1_penalty: float,
    evaluate: Callable[[np.ndarray], float] | None = None,
    *,
    fit_on: np.ndarray | None = None,
):
    """One row per vocabulary: name, size, metric, mean_nnz, mean_cosine at one lambda. Each
    decomposer is fitted on `fit_on` (default Z) for the modality mean."""
    import pandas as pd

    from audioconcepts import ConceptDecomposer

    rows = []
    for name, vocab in vocabularies.items():
        dec = ConceptDecomposer(vocab, l1_penalty=l1_penalty).fit(Z if fit_on is None else fit_on)
        d = dec.decompose(Z, certify=False)
        metric = float(evaluate(dec.inverse_transform(d.codes))) if evaluate else float("nan")
        rows.append({"vocabulary": name, "size": len(vocab), "metric": metric, "mean_nnz": float(np.mean(d.nnz)), "mean_cosine": float(np.nanmean(d.cosine))})
    return pd.DataFrame(rows)

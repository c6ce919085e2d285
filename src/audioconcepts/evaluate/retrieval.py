"""Cross-modal retrieval (text->audio and audio->text), dense and concept-based, with bootstrap intervals.

Concept-based retrieval follows the paper: the audio embeddings are replaced by their recomposition
from the concept codes, z^ = inverse_transform(transform(z)); the text queries stay dense."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audioconcepts.evaluate.metrics import KS, Interval, bootstrap_ci, retrieval_ranks


def recompose(decomposer, Z: np.ndarray) -> np.ndarray:
    """Dense embeddings rebuilt from their concept codes (the concept-based embedding of the paper)."""
    return decomposer.inverse_transform(decomposer.transform(Z))


@dataclass(frozen=True)
class RetrievalResult:
    """Retrieval metrics with bootstrap intervals, keyed "text_to_audio R@1", "audio_to_text mAP@10", ..."""

    metrics: dict[str, Interval]
    per_query: dict[str, np.ndarray]  #: per-query values behind each metric (for paired comparisons)

    def value(self, key: str) -> float:
        return self.metrics[key].value


def evaluate_retrieval(
    audio: np.ndarray,
    text: np.ndarray,
    text_to_audio: Sequence[int],
    *,
    ks: Sequence[int] = KS,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RetrievalResult:
    """R@k and mAP@10 both ways with percentile bootstrap intervals over the queries of each direction."""
    t2a, a2t = retrieval_ranks(np.asarray(audio), np.asarray(text), text_to_audio)
    metrics, per_query = {}, {}
    for name, ranks in (("text_to_audio", t2a), ("audio_to_text", a2t)):
        for metric, values in ranks.per_query(ks).items():
            key = f"{name} {metric}"
            per_query[key] = values
            metrics[key] = (
                bootstrap_ci(np.mean, values, n_resamples=n_resamples, confidence=confidence, seed=seed)
                if n_resamples
                else Interval(float(values.mean()), float("nan"), float("nan"), confidence, 0)
            )
    return RetrievalResult(metrics, per_query)


def dense_and_concept_retrieval(
    decomposer,
    audio: np.ndarray,
    text: np.ndarray,
    text_to_audio: Sequence[int],
    **options,
) -> dict[str, RetrievalResult]:
    """{"dense": ..., "concepts": ...}: retrieval with the audio embeddings as they are and recomposed
    from their concept codes (the decomposer must be fitted)."""
    return {
        "dense": evaluate_retrieval(audio, text, text_to_audio, **options),
        "concepts": evaluate_retrieval(recompose(decomposer, audio), text, text_to_audio, **options),
    }

"""Zero-shot classification with class prompts, on dense, concept-based and fine-tuned embeddings.

Each clip is scored against the text embedding of "This is a sound of [class label]." for every
class (cosine similarity). Single-label datasets are scored by accuracy of the best class;
multi-label ones by AudioSet-style macro mAP of the scores, or (DCASE2017 Task 4) by micro F1 of
the decisions "the best-scoring class is present" (zero-shot has no trained thresholds; the paper
does not say how it thresholded, so we predict the top class: most DCASE2017 Task 4 clips carry
one label).

Variants (the paper's rows):
- "dense": the embeddings as they are;
- "concepts": the recomposition from concept codes, inverse_transform(transform(z));
- "finetuned": H z, a d x d projector trained on the development folds (evaluate.finetune);
- "finetuned+concepts": decomposition of H z (decomposer fitted on projected development clips).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audioconcepts.evaluate.metrics import Interval, accuracy, bootstrap_ci, bootstrap_map, f1, mean_average_precision

PROMPT = "This is a sound of {}."
METRICS = ("accuracy", "f1", "map")


def class_prompts(class_names: Sequence[str], template: str = PROMPT) -> list[str]:
    """The prompt per class; underscores in labels (ESC-50's "dog_bark") become spaces."""
    if "{}" not in template:
        raise ValueError(f"the prompt template needs a '{{}}' where the class label goes; got {template!r}")
    return [template.format(str(c).replace("_", " ").strip()) for c in class_names]


def class_scores(embeddings: np.ndarray, class_text: np.ndarray) -> np.ndarray:
    """Cosine similarity (n_clips, n_classes) between clip embeddings and class prompt embeddings."""
    A = np.asarray(embeddings, np.float64)
    T = np.asarray(class_text, np.float64)
    if A.ndim != 2 or T.ndim != 2 or A.shape[1] != T.shape[1]:
        raise ValueError(f"clip embeddings {A.shape} and class prompt embeddings {T.shape} must share a dimension")
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    T = T / np.linalg.norm(T, axis=1, keepdims=True)
    return A @ T.T


def score(labels: np.ndarray, scores: np.ndarray, metric: str) -> float:
    """The dataset metric from labels ((n,) class indices, or (n, c) indicators) and class scores."""
    labels = np.asarray(labels)
    if metric == "accuracy":
        if labels.ndim != 1:
            raise ValueError("accuracy needs one class index per clip; use metric='map' or 'f1' for multi-label data")
        return accuracy(labels, np.argmax(scores, axis=1))
    indicators = labels if labels.ndim == 2 else np.eye(scores.shape[1], dtype=bool)[labels]
    if metric == "map":
        return mean_average_precision(indicators, scores)
    if metric == "f1":
        top = np.zeros(scores.shape, bool)
        top[np.arange(len(scores)), np.argmax(scores, axis=1)] = True
        return f1(indicators, top, "micro")
    raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


@dataclass(frozen=True)
class ZeroShotResult:
    metric: str
    result: Interval
    scores: np.ndarray  #: (n, c) class scores


def zero_shot(
    embeddings: np.ndarray,
    labels: np.ndarray,
    class_text: np.ndarray,
    metric: str = "accuracy",
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ZeroShotResult:
    """Zero-shot metric with a bootstrap interval over clips."""
    S = class_scores(embeddings, class_text)
    labels = np.asarray(labels)
    if len(labels) != len(S):
        raise ValueError(f"{len(labels)} labels for {len(S)} clips")
    if n_resamples and metric == "map":  # same resamples, compiled: AudioSet-sized sets in seconds
        indicators = labels if labels.ndim == 2 else np.eye(S.shape[1], dtype=bool)[labels]
        interval = bootstrap_map(indicators, S, n_resamples=n_resamples, confidence=confidence, seed=seed)
    elif n_resamples:
        interval = bootstrap_ci(
            lambda y, s: score(y, s, metric), labels, S, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
    else:
        interval = Interval(score(labels, S, metric), float("nan"), float("nan"), confidence, 0)
    return ZeroShotResult(metric, interval, S)


def zero_shot_variants(
    decomposer,
    embeddings: np.ndarray,
    labels: np.ndarray,
    class_text: np.ndarray,
    metric: str = "accuracy",
    *,
    projector=None,
    finetuned_decomposer=None,
    **options,
) -> dict[str, ZeroShotResult]:
    """The paper's rows for one dataset: "dense", "concepts" and, given a fitted projector,
    "finetuned" (H z) and "finetuned+concepts" (decomposition of H z with `finetuned_decomposer`,
    which must be fitted on projected embeddings; the plain decomposer is used if None)."""
    from audioconcepts.evaluate.retrieval import recompose

    Z = np.asarray(embeddings)
    out = {
        "dense": zero_shot(Z, labels, class_text, metric, **options),
        "concepts": zero_shot(recompose(decomposer, Z), labels, class_text, metric, **options),
    }
    if projector is not None:
        HZ = np.asarray(projector.transform(Z))
        out["finetuned"] = zero_shot(HZ, labels, class_text, metric, **options)
        out["finetuned+concepts"] = zero_shot(
            recompose(finetuned_decomposer or decomposer, HZ), labels, class_text, metric, **options
        )
    return out

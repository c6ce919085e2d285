"""Evaluation: dataset loaders, metrics, zero-shot classification, retrieval, sweeps, profiles and
the report that reproduces the paper's tables and figures.

Submodules import lazily where they need heavy dependencies (matplotlib, torch)."""

from audioconcepts.evaluate.metrics import (
    Interval,
    accuracy,
    average_precision,
    bootstrap_ci,
    f1,
    mean_average_precision,
    retrieval_metrics,
    retrieval_ranks,
)
from audioconcepts.evaluate.finetune import Projector, fit_projector
from audioconcepts.evaluate.similarity import (
    NNGSSpectrum,
    knn,
    linear_cka,
    mutual_knn,
    nngs,
    nngs_chance,
    nngs_per_point,
    nngs_spectrum,
)

__all__ = [
    "Interval",
    "accuracy",
    "average_precision",
    "bootstrap_ci",
    "f1",
    "mean_average_precision",
    "retrieval_metrics",
    "retrieval_ranks",
    # fine-tuned variant (torch imported only when training)
    "Projector",
    "fit_projector",
    # embedding-space similarity
    "NNGSSpectrum",
    "knn",
    "linear_cka",
    "mutual_knn",
    "nngs",
    "nngs_chance",
    "nngs_per_point",
    "nngs_spectrum",
]

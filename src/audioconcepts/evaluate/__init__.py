"""Evaluation: dataset loaders, metrics, zero-shot classification, retrieval, sweeps, profiles and
the report that reproduces the paper's tables and figures.

Submodules import lazily where they need heavy dependencies (matplotlib, torch)."""

from audioconcepts.evaluate.datasets import (
    AudioDataset,
    EmbeddedDataset,
    load_audiocaps,
    load_audioset,
    load_clotho,
    load_dcase2017_task4,
    load_embedded,
    load_esc50,
    load_tut2017,
    load_urbansound8k,
    load_vocalsound,
)
from audioconcepts.evaluate.finetune import Projector, fit_projector
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
from audioconcepts.evaluate.profiles import class_profiles, top_concepts
from audioconcepts.evaluate.report import ReportSettings, reproduce
from audioconcepts.evaluate.retrieval import dense_and_concept_retrieval, evaluate_retrieval
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
from audioconcepts.evaluate.sweeps import lambda_sweep, vocabulary_sweep
from audioconcepts.evaluate.zeroshot import class_prompts, zero_shot, zero_shot_variants

__all__ = [
    # datasets
    "AudioDataset",
    "EmbeddedDataset",
    "load_audiocaps",
    "load_audioset",
    "load_clotho",
    "load_dcase2017_task4",
    "load_embedded",
    "load_esc50",
    "load_tut2017",
    "load_urbansound8k",
    "load_vocalsound",
    # zero-shot, retrieval, sweeps, profiles, the report
    "class_prompts",
    "zero_shot",
    "zero_shot_variants",
    "evaluate_retrieval",
    "dense_and_concept_retrieval",
    "lambda_sweep",
    "vocabulary_sweep",
    "class_profiles",
    "top_concepts",
    "ReportSettings",
    "reproduce",
    # metrics
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

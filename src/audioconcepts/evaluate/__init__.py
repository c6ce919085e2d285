"""Evaluation: dataset loaders, metrics, zero-shot classification, retrieval, sweeps, profiles,
embedding-space similarity, the fine-tuned variant and the report that reproduces the paper"s
tables and figures.

Names are imported on first use, so the command line starts without numpy, matplotlib or torch."""

from __future__ import annotations

from audioconcepts._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        (
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
        ),
        "audioconcepts.evaluate.datasets",
    ),
    **dict.fromkeys(("Projector", "fit_projector"), "audioconcepts.evaluate.finetune"),
    **dict.fromkeys(
        (
            "Interval",
            "accuracy",
            "average_precision",
            "bootstrap_ci",
            "f1",
            "mean_average_precision",
            "retrieval_metrics",
            "retrieval_ranks",
        ),
        "audioconcepts.evaluate.metrics",
    ),
    **dict.fromkeys(("class_profiles", "top_concepts"), "audioconcepts.evaluate.profiles"),
    **dict.fromkeys(("ReportSettings", "reproduce"), "audioconcepts.evaluate.report"),
    **dict.fromkeys(("dense_and_concept_retrieval", "evaluate_retrieval"), "audioconcepts.evaluate.retrieval"),
    **dict.fromkeys(
        ("NNGSSpectrum", "knn", "linear_cka", "mutual_knn", "nngs", "nngs_chance", "nngs_per_point", "nngs_spectrum"),
        "audioconcepts.evaluate.similarity",
    ),
    **dict.fromkeys(("lambda_sweep", "vocabulary_sweep"), "audioconcepts.evaluate.sweeps"),
    **dict.fromkeys(("class_prompts", "zero_shot", "zero_shot_variants"), "audioconcepts.evaluate.zeroshot"),
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)

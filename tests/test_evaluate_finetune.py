"""The fine-tuned projector H: learns a known map, deterministic, unit-norm output, file round-trip."""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from audioconcepts import Embeddings  # noqa: E402
from audioconcepts.evaluate.finetune import Projector, cosine_loss, fit_projector  # noqa: E402

FAST = dict(batch_size=64, num_threads=1)


def synthetic(n=800, d=16, C=8, noise=0.35, seed=0):
    """Class text embeddings T; audio z = unit(M^-1 (t_y + noise)) for a random M, so the true
    projector is M (up to scale) and raw z scores near chance in zero-shot."""
    rng = np.random.default_rng(seed)
    T = rng.standard_normal((C, d))
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    M = rng.standard_normal((d, d)) / np.sqrt(d)
    y = rng.integers(0, C, n)
    Z = np.linalg.solve(M, (T[y] + noise * rng.standard_normal((n, d))).T).T
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    return Z.astype(np.float32), y, T.astype(np.float32), M


def zero_shot_accuracy(Z, y, T):
    Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    return float(np.mean(np.argmax(Zn @ T.T, axis=1) == y))


@pytest.fixture(scope="module")
def problem():
    return synthetic()


@pytest.fixture(scope="module")
def trained(problem):
    Z, y, T, _ = problem
    return fit_projector(Z[:500], y[:500], T, epochs=40, lr=1e-2, seed=0, **FAST)


def test_training_raises_zero_shot_accuracy_and_lowers_the_loss(problem, trained):
    Z, y, T, _ = problem
    test = slice(500, None)  # held out
    before = zero_shot_accuracy(Z[test], y[test], T)
    after = zero_shot_accuracy(trained.transform(Z[test]), y[test], T)
    assert before < 0.45  # the scrambled space is poor in zero-shot (chance is 1/8) ...
    assert after > before + 0.3 and after > 0.75  # ... and H recovers the classes
    loss = trained.history["train_loss"]
    assert len(loss) == 41  # before training + one per epoch
    assert loss[-1] < 0.6 * loss[0]
    assert min(loss[-5:]) < min(loss[:5])
    # the recorded loss is the cosine loss of the returned matrix (independent numpy computation)
    assert cosine_loss(Z[:500] @ trained.matrix.T, T[y[:500]]) == pytest.approx(loss[-1], abs=1e-4)


def test_transform_gives_unit_rows(problem, trained):
    Z, *_ = problem
    out = trained.transform(Z)
    assert out.shape == Z.shape and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    ref = Z.astype(np.float64) @ trained.matrix.T.astype(np.float64)
    np.testing.assert_allclose(out, ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=1e-6)
    with pytest.raises(ValueError, match="trained on d = 16"):
        trained.transform(Z[:, :8])


def test_deterministic_with_a_seed(problem):
    Z, y, T, _ = problem
    a = fit_projector(Z[:200], y[:200], T, epochs=5, lr=1e-2, seed=3, **FAST)
    b = fit_projector(Z[:200], y[:200], T, epochs=5, lr=1e-2, seed=3, **FAST)
    c = fit_projector(Z[:200], y[:200], T, epochs=5, lr=1e-2, seed=4, **FAST)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert a.history == b.history
    assert not np.allclose(a.matrix, c.matrix)


def test_device_selection_runs_on_cpu(problem):
    Z, y, T, _ = problem
    devices = ["cpu", torch.device("cpu")] + ([] if torch.cuda.is_available() else [None])  # None -> cpu here
    runs = [fit_projector(Z[:200], y[:200], T, epochs=3, lr=1e-2, seed=1, device=dev, **FAST) for dev in devices]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.matrix, runs[0].matrix)
    assert runs[-1].config["device"] == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            fit_projector(Z[:50], y[:50], T, epochs=1, device="cuda")
    with pytest.raises(ValueError, match="unknown device"):
        fit_projector(Z[:50], y[:50], T, epochs=1, device="gpu-please")


def test_num_threads_is_restored(problem):
    Z, y, T, _ = problem
    before = torch.get_num_threads()
    fit_projector(Z[:50], y[:50], T, epochs=1, num_threads=1)
    assert torch.get_num_threads() == before


def test_save_load_round_trip(tmp_path, problem, trained):
    Z, *_ = problem
    path = trained.save(tmp_path / "proj")
    assert path.suffix == ".npz"
    back = Projector.load(path)
    np.testing.assert_array_equal(back.matrix, trained.matrix)
    assert back.history == trained.history
    assert back.config == trained.config
    np.testing.assert_array_equal(back.transform(Z), trained.transform(Z))
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a projector file"):
        Projector.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        Projector.load(tmp_path / "missing.npz")


def test_early_stopping_keeps_the_best_validation_matrix():
    # 40 noisy training rows for a 16 x 16 map: validation loss falls, then turns up as it overfits
    Z, y, T, _ = synthetic(n=400, noise=0.8, seed=5)
    Zv, yv = Z[40:], y[40:]
    p = fit_projector(Z[:40], y[:40], T, epochs=300, lr=1e-2, patience=5, validation_data=(Zv, yv), **FAST)
    val = p.history["val_loss"]
    assert p.config["early_stopped"] and p.config["epochs_run"] < 300
    assert min(val) < val[0] - 0.05 and val[-1] > min(val)
    assert p.config["epochs_run"] - p.config["best_epoch"] == 5
    assert p.config["best_epoch"] == int(np.argmin(val))
    assert cosine_loss(Zv @ p.matrix.T, T[yv]) == pytest.approx(min(val), abs=1e-4)


def test_validation_fraction_split_and_label_names(problem):
    Z, y, T, _ = problem
    names = [f"class {c}" for c in range(8)]
    p = fit_projector(Z[:300], [names[c] for c in y[:300]], T, classes=names, epochs=2, validation_fraction=0.2,
                      **FAST)
    assert p.config["n_train"] == 240 and p.config["n_val"] == 60
    assert len(p.history["val_loss"]) == len(p.history["train_loss"])
    assert p.config["classes"] == names


def test_identity_init_starts_from_the_zero_shot_model(problem):
    Z, y, T, _ = problem
    p = fit_projector(Z[:100], y[:100], T, epochs=1, lr=1e-7, init="identity", **FAST)
    np.testing.assert_allclose(p.matrix, np.eye(16), atol=1e-5)
    r = fit_projector(Z[:100], y[:100], T, epochs=1, lr=1e-7, init="random", **FAST)
    assert np.abs(r.matrix).max() <= 1 / 4 + 1e-5  # U(-1/sqrt(d), 1/sqrt(d)), d = 16


def test_embeddings_fingerprint_is_recorded(problem):
    Z, y, T, _ = problem
    p = fit_projector(Embeddings(Z[:50], "model-x"), y[:50], T, epochs=1, **FAST)
    assert p.config["fingerprint"] == "model-x"


def test_clear_errors(problem, monkeypatch):
    Z, y, T, _ = problem
    with pytest.raises(ValueError, match="d = 12 but Z has d = 16"):
        fit_projector(Z, y, T[:, :12], epochs=1)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 7\]"):
        fit_projector(Z[:10], np.arange(10), T, epochs=1)
    with pytest.raises(ValueError, match="one label per row"):
        fit_projector(Z[:10], y[:9], T, epochs=1)
    with pytest.raises(TypeError, match="classes="):
        fit_projector(Z[:3], ["a", "b", "c"], T, epochs=1)
    with pytest.raises(ValueError, match="labels not in classes"):
        fit_projector(Z[:2], ["a", "zzz"], T, classes=list("abcdefgh"), epochs=1)
    Zn = Z[:10].copy()
    Zn[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_projector(Zn, y[:10], T, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        fit_projector(Z[:10], y[:10], T, epochs=0)
    with pytest.raises(ValueError, match="not both"):
        fit_projector(Z[:10], y[:10], T, validation_fraction=0.2, validation_data=(Z[:5], y[:5]))
    with pytest.raises(ValueError, match="square"):
        Projector(matrix=np.zeros((3, 4)))
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(ImportError, match="pip install torch"):
        fit_projector(Z[:10], y[:10], T, epochs=1)

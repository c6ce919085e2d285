"""The paper's fine-tuned variant: a d x d linear projector H trained so that H z_a points at the
text embedding of "This is a sound of [class label]." for the true class (cosine loss).

Zhang, Thomaz & Lu train H from a random initialisation on the development folds, then evaluate
zero-shot with H z_a alone and with H z_a decomposed into concepts. `fit_projector` does the
training (torch, CPU or GPU, Adam, minibatches, optional early stopping on a validation split);
the returned `Projector` is plain numpy, so applying, saving and loading it needs no torch.

torch is an optional dependency: `pip install torch` (or the `torch` extra) to train.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["Projector", "fit_projector", "cosine_loss"]

_FORMAT = "audioconcepts.projector/1"


def _unit_rows(A: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{int(np.sum(norms == 0))} rows are all zero after projection; cannot normalise them")
    return A / norms


def cosine_loss(Z: np.ndarray, targets: np.ndarray) -> float:
    """Mean of 1 - cos(z_i, t_i) over rows: the training objective, in numpy (for reporting)."""
    Z = np.asarray(Z, dtype=np.float64)
    T = np.asarray(targets, dtype=np.float64)
    cos = np.einsum("ij,ij->i", _unit_rows(Z), _unit_rows(T))
    return float(np.mean(1.0 - cos))


@dataclass
class Projector:
    """A trained d x d linear map: `transform(Z)` returns the unit rows of Z @ matrix.T (i.e. H z)."""

    matrix: np.ndarray  # (d, d) float32, H
    history: dict[str, list[float]] = field(default_factory=dict)  # train_loss / val_loss per epoch
    config: dict[str, Any] = field(default_factory=dict)  # training settings, best epoch, fingerprint

    def __post_init__(self) -> None:
        H = np.asarray(self.matrix, dtype=np.float32)
        if H.ndim != 2 or H.shape[0] != H.shape[1]:
            raise ValueError(f"a projector matrix must be square (d, d), got shape {H.shape}")
        self.matrix = H

    @property
    def dim(self) -> int:
        return self.matrix.shape[0]

    def transform(self, Z: Any) -> np.ndarray:
        """(n, d) float32 unit rows of H z for each row z of Z (an array or Embeddings)."""
        Z = _as_float_matrix(Z, "Z")
        if Z.shape[1] != self.dim:
            raise ValueError(f"Z has {Z.shape[1]} columns but the projector was trained on d = {self.dim}")
        return _unit_rows(Z.astype(np.float64) @ self.matrix.T.astype(np.float64)).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        """Write an .npz (matrix, loss history, JSON config; no pickles). Returns the path written."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        header = json.dumps({"format": _FORMAT, "config": self.config})
        arrays = {f"history_{k}": np.asarray(v, dtype=np.float64) for k, v in self.history.items()}
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, matrix=self.matrix, header=np.array(header), **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Projector:
        """Read a file written by `save`."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no projector file at {path}")
        with np.load(path, allow_pickle=False) as f:
            if "matrix" not in f or "header" not in f:
                raise ValueError(f"{path} is not a projector file (written by Projector.save)")
            header = json.loads(str(f["header"]))
            if header.get("format") != _FORMAT:
                raise ValueError(f"{path} has format {header.get('format')!r}, expected {_FORMAT!r}")
            history = {k[len("history_") :]: f[k].tolist() for k in f.files if k.startswith("history_")}
            return cls(matrix=f["matrix"], history=history, config=header.get("config", {}))


def _as_float_matrix(X: Any, name: str) -> np.ndarray:
    vectors = getattr(X, "vectors", None)
    X = np.asarray(vectors if vectors is not None else X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {X.dtype}")
    X = X.astype(np.float32, copy=False)
    if not np.all(np.isfinite(X)):
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
        raise ValueError(f"{name} has NaN or infinite values in {bad.size} rows (first: row {bad[0]})")
    return X


def _labels(y: Any, n: int, n_classes: int, classes: Sequence[str] | None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must be 1-D with one label per row of Z ({n}), got shape {y.shape}")
    if classes is not None:
        if len(classes) != n_classes:
            raise ValueError(f"classes has {len(classes)} names but class_text_embeddings has {n_classes} rows")
        lookup = {str(c): i for i, c in enumerate(classes)}
        missing = sorted({str(v) for v in y} - lookup.keys())
        if missing:
            raise ValueError(f"labels not in classes: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        return np.array([lookup[str(v)] for v in y], dtype=np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError("y must hold integer class indices (rows of class_text_embeddings); pass classes=[...] "
                        "to use label names")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes - 1}] (rows of class_text_embeddings); "
                         f"got {y.min()}..{y.max()}")
    return y.astype(np.int64)


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            "training a projector needs PyTorch: `pip install torch` (or `pip install audioconcepts[torch]`); "
            "applying a saved projector does not"
        ) from exc
    return torch


def _resolve_device(torch, device):
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:0', ...") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use device='cpu' or None")
    return dev


def fit_projector(
    Z: Any,
    y: Any,
    class_text_embeddings: Any,
    *,
    classes: Sequence[str] | None = None,
    epochs: int = 100,
    lr: float = 1e-3,
    batch_size: int = 256,
    weight_decay: float = 0.0,
    init: str = "random",
    validation_fraction: float = 0.0,
    validation_data: tuple[Any, Any] | None = None,
    patience: int | None = 10,
    seed: int = 0,
    device: Any = None,
    num_threads: int | None = None,
) -> Projector:
    """Train H (d x d) so that cos(H z_i, t_{y_i}) is high, t_c = the (unit) text embedding of the
    prompt of class c. Loss: mean(1 - cos). Adam, minibatches shuffled each epoch.

    Z: (n, d) audio embeddings (array or Embeddings); y: (n,) class indices into
    class_text_embeddings (C, d), or names when `classes` (C names, in row order) is given.
    init: "random" (the paper: nn.Linear's default, U(-1/sqrt(d), 1/sqrt(d))) or "identity" (start
    from the zero-shot model). Early stopping: with `validation_data=(Z_val, y_val)` or
    `validation_fraction` > 0 (a seeded, stratified split of Z), training stops after `patience`
    epochs without a better validation loss and the best H is returned. device: None = CUDA if
    available else CPU. num_threads: torch CPU threads during training (restored afterwards); 1 is
    fastest for small d on a busy machine. Deterministic for a given seed on CPU (initialisation and shuffling come
    from a numpy generator; GPU kernels may add last-bit nondeterminism)."""
    torch = _import_torch()
    fingerprint = getattr(Z, "fingerprint", None)
    Z = _as_float_matrix(Z, "Z")
    T = _as_float_matrix(class_text_embeddings, "class_text_embeddings")
    n, d = Z.shape
    if T.shape[1] != d:
        raise ValueError(
            f"class_text_embeddings have d = {T.shape[1]} but Z has d = {d}; embed both with the same model"
        )
    y = _labels(y, n, T.shape[0], classes)
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if init not in ("random", "identity"):
        raise ValueError(f"init must be 'random' or 'identity', got {init!r}")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    if validation_data is not None and validation_fraction > 0:
        raise ValueError("give validation_data or validation_fraction, not both")

    rng = np.random.default_rng(seed)
    if validation_data is not None:
        Zv = _as_float_matrix(validation_data[0], "validation Z")
        if Zv.shape[1] != d:
            raise ValueError(f"validation Z has d = {Zv.shape[1]} but Z has d = {d}")
        yv = _labels(validation_data[1], Zv.shape[0], T.shape[0], classes)
        Zt, yt = Z, y
    elif validation_fraction > 0:
        from sklearn.model_selection import train_test_split

        idx = np.arange(n)
        counts = np.bincount(y)
        stratify = y if counts[counts > 0].min() >= 2 else None
        tr, va = train_test_split(
            idx, test_size=validation_fraction, random_state=int(rng.integers(2**31)), stratify=stratify
        )
        Zt, yt, Zv, yv = Z[tr], y[tr], Z[va], y[va]
    else:
        Zt, yt, Zv, yv = Z, y, None, None
    if len(Zt) == 0:
        raise ValueError("no training rows left after the validation split")

    H0 = np.eye(d) if init == "identity" else rng.uniform(-1 / np.sqrt(d), 1 / np.sqrt(d), size=(d, d))
    dev = _resolve_device(torch, device)
    saved_threads = torch.get_num_threads()
    if num_threads is not None:
        if not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
        torch.set_num_threads(int(num_threads))
    try:
        matrix, history, best_epoch, stopped = _train(
            torch, dev, T, (Zt, yt), None if Zv is None else (Zv, yv), H0, rng,
            epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay, patience=patience,
        )
    finally:
        torch.set_num_threads(saved_threads)
    config = {
        "epochs": int(epochs),
        "epochs_run": len(history["train_loss"]) - 1,
        "best_epoch": int(best_epoch),
        "early_stopped": stopped,
        "lr": float(lr),
        "batch_size": int(batch_size),
        "weight_decay": float(weight_decay),
        "init": init,
        "seed": int(seed),
        "device": str(dev),
        "n_train": len(Zt),
        "n_val": 0 if Zv is None else len(Zv),
        "classes": list(map(str, classes)) if classes is not None else None,
        "fingerprint": fingerprint,
        "loss": "mean(1 - cos(H z, t_y))",
    }
    return Projector(matrix=matrix, history=history, config=config)


def _train(torch, dev, T, train, val, H0, rng, *, epochs, lr, batch_size, weight_decay, patience):
    """The training loop of `fit_projector` (inputs already checked). Returns (H, history, best
    epoch, early-stopped?); with a validation set, H is the one with the lowest validation loss."""
    Zt, yt = train
    Zv, yv = val if val is not None else (None, None)
    targets = torch.nn.functional.normalize(torch.as_tensor(T, device=dev), dim=1)
    Zt_t = torch.as_tensor(Zt, device=dev)
    yt_t = torch.as_tensor(yt, device=dev)
    H = torch.nn.Parameter(torch.as_tensor(H0.astype(np.float32), device=dev))
    opt = torch.optim.Adam([H], lr=lr, weight_decay=weight_decay)

    def loss_of(Zb, yb):
        return (1.0 - torch.nn.functional.cosine_similarity(Zb @ H.T, targets[yb], dim=1)).mean()

    def full_loss(Za, ya):
        with torch.no_grad():
            total = 0.0
            for s in range(0, len(Za), 8192):
                Zb = torch.as_tensor(Za[s : s + 8192], device=dev)
                yb = torch.as_tensor(ya[s : s + 8192], device=dev)
                total += float(loss_of(Zb, yb)) * len(Zb)
            return total / len(Za)

    # losses over the whole training / validation set after each epoch; entry 0 = before training
    history: dict[str, list[float]] = {"train_loss": [full_loss(Zt, yt)]}
    if Zv is not None:
        history["val_loss"] = [full_loss(Zv, yv)]
    best = (history["val_loss"][0] if Zv is not None else np.inf, 0, H.detach().cpu().numpy().copy())
    stopped = False
    for epoch in range(1, epochs + 1):
        order = torch.as_tensor(rng.permutation(len(Zt)), device=dev)
        for s in range(0, len(Zt), batch_size):
            b = order[s : s + batch_size]
            opt.zero_grad()
            loss = loss_of(Zt_t[b], yt_t[b])
            loss.backward()
            opt.step()
        history["train_loss"].append(full_loss(Zt, yt))
        if Zv is not None:
            v = full_loss(Zv, yv)
            history["val_loss"].append(v)
            if v < best[0]:
                best = (v, epoch, H.detach().cpu().numpy().copy())
            elif patience is not None and epoch - best[1] >= patience:
                stopped = True
                break
    if Zv is not None:
        matrix, best_epoch = best[2], best[1]
    else:
        matrix, best_epoch = H.detach().cpu().numpy(), len(history["train_loss"]) - 1
    return matrix, history, best_epoch, stopped

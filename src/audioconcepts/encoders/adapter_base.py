"""What the optional package adapters (`msclap`, `laion_clap`) share.

Those packages pin numpy<2 and older libraries, so they live in an environment of their own. Each
adapter imports its package only when a model is loaded; a missing or broken package becomes one
AdapterUnavailableError that says what to install, why it needs its own environment, and how to
bring the embeddings back here (`audioconcepts embed` there, ``precomputed:`` here). Audio goes
through our windowing and pooling (`audio.WindowedAudioEncoder`), never the packages' own file
loaders (which crop long clips at random); every row is L2-normalised here, whatever the package
returns. Fingerprints: ``<backend>:<name>@<package>-<version>[,local:<sha256[:12]>];d=<d>;prep=<n>``,
where the hash covers a weights file the user named.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
from abc import abstractmethod
from types import ModuleType
from typing import Any

import numpy as np

from audioconcepts.decompose.preprocess import l2_normalize
from audioconcepts.embeddings import Embeddings
from audioconcepts.encoders import PREP_VERSION, AdapterUnavailableError
from audioconcepts.encoders.audio import WindowedAudioEncoder


def import_package(module: str, spec: str, install: str, conflicts: str) -> ModuleType:
    """`module` imported, or an AdapterUnavailableError for `spec` saying what to do instead.

    install: the pip requirement(s) to name; conflicts: why it cannot share this environment."""
    try:
        return importlib.import_module(module)
    except (ImportError, OSError) as e:  # OSError: a compiled extension built for another torch
        raise AdapterUnavailableError(
            f"'{spec}' needs the {module!r} package, which cannot be imported here ({type(e).__name__}: {e}). "
            f"It {conflicts}, so it cannot share an environment with the rest of audioconcepts. In a separate "
            f"environment run `pip install audioconcepts {install}`, then `audioconcepts embed --model {spec} "
            "<audio files or folders> --out emb.parquet`, and load the vectors here with "
            "'precomputed:emb.parquet' (their fingerprint travels with them)."
        ) from e


def package_fingerprint(
    backend: str, name: str, package: ModuleType, distribution: str, dim: int, weights: str | None = None
) -> str:
    """The fingerprint of a model loaded through `package` (see the module docstring)."""
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = str(getattr(package, "__version__", "unknown"))
    revision = f"{distribution}-{version}"
    if weights is not None:
        with open(weights, "rb") as f:
            revision += f",local:{hashlib.file_digest(f, 'sha256').hexdigest()[:12]}"
    return f"{backend}:{name}@{revision};d={dim};prep={PREP_VERSION}"


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type if the message is empty)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def to_numpy(x: Any) -> np.ndarray:
    """A float32 array from a torch tensor or an array-like."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


class PackageEncoder(WindowedAudioEncoder):
    """A WindowedAudioEncoder whose text tower is a package call; subclasses implement
    `_embed_windows` and `_embed_texts` (raw rows; batching and normalising happen here)."""

    @abstractmethod
    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) embeddings of one batch of strings, not necessarily normalised."""

    def embed_text(self, texts: list[str], *, batch_size: int = 64) -> Embeddings:
        """Embed a list of strings with the model's text tower; rows L2-normalised."""
        if isinstance(texts, str):
            raise TypeError("embed_text takes a list of strings, not a single string")
        rows = [np.zeros((0, self.dim), np.float32)]
        rows += [self._embed_texts(list(texts[i : i + batch_size])) for i in range(0, len(texts), batch_size)]
        return Embeddings(l2_normalize(np.concatenate(rows)).astype(np.float32), self.fingerprint)

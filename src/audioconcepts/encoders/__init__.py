"""Encoders: audio and text in, fingerprinted float32 embeddings with L2-normalised rows out.

`load_encoder(spec)` picks a backend from the spec's prefix:

- ``hf-clap:<hub id or directory>`` -- transformers CLAP (LAION checkpoints). A spec without a
  known prefix ("laion/clap-htsat-unfused", "./my-clap") also means this backend.
- ``sentence-transformers:<hub id or directory>`` -- a text-only embedding space (no audio tower).
- ``precomputed:<file.npy | file.parquet>`` -- embeddings made elsewhere, with their fingerprint.
- ``msclap:2023``, ``msclap:2022``, ``laion-clap:<checkpoint file or name>`` -- optional adapters for
  the msclap and laion_clap packages, which need an environment of their own (see `adapter_base`).

Backends are imported only when used, so importing this package does not import torch. Add one
with `register_backend`.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from audioconcepts.embeddings import Embeddings

__all__ = [
    "PREP_VERSION",
    "AdapterUnavailableError",
    "Encoder",
    "EncoderCapabilityError",
    "ModelUnavailableError",
    "load_encoder",
    "model_fingerprint",
    "model_unavailable",
    "register_backend",
]

#: Version of our preprocessing (decoding, resampling, windowing, pooling, tokenisation limits).
#: It is part of every fingerprint: bump it whenever a change could alter an embedding.
PREP_VERSION = 1


@runtime_checkable
class Encoder(Protocol):
    """What every backend provides. `sample_rate` is None when the model has no audio tower."""

    fingerprint: str
    dim: int
    sample_rate: int | None

    def embed_audio(self, audio: Any, *, batch_size: int = 8) -> Embeddings:
        """Embed a list of file paths, or a (list of 1-D float arrays, sample_rate) pair."""
        ...

    def embed_text(self, texts: list[str], *, batch_size: int = 64) -> Embeddings:
        """Embed a list of strings."""
        ...


class ModelUnavailableError(OSError):
    """Model weights could not be loaded; says what was tried and how to point at a local copy."""

    def __init__(self, model: str, tried: Sequence[str], hint: str) -> None:
        self.model = model
        lines = [f"could not load model {model!r}.", "Tried:"] + [f"  - {t}" for t in tried] + [hint]
        super().__init__("\n".join(lines))


class EncoderCapabilityError(TypeError):
    """The encoder cannot do this (e.g. a text-only model asked to embed audio)."""


class AdapterUnavailableError(ImportError):
    """A backend needs an optional adapter or package that is not installed here."""


Loader = Callable[..., Encoder]
_BACKENDS: dict[str, str | Loader] = {
    "hf-clap": "audioconcepts.encoders.hf_clap:load",
    "sentence-transformers": "audioconcepts.encoders.text_only:load",
    "precomputed": "audioconcepts.encoders.precomputed:load",
}
_DEFAULT_BACKEND = "hf-clap"


def register_backend(prefix: str, loader: str | Loader) -> None:
    """Make ``"<prefix>:<target>"`` specs call `loader(target, **options)`.

    `loader` is a callable or a lazy ``"module:function"`` reference (imported on first use)."""
    _BACKENDS[prefix] = loader


register_backend("msclap", "audioconcepts.encoders.msclap:load")
register_backend("laion-clap", "audioconcepts.encoders.laion_clap:load")


def load_encoder(spec: str, **options: Any) -> Encoder:
    """The encoder named by `spec` (see the module docstring); options go to the backend's loader."""
    prefix, sep, target = spec.partition(":")
    if not (sep and prefix in _BACKENDS):
        prefix, target = _DEFAULT_BACKEND, spec
    loader = _BACKENDS[prefix]
    if isinstance(loader, str):
        module, _, name = loader.partition(":")
        loader = getattr(importlib.import_module(module), name)
    encoder = loader(target, **options)
    if looks_like_path(target) and os.path.exists(target):  # reloadable from any working directory
        spec = spec[: len(spec) - len(target)] + os.path.abspath(target)
    try:
        encoder.spec = spec  # what to pass to load_encoder again, e.g. stored by an index
    except AttributeError:
        pass
    return encoder


def looks_like_path(source: str) -> bool:
    """Whether `source` names a local path rather than a Hub id ("org/name")."""
    return os.path.exists(source) or os.path.isabs(source) or source.startswith((".", "~")) or source.count("/") > 1


def check_local_source(backend: str, source: str) -> None:
    """Raise ModelUnavailableError early when `source` is a path but not a directory."""
    if looks_like_path(source) and not os.path.isdir(source):
        reason = "is a file, not a model directory" if os.path.exists(source) else "no such directory"
        raise model_unavailable(backend, source, reason)


def model_unavailable(backend: str, source: str, reason: str) -> ModelUnavailableError:
    """The error for a model that `backend` could not load from `source`: what was tried, and the fix."""
    from huggingface_hub import constants, is_offline_mode

    reason = reason.strip().splitlines()[0] if reason.strip() else "unknown error"
    if looks_like_path(source):
        tried = [f"local directory {os.path.abspath(os.path.expanduser(source))}: {reason}"]
    else:
        hub = "skipped, HF_HUB_OFFLINE is set" if is_offline_mode() else "failed (no network, wrong id or gated model?)"
        tried = [
            f"Hugging Face Hub id {source!r}: download {hub}",
            f"the local Hugging Face cache ({constants.HF_HUB_CACHE}): not found there",
            f"(loader said: {reason})",
        ]
    hint = (
        "To use a model without network access, download it on a machine that has access "
        "(e.g. `hf download <id> --local-dir <dir>`), copy the directory here and pass its path: "
        f"load_encoder('{backend}:/path/to/<dir>')."
    )
    return ModelUnavailableError(source, tried, hint)


def model_fingerprint(
    backend: str, source: str, dim: int, patterns: Sequence[str], local_name: str | None = None
) -> str:
    """``<backend>:<name>@<revision>;d=<dim>;prep=<PREP_VERSION>`` for a model loaded from `source`.

    For a local directory, name is `local_name` (a backend may read it from the model's own files)
    or else the directory's base name, and revision is ``local:`` plus the first 12 hex digits of a
    SHA-256 over the files matching `patterns` (config and weights), so identical copies agree and
    any change to the weights shows. For a Hub id, revision is the commit the Hugging Face cache
    resolved it to."""
    if os.path.isdir(source):
        name = local_name or Path(source).resolve().name
        revision = f"local:{directory_hash(source, patterns)}"
    else:
        name, revision = source, _hub_commit(source)
    return f"{backend}:{name}@{revision};d={dim};prep={PREP_VERSION}"


def directory_hash(directory: str | os.PathLike, patterns: Sequence[str]) -> str:
    """First 12 hex digits of SHA-256 over (relative path, bytes) of the matching files, in sorted order."""
    root = Path(directory)
    files = sorted({p for pattern in patterns for p in root.rglob(pattern) if p.is_file()})
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def _hub_commit(repo_id: str) -> str:
    """The commit of the cached snapshot that from_pretrained just loaded `repo_id` from."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json")
    match = re.search(r"snapshots/([0-9a-f]{40})/", Path(cached).as_posix()) if isinstance(cached, str) else None
    return match.group(1) if match else "unknown-revision"

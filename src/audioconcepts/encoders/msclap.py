"""Microsoft CLAP through the `msclap` package (the paper's model): specs ``msclap:2023`` (1024-d) and
``msclap:2022``. Needs its own environment (see `adapter_base`).

The model's window, rate and dimension come from the package's config for that version
(``duration`` s at ``sampling_rate`` Hz, ``d_proj``; 2023: 7 s at 44.1 kHz, 1024-d). msclap's own
`get_audio_embeddings` loads files with torchaudio and crops a random ``duration``-second segment
of longer clips; we never call it. Our windows (decoded with soundfile, resampled with soxr, see
`audio`) go straight to `CLAPWrapper._get_audio_embeddings`, in inference mode, and are pooled by
our rule. Text goes through msclap's `get_text_embeddings` (its tokenizer and ``text_len``).
"""

from __future__ import annotations

import os

import numpy as np

from audioconcepts.encoders import ModelUnavailableError
from audioconcepts.encoders.adapter_base import (
    PackageEncoder,
    first_line,
    import_package,
    package_fingerprint,
    to_numpy,
)

BACKEND = "msclap"
VERSIONS = ("2022", "2023")  # "clapcap" is msclap's captioner: it has no `clap` attribute to embed with
CONFLICTS = (
    "pins numpy<2 and an older transformers, and imports torchaudio, which must match your torch build exactly"
)


class MSClapEncoder(PackageEncoder):
    """A loaded `msclap.CLAP` (CLAPWrapper)."""

    padding = "tile"  # msclap repeats short clips and truncates to its window

    def __init__(self, wrapper, fingerprint: str) -> None:
        import torch

        self.wrapper, self.fingerprint = wrapper, fingerprint
        args = wrapper.args
        self.sample_rate = int(args.sampling_rate)
        self.window = int(args.duration * self.sample_rate)
        self.dim = int(args.d_proj)
        self.device = "cuda" if wrapper.use_cuda and torch.cuda.is_available() else "cpu"

    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        import torch

        # shaped like msclap's preprocess_audio output: (batch, 1, samples)
        x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))[:, None, :].to(self.device)
        with torch.inference_mode():
            return to_numpy(self.wrapper._get_audio_embeddings(x))

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return to_numpy(self.wrapper.get_text_embeddings(texts))


def load(version: str, *, weights: str | os.PathLike | None = None, use_cuda: bool = False) -> MSClapEncoder:
    """Load Microsoft CLAP `version` ("2023" or "2022").

    weights: a local copy of the version's .pth file; by default msclap downloads it from the
    Hugging Face Hub (microsoft/msclap) or takes it from the HF cache. A weights file you name is
    hashed into the fingerprint. use_cuda: passed to msclap (used only if CUDA is available)."""
    spec = f"{BACKEND}:{version}"
    msclap = import_package("msclap", spec, "msclap", CONFLICTS)
    if version not in VERSIONS:
        raise ValueError(f"{spec!r}: msclap version must be one of {', '.join(VERSIONS)}")
    model_fp = None if weights is None else os.path.expanduser(os.fspath(weights))
    if model_fp is not None and not os.path.isfile(model_fp):
        raise ModelUnavailableError(spec, [f"weights file {os.path.abspath(model_fp)}: not found"], _hint(version))
    try:
        wrapper = msclap.CLAP(model_fp=model_fp, version=version, use_cuda=use_cuda)
    except OSError as e:  # the hub download failed (offline), or the weights file is unreadable
        source = f"weights file {model_fp}" if model_fp else "msclap's download from microsoft/msclap or the HF cache"
        raise ModelUnavailableError(spec, [f"{source}: {first_line(e)}"], _hint(version)) from None
    fingerprint = package_fingerprint(BACKEND, version, msclap, "msclap", int(wrapper.args.d_proj), model_fp)
    return MSClapEncoder(wrapper, fingerprint)


def _hint(version: str) -> str:
    """How to get the weights onto a machine without network access."""
    return (
        "Download them where there is network access (`hf download microsoft/msclap "
        f"CLAP_weights_{version}.pth --local-dir <dir>`), copy the file here and pass it: "
        f"load_encoder('msclap:{version}', weights='<dir>/CLAP_weights_{version}.pth')."
    )

"""LAION CLAP through the `laion_clap` package: ``laion-clap:<checkpoint file or known name>``.
Needs its own environment (see `adapter_base`); the same checkpoints also load, without it, as
``hf-clap:laion/clap-htsat-unfused`` etc.

Known names (`CHECKPOINTS`) set the audio model (HTSAT-tiny/base) and fusion; the four 630k ones,
when not a local file, are fetched by laion_clap's own `load_ckpt(model_id=...)`. Any other
checkpoint is a path, HTSAT-tiny without fusion unless `amodel`/`enable_fusion` say otherwise.

Audio: our windows of exactly 480,000 samples at 48 kHz (the length `get_audio_embedding_from_data`
pads or crops to), quantised through int16 as laion_clap does, are passed as one tensor with
``use_tensor=True`` in inference mode (laion_clap versions disagree on numpy vs tensor input when
``use_tensor=False``). At exactly that length nothing is cropped or random, and fusion checkpoints
take their global branch only. Text: `get_text_embedding` (RoBERTa, 77 tokens); a batch of one text
is sent twice, as laion_clap's tokenizer drops the batch axis of a single text (LAION-AI/CLAP#85).
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

BACKEND = "laion-clap"
WINDOW = 480_000  # samples: get_audio_embedding_from_data's fixed max_len
CONFLICTS = "pins numpy<2 and imports torchvision without declaring it"
#: checkpoint file name -> (amodel, enable_fusion, load_ckpt model_id if laion_clap can fetch it itself)
CHECKPOINTS: dict[str, tuple[str, bool, int | None]] = {
    "630k-best.pt": ("HTSAT-tiny", False, 0),
    "630k-audioset-best.pt": ("HTSAT-tiny", False, 1),
    "630k-fusion-best.pt": ("HTSAT-tiny", True, 2),
    "630k-audioset-fusion-best.pt": ("HTSAT-tiny", True, 3),
    "music_audioset_epoch_15_esc_90.14.pt": ("HTSAT-base", False, None),
    "music_speech_epoch_15_esc_89.25.pt": ("HTSAT-base", False, None),
    "music_speech_audioset_epoch_15_esc_89.98.pt": ("HTSAT-base", False, None),
}


def quantize_int16(x: np.ndarray) -> np.ndarray:
    """laion_clap's input quantisation: clip to [-1, 1], truncate to int16 steps, back to float32."""
    return ((np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16) / 32767.0).astype(np.float32)


class LaionClapEncoder(PackageEncoder):
    """A loaded `laion_clap.CLAP_Module`."""

    window = WINDOW

    def __init__(self, module, fingerprint: str) -> None:
        self.module, self.fingerprint = module, fingerprint
        self.dim = int(module.model_cfg["embed_dim"])
        self.sample_rate = int(module.model_cfg["audio_cfg"]["sample_rate"])

    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(quantize_int16(windows))
        with torch.inference_mode():
            return to_numpy(self.module.get_audio_embedding_from_data(x=x, use_tensor=True))

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            rows = to_numpy(self.module.get_text_embedding(texts * 2 if len(texts) == 1 else texts, use_tensor=True))
        return rows[: len(texts)]


def load(
    checkpoint: str, *, amodel: str | None = None, enable_fusion: bool | None = None, device: str | None = None
) -> LaionClapEncoder:
    """Load a LAION CLAP checkpoint: a local .pt file, or a known name (`CHECKPOINTS`).

    amodel / enable_fusion override what the name implies; device: laion_clap's default
    (cuda:0 when available) if None. A local file is hashed into the fingerprint."""
    spec = f"{BACKEND}:{checkpoint}"
    laion_clap = import_package("laion_clap", spec, "laion-clap torchvision", CONFLICTS)
    path = os.path.expanduser(checkpoint)
    name = os.path.basename(path)
    known = CHECKPOINTS.get(name)
    local = os.path.isfile(path)
    if not local and (known is None or known[2] is None):
        raise ModelUnavailableError(spec, [f"local file {os.path.abspath(path)}: not found"], _hint(name, known))
    default_amodel, default_fusion, model_id = known or ("HTSAT-tiny", False, None)
    module = laion_clap.CLAP_Module(
        enable_fusion=default_fusion if enable_fusion is None else enable_fusion,
        device=device,
        amodel=amodel or default_amodel,
    )
    try:
        if local:
            module.load_ckpt(path)
        else:
            module.load_ckpt(model_id=model_id)
    except OSError as e:  # laion_clap's download failed (offline), or an unreadable file
        source = f"local file {os.path.abspath(path)}" if local else f"laion_clap's download of {name}"
        raise ModelUnavailableError(spec, [f"{source}: {first_line(e)}"], _hint(name, known)) from None
    dim = int(module.model_cfg["embed_dim"])
    fingerprint = package_fingerprint(BACKEND, name, laion_clap, "laion-clap", dim, path if local else None)
    return LaionClapEncoder(module, fingerprint)


def _hint(name: str, known: tuple[str, bool, int | None] | None) -> str:
    """How to get a checkpoint onto a machine without network access."""
    where = (
        f"`hf download lukewys/laion_clap {name} --local-dir <dir>`"
        if known
        else "the LAION-AI/CLAP README lists the checkpoints; known names: " + ", ".join(CHECKPOINTS)
    )
    return (
        f"Download the checkpoint where there is network access ({where}), copy the file here and pass "
        f"its path: load_encoder('laion-clap:/path/to/{name if known else '<checkpoint>.pt'}')."
    )

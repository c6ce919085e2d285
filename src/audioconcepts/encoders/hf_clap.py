"""Hugging Face transformers CLAP backend: the LAION checkpoints (clap-htsat-unfused/fused, larger_clap_*).

Audio goes through our deterministic windowing (see `audio`), then the checkpoint's own
ClapFeatureExtractor on each exact-length window, so its random crop/fusion paths are never taken;
`is_longer` is always False, so fused checkpoints use their global branch only. Text is tokenised
with the checkpoint's tokenizer, truncated to what the position embeddings allow.
"""

from __future__ import annotations

import numpy as np

from audioconcepts.decompose.preprocess import l2_normalize
from audioconcepts.embeddings import Embeddings
from audioconcepts.encoders import check_local_source, model_fingerprint, model_unavailable
from audioconcepts.encoders.audio import WindowedAudioEncoder

BACKEND = "hf-clap"
#: Files that define the model's behaviour: hashed into the fingerprint of a local checkpoint.
FINGERPRINT_FILES = ("config.json", "preprocessor_config.json", "*.safetensors", "*.bin")


class HFClapEncoder(WindowedAudioEncoder):
    """A transformers ClapModel with its feature extractor and tokenizer."""

    def __init__(self, model, feature_extractor, tokenizer, fingerprint: str, device: str) -> None:
        self.model, self.feature_extractor, self.tokenizer = model, feature_extractor, tokenizer
        self.fingerprint, self.device = fingerprint, device
        self.dim = int(model.config.projection_dim)
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.window = int(feature_extractor.nb_max_samples)
        text = model.config.text_config
        # RoBERTa-style positions start after the padding index
        self._max_tokens = min(tokenizer.model_max_length, text.max_position_embeddings - (text.pad_token_id or 0) - 1)

    def _embed_windows(self, windows: np.ndarray) -> np.ndarray:
        import torch

        # the feature extractor draws from numpy's global RNG even when nothing is random for
        # exact-length input; keep the caller's random stream untouched
        state = np.random.get_state()
        features = self.feature_extractor(list(windows), sampling_rate=self.sample_rate, return_tensors="pt")
        np.random.set_state(state)
        is_longer = torch.zeros((len(windows), 1), dtype=torch.bool, device=self.device)
        with torch.inference_mode():
            out = self.model.get_audio_features(
                input_features=features["input_features"].to(self.device, torch.float32), is_longer=is_longer
            )
        return out.pooler_output.float().cpu().numpy()

    def embed_text(self, texts: list[str], *, batch_size: int = 64) -> Embeddings:
        """Embed a list of strings with the CLAP text tower."""
        import torch

        if isinstance(texts, str):
            raise TypeError("embed_text takes a list of strings, not a single string")
        rows = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=self._max_tokens,
                return_tensors="pt",
            )
            with torch.inference_mode():
                out = self.model.get_text_features(
                    input_ids=tokens["input_ids"].to(self.device),
                    attention_mask=tokens["attention_mask"].to(self.device),
                )
            rows.append(out.pooler_output.float().cpu().numpy())
        return Embeddings(l2_normalize(np.concatenate(rows)).astype(np.float32), self.fingerprint)


def load(source: str, *, device: str | None = None, num_threads: int | None = None) -> HFClapEncoder:
    """Load a CLAP checkpoint from a Hub id (through the usual HF cache, honouring HF_HUB_OFFLINE)
    or a local directory saved with save_pretrained.

    device: "cuda" when available, else "cpu". num_threads: if given, passed to
    torch.set_num_threads (process-wide); by default torch's own setting is left alone."""
    import torch
    from transformers import AutoTokenizer, ClapConfig, ClapFeatureExtractor, ClapModel

    check_local_source(BACKEND, source)
    try:
        config_dict, _ = ClapConfig.get_config_dict(source)
        if config_dict.get("model_type") != "clap":
            raise ValueError(f"{source!r} is not a CLAP checkpoint (model_type {config_dict.get('model_type')!r})")
        model = ClapModel.from_pretrained(source, dtype=torch.float32)
        feature_extractor = ClapFeatureExtractor.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as e:
        raise model_unavailable(BACKEND, source, str(e)) from None
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    fingerprint = model_fingerprint(BACKEND, source, int(model.config.projection_dim), FINGERPRINT_FILES)
    return HFClapEncoder(model, feature_extractor, tokenizer, fingerprint, device)

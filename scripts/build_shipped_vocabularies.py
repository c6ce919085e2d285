"""Build the shipped concept-only vocabulary files with the package's own builders.

Inputs (a checkout of the project's shared data folder, passed as --data):
  clotho_v1/clotho_captions_{development,evaluation}.csv, audiocaps/v1/{train,val,test}.csv,
  musiccaps/musiccaps-public.csv   (caption word counts)
  audioset/ontology.json           (AudioSet ontology, CC BY-SA 4.0)
  fsd50k/eval_clips_info_FSD50K.json (FSD50K evaluation-set Freesound tags, CC BY 4.0)
Outputs (src/audioconcepts/data/vocabularies/, concepts + provenance, no embeddings):
  captions-baseline-2k.npz  builders.baseline on the caption word counts (most frequent, expletives removed)
  captions-pruned-2k.npz    builders.pruned on the same counts (misspellings/digits dropped, roots merged)
  audioset-ontology.npz     builders.audioset_ontology (defaults; descriptions kept in provenance["texts"])
  fsd50k-eval-{baseline,pruned}-{2k,3k,5k}.npz  the paper's recipes on the FSD50K evaluation-set tags
  fsd50k-eval-tags-10k.npz  the 10,000 most frequent of those tags: the pool fsd50k-eval-clustered-* is built from

Only words, counts and ontology names/descriptions are stored; no caption text.
Usage: HF_HUB_OFFLINE=1 python scripts/build_shipped_vocabularies.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:  # run from a checkout without `pip install -e .`
    import audioconcepts  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

from audioconcepts.vocab import builders, make, sources  # noqa: E402

OUT = ROOT / "src/audioconcepts/data/vocabularies"
CAPTION_FILES = (
    "clotho_v1/clotho_captions_development.csv",
    "clotho_v1/clotho_captions_evaluation.csv",
    "audiocaps/v1/train.csv",
    "audiocaps/v1/val.csv",
    "audiocaps/v1/test.csv",
    "musiccaps/musiccaps-public.csv",
)
SIZE = 2000


class _Counts(dict):
    """Word counts that carry their (data-folder-relative) source names for provenance."""

    sources: tuple[str, ...] = ()


def caption_word_counts(data: Path) -> tuple[_Counts, dict]:
    """Every caption word's caption count (builders.caption_mined, bigrams off, no size cut)."""
    mined = builders.caption_mined([data / f for f in CAPTION_FILES], size=10**9, bigrams=False)
    counts = _Counts(mined.counts)
    counts.sources = tuple(str(data / f) for f in CAPTION_FILES)
    return counts, mined.provenance


def _relative(provenance: dict, data: Path) -> dict:
    """Source paths relative to the data folder (no local paths in shipped files)."""
    def rel(p: str) -> str:
        try:
            return str(Path(p).resolve().relative_to(data.resolve()))
        except ValueError:
            return Path(p).name

    out = dict(provenance)
    out["sources"] = [rel(s) for s in provenance.get("sources", [])]
    if "formats" in out:
        out["formats"] = {rel(k): v for k, v in out["formats"].items()}
    return out


FSD50K_EVAL = "fsd50k/eval_clips_info_FSD50K.json"


def built_vocabularies(data: Path) -> dict[str, builders.BuiltConcepts]:
    """Every shipped concept-only vocabulary, by name."""
    counts, mined_provenance = caption_word_counts(data)
    counting = {
        "recipe": "caption_mined",
        "parameters": mined_provenance["parameters"] | {"size": None},
        "n_captions": mined_provenance["n_captions"],
        "n_words": len(counts),
    }
    built = {
        "captions-baseline-2k": builders.baseline(counts, size=SIZE),
        "captions-pruned-2k": builders.pruned(counts, size=SIZE),
    }
    for b in built.values():
        b.provenance["counting"] = counting
    built["audioset-ontology"] = builders.audioset_ontology(data / "audioset/ontology.json", with_descriptions=True)
    built.update(make.build_concepts("fsd50k", [data / FSD50K_EVAL], prefix="fsd50k-eval"))
    built["fsd50k-eval-tags-10k"] = make.build_concepts("baseline", [data / FSD50K_EVAL], [10000])["fsd50k-baseline-10k"]
    return built


def build(data: Path, out: Path = OUT) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, b in built_vocabularies(data).items():
        b.provenance.update(_relative(b.provenance, data), description=sources.DESCRIPTIONS[name])
        path = make.write_vocabularies({name: b}, out / f"{name}.npz")[0]
        path.chmod(0o644)  # the atomic write makes a private temp file
        sizes[name] = len(b.concepts)
        print(f"{name}: {len(b.concepts)} concepts -> {path}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args()
    build(args.data, args.out)


if __name__ == "__main__":
    main()

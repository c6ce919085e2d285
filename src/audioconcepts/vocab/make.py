"""Vocabulary files from raw sources in one call: the engine behind `audioconcepts vocab build`.

A recipe name picks a builder (`builders`), the sources are read in the format that recipe expects,
and one vocabulary is built per requested size. `write_vocabularies` stores each as a vocabulary file,
with the concepts' embeddings for a model when an encoder is given (so the file is ready to decompose
with, no further embedding needed).

Recipes and their sources:

- "fsd50k": the paper's three recipes at once: baseline and pruned for every size, plus clustered
  when an encoder is given (it embeds the tags). Default sizes: the paper's 2,000 / 3,000 / 5,000.
- "baseline", "pruned", "clustered": one of them. Tag sources: FSD50K `*_clips_info_FSD50K.json`
  files, folders holding them (e.g. `FSD50K.metadata/`), or `tag<TAB>count` TSV files.
- "captions": caption-mined words and two-word phrases of Clotho / AudioCaps / MusicCaps CSVs.
- "ontology": AudioSet ontology JSON class names (optionally embedding "name: description").
- "list": a text file, one concept per line.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audioconcepts.vocab import builders, fileformat
from audioconcepts.vocab.builders import BuiltConcepts, TagCounts

TAG_RECIPES = ("baseline", "pruned", "clustered")
RECIPES = ("fsd50k", *TAG_RECIPES, "captions", "ontology", "list")
PAPER_SIZES = (2000, 3000, 5000)
DEFAULT_POOL = 10000

#: texts -> (n, d) unit-norm rows; how recipes that need a model (clustered) embed tags.
EmbedTexts = Callable[[list[str]], np.ndarray]


def size_label(size: int) -> str:
    """2000 -> "2k", 2500 -> "2500": the size part of a vocabulary name."""
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def read_tag_counts(sources: Sequence[str | os.PathLike]) -> TagCounts:
    """Clip counts of tags from FSD50K clips-info JSON files, folders of them, or tag/count TSVs."""
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found = sorted(source.glob("*_clips_info_FSD50K.json"))
            if not found:
                raise FileNotFoundError(
                    f"no *_clips_info_FSD50K.json file in folder {source} (FSD50K keeps them in FSD50K.metadata/)"
                )
            files.extend(found)
        elif source.is_file():
            files.append(source)
        else:
            raise FileNotFoundError(f"tag source {source} does not exist")
    counts = TagCounts()
    json_files = [f for f in files if f.suffix.lower() == ".json"]
    counts.update(builders.tag_counts(json_files))
    for tsv in (f for f in files if f.suffix.lower() != ".json"):
        counts.update(_read_count_table(tsv))
    counts.sources = tuple(map(str, files))
    return counts


def _read_count_table(path: Path) -> dict[str, int]:
    """A `tag<TAB>count` file with an optional `tag<TAB>count` header line."""
    counts: dict[str, int] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or (line_no == 1 and row[-1].strip().lower() == "count"):
                continue
            if len(row) != 2 or not row[1].strip().isdigit():
                raise ValueError(f"{path}:{line_no}: expected 'tag<TAB>count', got {row!r}")
            tag = row[0].strip().lower()
            if tag:
                counts[tag] = counts.get(tag, 0) + int(row[1])
    return counts


def build_concepts(
    recipe: str,
    sources: Sequence[str | os.PathLike],
    sizes: Sequence[int] = (),
    *,
    prefix: str | None = None,
    pool: int = DEFAULT_POOL,
    embed_texts: EmbedTexts | None = None,
    seed: int = 0,
    descriptions: bool = False,
) -> dict[str, BuiltConcepts]:
    """Vocabularies by name (e.g. "fsd50k-pruned-3k") built by `recipe` from `sources`.

    `sizes` defaults to the paper's three for "fsd50k", 2,000 for the other frequency recipes, and is
    ignored by "ontology" and "list" (they keep every concept). "clustered" needs `embed_texts`."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if not sources:
        raise ValueError(f"recipe {recipe!r} needs at least one source file")
    sizes = list(sizes) or (list(PAPER_SIZES) if recipe == "fsd50k" else [2000])
    if any(s < 2 for s in sizes):
        raise ValueError(f"vocabulary sizes must be at least 2; got {sizes}")
    if recipe == "clustered" and embed_texts is None:
        raise ValueError("the clustered recipe embeds tags with a model: give a model (--model)")
    if recipe == "ontology":
        if len(sources) != 1:
            raise ValueError("the ontology recipe reads one AudioSet ontology.json")
        return {prefix or "audioset-ontology": builders.audioset_ontology(sources[0], with_descriptions=descriptions)}
    if recipe == "list":
        if len(sources) != 1:
            raise ValueError("the list recipe reads one text file")
        return {prefix or Path(sources[0]).stem: builders.from_text_list(sources[0])}
    if recipe == "captions":
        return {
            f"{prefix or 'captions'}-{size_label(size)}": builders.caption_mined(sources, size=size) for size in sizes
        }
    counts = read_tag_counts(sources)
    prefix = prefix or "fsd50k"
    recipes = TAG_RECIPES if recipe == "fsd50k" else (recipe,)
    if embed_texts is None:
        recipes = tuple(r for r in recipes if r != "clustered")
    else:
        embed_texts = _memoized(embed_texts)  # several sizes cluster the same pool
    built: dict[str, BuiltConcepts] = {}
    for r in recipes:
        for size in sizes:
            name = f"{prefix}-{r}-{size_label(size)}"
            if r == "baseline":
                built[name] = builders.baseline(counts, size=size)
            elif r == "pruned":
                built[name] = builders.pruned(counts, size=size, pool=pool)
            else:
                built[name] = builders.clustered(counts, embed_texts, size=size, pool=pool, seed=seed)
    return built


def _memoized(embed_texts: EmbedTexts) -> EmbedTexts:
    memo: dict[tuple[str, ...], np.ndarray] = {}

    def embed(texts: list[str]) -> np.ndarray:
        key = tuple(texts)
        if key not in memo:
            memo[key] = embed_texts(texts)
        return memo[key]

    return embed


def vocabulary_provenance(name: str, built: BuiltConcepts, description: str | None = None) -> dict[str, Any]:
    """A built vocabulary's provenance as stored in its file: the builder's, plus name and counts."""
    provenance = {**built.provenance, "name": name}
    if description:
        provenance["description"] = description
    provenance["counts"] = {c: int(built.counts[c]) for c in built.concepts}
    return provenance


def embedded_texts(built: BuiltConcepts) -> list[str]:
    """The text embedded for each concept: its description when the recipe kept one, else its name."""
    texts = built.provenance.get("texts") or {}
    return [texts.get(c, c) for c in built.concepts]


def write_vocabularies(
    built: dict[str, BuiltConcepts],
    out: str | os.PathLike,
    embed_texts: EmbedTexts | None = None,
    fingerprint: str | None = None,
) -> list[Path]:
    """Write each vocabulary to a file: `out` itself when it ends in .npz (one vocabulary only), else
    `out/<name>.npz`. With `embed_texts` and `fingerprint`, the files hold that model's embeddings."""
    out = Path(out)
    if out.suffix.lower() == ".npz":
        if len(built) != 1:
            raise ValueError(f"{len(built)} vocabularies to write ({', '.join(built)}): give a folder, not {out}")
        targets = {name: out for name in built}
    else:
        targets = {name: out / f"{name}.npz" for name in built}
    written = []
    for name, b in built.items():
        embeddings = None
        if embed_texts is not None:
            if fingerprint is None:
                raise ValueError("embeddings need the fingerprint of the model that made them")
            embeddings = {fingerprint: np.asarray(embed_texts(embedded_texts(b)), dtype=np.float32)}
        target = targets[name]
        target.parent.mkdir(parents=True, exist_ok=True)
        fileformat.write(target, b.concepts, vocabulary_provenance(name, b), embeddings)
        written.append(target)
    return written

"""Concept-list builders: the paper's FSD50K tag recipes and plain text lists.

Recipes (see DESIGN.md "Vocabularies (paper recipes)"), each returning a `BuiltConcepts`:

- `baseline`: the most frequent tags, expletives removed.
- `pruned`: from the `pool` most frequent tags, drop expletives, single letters, tokens with digits
  and misspellings (not in pyspellchecker's bundled English dictionary plus a shipped list of audio
  jargon such as "synth", "sfx", "hihat", "soundscape" (data/audio_terms.txt), nor a '-'/'_'
  compound of such words); merge words sharing a root (simplemma's bundled English lemmatiser), pooling their
  counts; keep the `size` most frequent. A merged concept is named by its most frequent surface form
  (ties: shorter, then alphabetical), so "footsteps" stays "footsteps" rather than becoming
  "footstep". Synonyms are not merged: no maintained offline synonym source (WordNet needs a
  download at run time), so only shared-root merging is done.
- `clustered`: embed the `pool` most frequent tags, k-means with k = `size`, keep the tag of each
  cluster nearest its centroid.
- `from_text_list`: one concept per line.

Tag counts are clip counts: a tag counts once per clip (tags lower-cased and stripped). Ties in
frequency are broken alphabetically, so every recipe is deterministic.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

#: Common English expletives and slurs removed by `baseline` and `pruned` (lower case).
EXPLETIVES: frozenset[str] = frozenset(
    """
    arse arsehole ass asshole asses bastard bastards bitch bitches bitching bollocks bullshit cock
    cocks crap cunt cunts damn damned dick dicks dickhead dildo fag faggot fuck fucked fucker
    fuckers fucking fucks goddamn horseshit jackass motherfucker motherfuckers motherfucking nigga
    nigger piss pissed pissing porn prick pussy retard shit shits shitty shitting slut sluts twat
    wank wanker whore whores
    """.split()
)

_COMPOUND_SEPARATORS = re.compile(r"[-_]+")


@dataclass(frozen=True)
class BuiltConcepts:
    """Concepts (most frequent first), their counts, and how they were built."""

    concepts: list[str]
    counts: dict[str, int]
    provenance: dict[str, Any] = field(default_factory=dict)


class TagCounts(Counter):
    """A Counter of tags that remembers the metadata files it was counted from."""

    sources: tuple[str, ...] = ()


def tag_counts(paths: Iterable[str | os.PathLike]) -> TagCounts:
    """Clip counts of the tags of FSD50K `*_clips_info_FSD50K.json` files (clip_id -> {tags, ...})."""
    counts = TagCounts()
    sources = []
    for path in paths:
        sources.append(os.fspath(path))
        with open(path, encoding="utf-8") as f:
            clips = json.load(f)
        for info in clips.values():
            counts.update({t for t in (tag.strip().lower() for tag in info.get("tags", [])) if t})
    counts.sources = tuple(sources)
    return counts


def _ranked(counts: Mapping[str, int]) -> list[str]:
    """Tags by decreasing count, ties alphabetical."""
    return sorted(counts, key=lambda t: (-counts[t], t))


def _provenance(recipe: str, counts: Mapping[str, int], **params: Any) -> dict[str, Any]:
    return {"recipe": recipe, "sources": list(getattr(counts, "sources", ())), "parameters": params}


def baseline(
    counts: Mapping[str, int], size: int = 2000, expletives: Collection[str] = EXPLETIVES
) -> BuiltConcepts:
    """The `size` most frequent tags, expletives removed."""
    kept = [t for t in _ranked(counts) if t not in expletives][:size]
    return BuiltConcepts(
        kept, {t: counts[t] for t in kept}, _provenance("baseline", counts, size=size)
    )


@cache
def english_words() -> frozenset[str]:
    """pyspellchecker's bundled English dictionary (no download) plus the shipped audio jargon list."""
    from spellchecker import SpellChecker

    return frozenset(SpellChecker(language="en").word_frequency.dictionary) | audio_terms()


@cache
def audio_terms() -> frozenset[str]:
    """Audio and sound-design words a general English list lacks (data/audio_terms.txt)."""
    from importlib import resources

    text = resources.files("audioconcepts.data").joinpath("audio_terms.txt").read_text(encoding="utf-8")
    return frozenset(w for w in (line.strip() for line in text.splitlines()) if w and not w.startswith("#"))


def _lemma(token: str) -> str:
    import simplemma

    return simplemma.lemmatize(token, lang="en")


def _is_spelled(token: str, words: Collection[str]) -> bool:
    """A listed word, a listed lemma, or a '-'/'_' compound of listed words."""
    if token in words or _lemma(token) in words:
        return True
    parts = [p for p in _COMPOUND_SEPARATORS.split(token) if p]
    return len(parts) > 1 and all(p in words or _lemma(p) in words for p in parts)


def pruned(
    counts: Mapping[str, int],
    size: int = 2000,
    pool: int = 10000,
    expletives: Collection[str] = EXPLETIVES,
    words: Collection[str] | None = None,
) -> BuiltConcepts:
    """From the `pool` most frequent tags: drop expletives, single letters, tokens with digits and
    misspellings (not in `words`, default `english_words()`); merge tags with the same lemma,
    pooling counts, named by the most frequent surface form; keep the `size` most frequent."""
    words = english_words() if words is None else words
    groups: dict[str, list[str]] = {}
    dropped: dict[str, list[str]] = {"expletive": [], "single_letter": [], "digits": [], "misspelling": []}
    for tag in _ranked(counts)[:pool]:
        if tag in expletives:
            dropped["expletive"].append(tag)
        elif len(tag) == 1:
            dropped["single_letter"].append(tag)
        elif any(c.isdigit() for c in tag):
            dropped["digits"].append(tag)
        elif not _is_spelled(tag, words):
            dropped["misspelling"].append(tag)
        else:
            groups.setdefault(_lemma(tag), []).append(tag)
    pooled: dict[str, int] = {}
    merged: dict[str, list[str]] = {}
    for forms in groups.values():
        name = min(forms, key=lambda t: (-counts[t], len(t), t))
        pooled[name] = sum(counts[t] for t in forms)
        if len(forms) > 1:
            merged[name] = sorted(forms, key=lambda t: (-counts[t], t))
    kept = _ranked(pooled)[:size]
    provenance = _provenance("pruned", counts, size=size, pool=pool)
    provenance["merged"] = {t: merged[t] for t in kept if t in merged}
    provenance["dropped"] = dropped
    return BuiltConcepts(kept, {t: pooled[t] for t in kept}, provenance)


def clustered(
    counts: Mapping[str, int],
    embed_texts: Callable[[list[str]], np.ndarray],
    size: int = 2000,
    pool: int = 10000,
    seed: int = 0,
    n_init: int = 4,
) -> BuiltConcepts:
    """Embed the `pool` most frequent tags with `embed_texts` (texts -> (n, d) unit rows), k-means
    with k = `size` (seeded), and keep the member of each cluster nearest its centroid (exact
    distance ties go to the more frequent tag). Empty clusters contribute nothing."""
    from sklearn.cluster import KMeans

    tags = _ranked(counts)[:pool]
    provenance = _provenance("clustered", counts, size=size, pool=pool, seed=seed, n_init=n_init)
    if len(tags) <= size:
        kept = tags
    else:
        x = np.asarray(embed_texts(tags), dtype=np.float64)
        km = KMeans(n_clusters=size, n_init=n_init, random_state=seed).fit(x)
        kept = []
        for c, centre in enumerate(km.cluster_centers_):
            members = np.flatnonzero(km.labels_ == c)  # in frequency order: argmin ties -> frequent
            if members.size:
                dist = np.linalg.norm(x[members] - centre, axis=1)
                kept.append(tags[members[np.argmin(dist)]])
        kept = _ranked({t: counts[t] for t in kept})
    return BuiltConcepts(kept, {t: counts[t] for t in kept}, provenance)


def from_text_list(path: str | os.PathLike) -> BuiltConcepts:
    """One concept per line (stripped); blank lines and '#' comments ignored; repeats dropped,
    keeping the first, and listed in provenance["duplicates"]. Counts are occurrences in the file."""
    occurrences: Counter[str] = Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                occurrences[line] += 1
    concepts = list(occurrences)  # insertion order: first occurrence
    provenance: dict[str, Any] = {
        "recipe": "text_list",
        "sources": [os.fspath(path)],
        "parameters": {},
        "duplicates": [t for t in concepts if occurrences[t] > 1],
    }
    return BuiltConcepts(concepts, dict(occurrences), provenance)


# --- Caption-mined vocabulary (Clotho, AudioCaps, MusicCaps caption CSVs) ---

_CAPTION_SEGMENT_BREAK = re.compile(r"[^a-z'\s-]+")  # punctuation and digits end a phrase
_LETTERS = re.compile(r"[a-z]{2,}")


def _caption_columns(header: list[str]) -> tuple[str, list[str]]:
    """(format, caption columns) detected from a CSV header."""
    clotho = [f"caption_{i}" for i in range(1, 6)]
    if all(c in header for c in clotho):
        return "clotho", clotho
    if "caption" in header:
        return ("musiccaps" if "ytid" in header else "audiocaps"), ["caption"]
    raise ValueError(f"no caption columns in CSV header {header}")


class CaptionCorpus:
    """The captions of Clotho (caption_1..caption_5), AudioCaps and MusicCaps (caption) CSVs, detected
    by header; iterating yields each non-empty caption and fills `sources`, `formats`, `n_captions`."""

    def __init__(self, csv_paths: Iterable[str | os.PathLike]) -> None:
        self.paths = [os.fspath(p) for p in csv_paths]
        self.sources: list[str] = []
        self.formats: dict[str, str] = {}
        self.n_captions = 0

    def __iter__(self) -> Iterator[str]:
        import csv

        self.sources, self.formats, self.n_captions = [], {}, 0
        for source in self.paths:
            self.sources.append(source)
            with open(source, encoding="utf-8-sig", newline="") as f:
                reader = csv.DictReader(f)
                self.formats[source], columns = _caption_columns(list(reader.fieldnames or []))
                for row in reader:
                    for column in columns:
                        caption = (row.get(column) or "").strip()
                        if caption:
                            self.n_captions += 1
                            yield caption


def caption_terms(caption: str, bigrams: bool = True) -> tuple[set[str], set[str]]:
    """(words, bigrams) of one caption: lower-cased; "'s" and apostrophes dropped ("don't" ->
    "dont"), hyphens split words; a word is kept if letters only, >= 2 letters and not in
    scikit-learn's ENGLISH_STOP_WORDS. A bigram is two adjacent words of the original text, both
    kept; punctuation or digits between them, or a dropped word, break adjacency."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words: set[str] = set()
    pairs: set[str] = set()
    text = caption.lower().replace("\u2019", "'")
    for segment in _CAPTION_SEGMENT_BREAK.split(text):
        previous: str | None = None
        for raw in segment.replace("-", " ").split():
            token = re.sub(r"'s$", "", raw).replace("'", "")
            kept = bool(_LETTERS.fullmatch(token)) and token not in ENGLISH_STOP_WORDS
            if kept:
                words.add(token)
                if bigrams and previous is not None:
                    pairs.add(f"{previous} {token}")
            previous = token if kept else None
    return words, pairs


def caption_mined(
    csv_paths: Iterable[str | os.PathLike],
    size: int = 2000,
    bigrams: bool = True,
    min_bigram_count: int = 5,
) -> BuiltConcepts:
    """The `size` most frequent words and (if `bigrams`) two-word phrases of caption CSVs.

    Formats are detected by header: Clotho (caption_1..caption_5), AudioCaps and MusicCaps
    (caption). Terms come from `caption_terms`; counts are caption counts (a term counts once per
    caption). Bigrams seen in fewer than `min_bigram_count` captions are dropped; words and bigrams
    are then ranked together by count, ties alphabetical."""
    word_counts: Counter[str] = Counter()
    pair_counts: Counter[str] = Counter()
    corpus = CaptionCorpus(csv_paths)
    for caption in corpus:
        words, pairs = caption_terms(caption, bigrams)
        word_counts.update(words)
        pair_counts.update(pairs)
    counts = dict(word_counts)
    counts.update({p: n for p, n in pair_counts.items() if n >= min_bigram_count})
    kept = _ranked(counts)[:size]
    provenance: dict[str, Any] = {
        "recipe": "caption_mined",
        "sources": corpus.sources,
        "parameters": {
            "size": size,
            "bigrams": bigrams,
            "min_bigram_count": min_bigram_count,
            "stop_words": "sklearn.feature_extraction.text.ENGLISH_STOP_WORDS",
            "count": "captions containing the term",
        },
        "formats": corpus.formats,
        "n_captions": corpus.n_captions,
    }
    return BuiltConcepts(kept, {t: counts[t] for t in kept}, provenance)


# --- AudioSet ontology ---


def audioset_ontology(
    ontology_json_path: str | os.PathLike,
    with_descriptions: bool = False,
    include_abstract: bool = True,
    include_blacklisted: bool = False,
) -> BuiltConcepts:
    """Class names of the AudioSet ontology JSON, in file order (repeated names kept once).

    Classes restricted "abstract" / "blacklist" are dropped unless `include_abstract` /
    `include_blacklisted`. Counts are 1. provenance["ids"] maps name -> ontology id; with
    `with_descriptions`, provenance["texts"] maps name -> "name: description" (just the name when
    the description is empty), the text to embed for the concept."""
    with open(ontology_json_path, encoding="utf-8") as f:
        entries = json.load(f)
    ids: dict[str, str] = {}
    texts: dict[str, str] = {}
    dropped: dict[str, list[str]] = {"abstract": [], "blacklist": []}
    for entry in entries:
        name = entry["name"].strip()
        restrictions = set(entry.get("restrictions", []))
        if "blacklist" in restrictions and not include_blacklisted:
            dropped["blacklist"].append(name)
        elif "abstract" in restrictions and not include_abstract:
            dropped["abstract"].append(name)
        elif name and name not in ids:
            ids[name] = entry["id"]
            description = (entry.get("description") or "").strip()
            texts[name] = f"{name}: {description}" if description else name
    concepts = list(ids)
    provenance: dict[str, Any] = {
        "recipe": "audioset_ontology",
        "sources": [os.fspath(ontology_json_path)],
        "parameters": {
            "with_descriptions": with_descriptions,
            "include_abstract": include_abstract,
            "include_blacklisted": include_blacklisted,
        },
        "ids": ids,
        "dropped": dropped,
    }
    if with_descriptions:
        provenance["texts"] = texts
    return BuiltConcepts(concepts, {t: 1 for t in concepts}, provenance)

"""Text search and search by example (with concept editing) over a concept index.

Text search embeds the text with the index's model (text tower) and ranks clips two ways:
- densely: cosine(text embedding, clip embedding), as CLAP retrieval does;
- through concepts: the text is decomposed over the index's vocabulary and clips are ranked by the
  cosine between the text's code and theirs. That cosine is a sum over the concepts both use, so
  each match comes with its reason: the shared concepts and their weights on both sides.
The text is centred on the vocabulary's mean embedding (an estimate of the text modality mean: the
concepts are texts) unless `text_centering="index"` asks for the index's audio modality mean (right
when the indexed embeddings are themselves texts, as in the caption space).

Search by example takes a clip's code, applies edits (concept -> new weight; 0 removes), recomposes
a dense embedding with the decomposer's inverse_transform and ranks clips by cosine to it. The
result lists what changed (each edited concept's weight before and after).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from audioconcepts.index.store import Clip, ConceptIndex, HitList, _check_page


# ----------------------------------------------------------------- text search
@dataclass(frozen=True)
class TextHit:
    """A clip found by text: its dense cosine, its concept cosine, and the concepts it shares with the
    text as (concept, text weight, clip weight), largest contribution first."""

    clip: Clip
    dense: float
    concept_score: float
    shared: list[tuple[str, float, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.clip.to_dict(),
            "dense_cosine": self.dense,
            "concept_cosine": self.concept_score,
            "shared": [{"concept": c, "text_weight": a, "clip_weight": b} for c, a, b in self.shared],
        }


@dataclass(frozen=True)
class TextSearchResult(HitList):
    """One page of clips for a text, ranked by `rank` ("dense" or "concepts"), plus the text's own concepts."""

    text: str
    rank: str
    text_concepts: list[tuple[str, float]]
    hits: list[TextHit]
    total: int
    offset: int
    limit: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "rank": self.rank,
            "text_concepts": [{"concept": c, "weight": w} for c, w in self.text_concepts],
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "hits": [h.to_dict() for h in self.hits],
        }

    def _repr_html_(self) -> str:
        from audioconcepts.display import text_result_html

        return text_result_html(self)


def text_code(index: ConceptIndex, vector: np.ndarray, text_centering: str = "vocabulary") -> sp.csr_matrix:
    """The (1, k) concept code of a text embedding, decomposed with the index's vocabulary and l1_penalty."""
    from audioconcepts.decompose import ConceptDecomposer

    if text_centering == "index":
        decomposer = index.decomposer()
    elif text_centering == "vocabulary":
        decomposer = getattr(index, "_text_decomposer", None)
        if decomposer is None:
            base = index.decomposer()
            decomposer = ConceptDecomposer(base.vocabulary, l1_penalty=index.l1_penalty).fit(
                modality_mean=base.concept_mean_
            )
            index._text_decomposer = decomposer
    else:
        raise ValueError(f"text_centering must be 'vocabulary' or 'index'; got {text_centering!r}")
    return decomposer.transform(np.asarray(vector, dtype=np.float64).reshape(1, -1)).tocsr()


def concept_cosines(
    index: ConceptIndex, code: sp.csr_matrix, *, limit: int, offset: int, ids: Sequence[int] | None = None
):
    """(total, [(id, cosine between `code` and the clip's code)]) best first, ties by id; only clips
    sharing at least one concept with `code` are counted. With `ids`, only those clips (no paging)."""
    code = code.tocsr()
    concept_ids, weights = code.indices.tolist(), code.data.astype(np.float64).tolist()
    norm = float(np.sqrt(np.sum(code.data.astype(np.float64) ** 2)))
    if not concept_ids or norm == 0:
        return 0, []
    base = (
        "FROM codes c JOIN (SELECT unnest(?::INTEGER[]) AS concept_id, unnest(?::DOUBLE[]) AS weight) q "
        "ON c.concept_id = q.concept_id JOIN files f ON f.id = c.file_id"
    )
    params: list[Any] = [concept_ids, weights]
    if ids is not None:
        base += " WHERE list_contains(?::INTEGER[], f.id)"
        params.append([int(i) for i in ids])
    total = int(index.con.execute(f"SELECT count(DISTINCT c.file_id) {base}", params).fetchall()[0][0])
    page = "" if ids is not None else " LIMIT ? OFFSET ?"
    rows = index.con.execute(
        f"SELECT c.file_id, sum(c.weight * q.weight) / (any_value(f.code_norm) * ?) AS score {base} "
        f"GROUP BY c.file_id ORDER BY score DESC, c.file_id{page}",
        [norm, *params] + ([] if ids is not None else [int(limit), int(offset)]),
    ).fetchall()
    return total, [(int(i), float(s)) for i, s in rows]


def dense_cosines(index: ConceptIndex, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
    """cosine(vector, embedding) of the given clips."""
    if not len(ids):
        return {}
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    v = (v / np.linalg.norm(v)).astype(np.float32).tolist()
    rows = index.con.execute(
        f"SELECT id, array_cosine_similarity(embedding, ?::FLOAT[{index.dim}]) FROM files WHERE list_contains(?::INTEGER[], id)",
        [v, [int(i) for i in ids]],
    ).fetchall()
    return {int(i): float(s) for i, s in rows}


def shared_concepts(
    index: ConceptIndex, code: sp.csr_matrix, ids: Sequence[int]
) -> dict[int, list[tuple[str, float, float]]]:
    """For each clip, the concepts it shares with `code`: (concept, code weight, clip weight), by product."""
    code = code.tocsr()
    mine = dict(zip(code.indices.tolist(), code.data.astype(np.float64).tolist()))
    out: dict[int, list[tuple[str, float, float]]] = {int(i): [] for i in ids}
    if not mine or not len(ids):
        return out
    rows = index.con.execute(
        "SELECT file_id, concept_id, weight FROM codes WHERE list_contains(?::INTEGER[], file_id) "
        "AND list_contains(?::INTEGER[], concept_id)",
        [[int(i) for i in ids], list(mine)],
    ).fetchall()
    names = index.concepts
    for file_id, concept_id, weight in rows:
        out[file_id].append((names[concept_id], mine[concept_id], float(weight)))
    for shared in out.values():
        shared.sort(key=lambda t: (-t[1] * t[2], t[0]))
    return out


def text_search(
    index: ConceptIndex,
    text: str,
    encoder: Any = None,
    *,
    text_embedding: np.ndarray | None = None,
    rank: str = "dense",
    limit: int = 10,
    offset: int = 0,
    top: int = 5,
    cache: Any = None,
    text_centering: str = "vocabulary",
) -> TextSearchResult:
    """Clips for a free-text query, a page at a time: ranked by dense cosine (`rank="dense"`) or by the
    cosine of concept codes (`rank="concepts"`); every hit carries both scores and the shared concepts.
    Give an `encoder` of the index's model (its text tower embeds `text`, through `cache`) or the
    `text_embedding` itself."""
    _check_page(offset, limit)
    if rank not in ("dense", "concepts"):
        raise ValueError(f"rank must be 'dense' or 'concepts'; got {rank!r}")
    if text_embedding is None:
        if encoder is None:
            raise ValueError("text search needs the index's model (encoder=...) or text_embedding=...")
        index.check_compatible(encoder.fingerprint, "the text encoder")
        from audioconcepts.encoders.cached import embed_texts

        text_embedding = embed_texts(encoder, [text], cache).vectors[0]
    vector = np.asarray(text_embedding, dtype=np.float64).reshape(-1)
    code = text_code(index, vector, text_centering)
    if rank == "dense":
        page = index.nearest(vector, limit=limit, offset=offset)
        ids, total = [i for i, _ in page.items], page.total
        dense = dict(page.items)
        concept = dict(concept_cosines(index, code, limit=0, offset=0, ids=ids)[1])
    else:
        total, scored = concept_cosines(index, code, limit=limit, offset=offset)
        ids = [i for i, _ in scored]
        concept = dict(scored)
        dense = dense_cosines(index, vector, ids)
    shared = shared_concepts(index, code, ids)
    clips = index.get_clips(ids, top=top)
    hits = [TextHit(c, dense[c.id], concept.get(c.id, 0.0), shared[c.id]) for c in clips]
    names = index.concepts
    order = np.argsort(-code.data, kind="stable")
    text_concepts = [(names[code.indices[j]], float(code.data[j])) for j in order]
    return TextSearchResult(text, rank, text_concepts, hits, total, offset, limit)


# ----------------------------------------------------------------- by example
@dataclass(frozen=True)
class Change:
    """One edited concept: its weight in the clip's code before and after the edit."""

    concept: str
    before: float
    after: float


@dataclass(frozen=True)
class LikeResult(HitList):
    """Clips nearest to an (edited) example: the example, what changed, the edited code's top
    concepts, cosine(recomposed edit, example's embedding), and one page of (clip, cosine) hits."""

    source: Clip
    changes: list[Change]
    edited: list[tuple[str, float]]
    cosine_to_source: float
    hits: list[tuple[Clip, float]]
    total: int
    offset: int
    limit: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.to_dict(),
            "changes": [{"concept": c.concept, "before": c.before, "after": c.after} for c in self.changes],
            "edited": [{"concept": c, "weight": w} for c, w in self.edited],
            "cosine_to_source": self.cosine_to_source,
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "hits": [{**c.to_dict(), "cosine": s} for c, s in self.hits],
        }

    def _repr_html_(self) -> str:
        from audioconcepts.display import like_result_html

        return like_result_html(self)


_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def parse_edits(plus: Sequence[str], minus: Sequence[str], code: Mapping[str, float]) -> dict[str, float]:
    """Edits (concept -> new weight) from command-line style "plus" and "minus" lists.

    plus "dog=0.2" sets dog's weight to 0.2; plus "dog" increases it by the clip's largest weight
    (so an absent concept enters as strongly as the clip's main one); minus "rain" sets it to 0.
    `code` is the clip's code as concept -> weight. Naming a concept in both lists is an error."""
    step = max(code.values(), default=0.0) or 0.1
    edits: dict[str, float] = {}
    for item in plus:
        name, _, amount = item.rpartition("=")
        if name and _NUMBER.match(amount):
            value = float(amount)
            if value < 0:
                raise ValueError(f"plus {item!r}: a concept weight cannot be negative")
            edits[name.strip()] = value
        else:
            edits[item.strip()] = code.get(item.strip(), 0.0) + step
    for item in minus:
        name = item.strip()
        if name in edits:
            raise ValueError(f"{name!r} is both added and removed; name it once")
        edits[name] = 0.0
    return edits


def apply_edits(
    index: ConceptIndex, row: sp.csr_matrix, edits: Mapping[str, float]
) -> tuple[sp.csr_matrix, list[Change]]:
    """The (1, k) code with each named concept set to its new weight (names resolved like queries)."""
    dense = np.asarray(row.todense(), dtype=np.float64).reshape(-1)
    changes: list[Change] = []
    for name, value in edits.items():
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"the new weight of {name!r} must be a finite non-negative number; got {value!r}")
        j = index.concept_id(name)
        changes.append(Change(index.concepts[j], float(dense[j]), value))
        dense[j] = value
    return sp.csr_matrix(dense[None, :]), changes


def search_like(
    index: ConceptIndex,
    example: int | str | os.PathLike,
    edits: Mapping[str, float] | None = None,
    *,
    limit: int = 10,
    offset: int = 0,
    top: int = 5,
    exclude_self: bool = True,
) -> LikeResult:
    """Clips nearest (dense cosine) to the recomposition of `example`'s code after `edits`.

    `example` is a clip id or an indexed path. With no edits the query is the recomposed code itself
    (what the concepts alone say about the clip)."""
    _check_page(offset, limit)
    clip_id = int(example) if isinstance(example, (int, np.integer)) else index.clip_id(example)
    source = index.clip(clip_id, top=top)
    row = index.codes([clip_id])
    edited, changes = apply_edits(index, row, edits or {})
    if edited.nnz == 0:
        raise ValueError("the edited code has no concept left: add a concept (plus) or remove fewer")
    vector = index.decomposer().inverse_transform(edited)[0]
    original = index.embeddings([clip_id])[0].astype(np.float64)
    cosine_to_source = float(vector @ original / (np.linalg.norm(vector) * np.linalg.norm(original)))
    page = index.nearest(vector, limit=limit, offset=offset, exclude=[clip_id] if exclude_self else [])
    clips = index.get_clips([i for i, _ in page.items], top=top)
    names = index.concepts
    order = np.argsort(-edited.data, kind="stable")[:top]
    top_edited = [(names[edited.indices[j]], float(edited.data[j])) for j in order]
    hits = [(c, s) for c, (_, s) in zip(clips, page.items)]
    return LikeResult(source, changes, top_edited, cosine_to_source, hits, page.total, offset, limit)

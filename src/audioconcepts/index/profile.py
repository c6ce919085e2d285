"""Concept profiles: what a folder, a label or a set of clips contains, as mean concept weights.

The mean weight of a concept over a set of n clips counts clips that do not use it as 0, so it is
the concept's column mean of the codes (the "class-level concept profile" of the paper);
`prevalence` is the fraction of the clips that use it at all. Computed in DuckDB, a page of
concepts at a time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audioconcepts.index.store import ConceptIndex, _check_page, _scope_sql


@dataclass(frozen=True)
class ProfileRow:
    concept: str
    mean: float  #: mean weight over the clips (0 where unused)
    prevalence: float  #: fraction of the clips that use the concept
    max: float  #: largest weight in one clip


@dataclass(frozen=True)
class Profile:
    """One page of a set of clips' concepts, by mean weight (largest first)."""

    scope: str  #: in words: "folder /x", "label dog", "12 clips"
    n_clips: int
    rows: list[ProfileRow]
    total_concepts: int  #: concepts used by at least one of the clips
    offset: int
    limit: int

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    @property
    def top(self) -> list[tuple[str, float]]:
        return [(r.concept, r.mean) for r in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "n_clips": self.n_clips,
            "total_concepts": self.total_concepts,
            "offset": self.offset,
            "limit": self.limit,
            "concepts": [
                {"concept": r.concept, "mean": r.mean, "prevalence": r.prevalence, "max": r.max} for r in self.rows
            ],
        }

    def _repr_html_(self) -> str:
        from audioconcepts.display import profile_html

        return profile_html(self)


def profile(
    index: ConceptIndex,
    *,
    folder: str | os.PathLike | None = None,
    label: str | None = None,
    ids: Sequence[int] | None = None,
    query: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> Profile:
    """The concept profile of the clips under `folder` (recursively), with `label`, among `ids`
    and/or matching a concept `query` (all given filters apply; none: the whole index)."""
    _check_page(offset, limit)
    scope_words = []
    if query is not None:
        from audioconcepts.index.query import all_matching_ids

        matching = all_matching_ids(index, query)
        ids = matching if ids is None else sorted(set(matching) & {int(i) for i in ids})
        scope_words.append(f"query {query!r}")
    if folder is not None:
        scope_words.append(f"folder {os.path.abspath(os.fspath(folder))}")
    if label is not None:
        scope_words.append(f"label {label!r}")
    if ids is not None and query is None:
        scope_words.append(f"{len(ids)} chosen clips")
    where, params = _scope_sql(folder, label, ids)
    where += " AND f.nnz IS NOT NULL"
    n = int(index.con.execute(f"SELECT count(*) FROM files f WHERE {where}", params).fetchall()[0][0])
    scope = ", ".join(scope_words) or "the whole index"
    if n == 0:
        return Profile(scope, 0, [], 0, offset, limit)
    base = f"FROM codes c JOIN files f ON f.id = c.file_id WHERE {where}"
    total = int(index.con.execute(f"SELECT count(DISTINCT c.concept_id) {base}", params).fetchall()[0][0])
    rows = index.con.execute(
        f"SELECT c.concept_id, sum(c.weight) / ? AS mean, count(*) / ? AS prevalence, max(c.weight) {base} "
        "GROUP BY c.concept_id ORDER BY mean DESC, c.concept_id LIMIT ? OFFSET ?",
        [float(n), float(n), *params, int(limit), int(offset)],
    ).fetchall()
    names = index.concepts
    return Profile(
        scope, n, [ProfileRow(names[c], float(m), float(p), float(x)) for c, m, p, x in rows], total, offset, limit
    )


def label_profiles(index: ConceptIndex, *, top: int = 10) -> dict[str, Profile]:
    """The profile of every label in the index (its `top` concepts), for auditing a labelled dataset."""
    return {label: profile(index, label=label, limit=top) for label, _ in index.labels()}

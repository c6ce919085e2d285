"""The concept index: an embedded DuckDB file of clips, embeddings and concept codes, for search,
editing and profiles (see store.py for the tables, build.py for indexing, query.py for the query
language, search.py for text and by-example search, profile.py for profiles).

Names are imported on first use, so importing `audioconcepts.index.commands` (for the CLI) does not
load numpy or DuckDB."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audioconcepts._lazy import lazy_exports

if TYPE_CHECKING:
    from audioconcepts.index.build import IndexReport, build_index, build_index_from_embeddings, read_labels_csv
    from audioconcepts.index.store import (
        Clip,
        ConceptIndex,
        IndexBusyError,
        IndexMismatchError,
        Page,
        UnknownClipError,
        UnknownConceptError,
    )

_EXPORTS = {
    **dict.fromkeys(("IndexReport", "build_index", "build_index_from_embeddings", "read_labels_csv"), "audioconcepts.index.build"),
    **dict.fromkeys(
        ("Clip", "ConceptIndex", "IndexBusyError", "IndexMismatchError", "Page", "UnknownClipError", "UnknownConceptError"),
        "audioconcepts.index.store",
    ),
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)

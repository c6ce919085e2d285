"""The concept index: an embedded DuckDB file of clips, embeddings and concept codes, for search,
editing and profiles (see store.py for the tables, build.py for indexing, query.py for the query
language, search.py for text and by-example search, profile.py for profiles)."""

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

__all__ = [
    "Clip",
    "ConceptIndex",
    "IndexBusyError",
    "IndexMismatchError",
    "IndexReport",
    "Page",
    "UnknownClipError",
    "UnknownConceptError",
    "build_index",
    "build_index_from_embeddings",
    "read_labels_csv",
]

"""How good is a vocabulary for a model? Measures to compare vocabularies before choosing one.

- near-duplicate pairs: concept pairs whose (L2-normalised) embeddings have cosine above a
  threshold: they compete for the same weight, so a decomposition picks one arbitrarily;
- redundancy: the mean cosine of each concept to its nearest other concept, the share of concepts
  in at least one near-duplicate pair, and the effective rank of the preprocessed concept matrix
  (exp of the entropy of its normalised squared singular values: how many independent directions
  the vocabulary really spans, at most min(k, d));
- coverage of a caption corpus: the share of caption words (stop words removed, each word counted
  once per caption) that are concepts, exactly or by lemma (dogs -> dog);
- fidelity (optional): on reference embeddings, mean cosine(recomposed, original) and mean number of
  concepts at a given lambda: how much of an embedding the vocabulary can say, and with how many words.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from audioconcepts.decompose.preprocess import center, l2_normalize
from audioconcepts.vocab.builders import _lemma, caption_terms
from audioconcepts.vocab.vocabulary import Vocabulary

_BLOCK = 2048  # rows of the concept-similarity matrix computed at a time


@dataclass(frozen=True)
class Coverage:
    """Caption words the vocabulary has (each word counted once per caption)."""

    n_captions: int
    n_words: int  #: caption-word occurrences considered
    exact: float  #: share of them that are concepts
    by_lemma: float  #: share whose lemma is a concept's lemma
    missing: list[tuple[str, int]]  #: most frequent words not covered even by lemma


@dataclass(frozen=True)
class Fidelity:
    """What a decomposition over the vocabulary keeps of reference embeddings."""

    source: str
    n: int
    l1_penalty: float
    mean_cosine: float
    mean_nnz: float


@dataclass
class VocabularyReport:
    name: str
    size: int
    dim: int
    fingerprint: str
    threshold: float
    n_near_duplicate_pairs: int  #: pairs of concepts with cosine above `threshold`
    near_duplicates: list[tuple[str, str, float]]  #: the most similar of them, most similar first
    share_with_near_duplicate: float
    mean_nearest_cosine: float
    effective_rank: float
    coverage: Coverage | None = None
    fidelity: Fidelity | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def near_duplicates(vocabulary: Vocabulary, threshold: float) -> tuple[list[tuple[str, str, float]], np.ndarray]:
    """Concept pairs (i < j) with cosine > threshold, most similar first, and each concept's highest
    cosine to another concept; computed in row blocks, never the whole k x k matrix."""
    E = l2_normalize(vocabulary.embeddings).astype(np.float32)
    k = len(E)
    nearest = np.full(k, -np.inf)
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, k, _BLOCK):
        S = E[start : start + _BLOCK] @ E.T
        rows = np.arange(S.shape[0])
        S[rows, start + rows] = -np.inf  # not itself
        nearest[start : start + len(S)] = S.max(axis=1)
        i, j = np.nonzero(S > threshold)
        keep = start + i < j
        pairs.extend(zip((start + i[keep]).tolist(), j[keep].tolist(), S[i[keep], j[keep]].tolist()))
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    names = vocabulary.concepts
    return [(names[i], names[j], float(c)) for i, j, c in pairs], nearest


def effective_rank(vocabulary: Vocabulary) -> float:
    """exp(entropy) of the normalised squared singular values of the preprocessed concepts
    (L2-normalised, centred on their mean, renormalised), as the decomposer uses them."""
    E = l2_normalize(vocabulary.embeddings)
    C = center(vocabulary.embeddings, E.mean(axis=0), True)
    s2 = np.linalg.svd(C, compute_uv=False) ** 2
    p = s2[s2 > 0] / s2.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def coverage(vocabulary: Vocabulary, captions: Iterable[str], missing: int = 15) -> Coverage:
    """Share of the captions' words (`caption_terms`: stop words removed, once per caption) that the
    vocabulary's one-word concepts cover, exactly and by lemma."""
    concepts = {c.lower() for c in vocabulary.concepts}
    lemmas = {_lemma(c) for c in concepts if " " not in c}
    words: Counter[str] = Counter()
    n_captions = 0
    for caption in captions:
        n_captions += 1
        words.update(caption_terms(caption, bigrams=False)[0])
    total = sum(words.values())
    if total == 0:
        raise ValueError("the caption corpus has no words to cover")
    exact = sum(n for w, n in words.items() if w in concepts)
    uncovered = {w: n for w, n in words.items() if w not in concepts and _lemma(w) not in lemmas}
    by_lemma = total - sum(uncovered.values())
    top_missing = sorted(uncovered.items(), key=lambda wn: (-wn[1], wn[0]))[:missing]
    return Coverage(n_captions, total, exact / total, by_lemma / total, top_missing)


def fidelity(vocabulary: Vocabulary, reference, source: str, l1_penalty: float = 0.15) -> Fidelity:
    """Mean cosine(recomposed, original) and mean nnz of `reference` (Embeddings of the vocabulary's
    model) decomposed at `l1_penalty`, centred on the reference's own mean."""
    from audioconcepts.decompose import ConceptDecomposer

    result = ConceptDecomposer(vocabulary, l1_penalty=l1_penalty).fit(reference).decompose(reference, certify=False)
    return Fidelity(source, len(result), l1_penalty, float(np.mean(result.cosine)), float(np.mean(result.nnz)))


def vocabulary_report(
    vocabulary: Vocabulary,
    name: str,
    *,
    threshold: float = 0.9,
    captions: Iterable[str] | None = None,
    reference=None,
    reference_source: str = "",
    l1_penalty: float = 0.15,
    show_pairs: int = 20,
) -> VocabularyReport:
    """Every measure of the module docstring for one vocabulary (coverage and fidelity when given
    captions / reference embeddings)."""
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a cosine, between -1 and 1; got {threshold}")
    pairs, nearest = near_duplicates(vocabulary, threshold)
    in_pair = {c for a, b, _ in pairs for c in (a, b)}
    report = VocabularyReport(
        name=name,
        size=len(vocabulary),
        dim=vocabulary.dim,
        fingerprint=vocabulary.fingerprint,
        threshold=threshold,
        n_near_duplicate_pairs=len(pairs),
        near_duplicates=pairs[:show_pairs],
        share_with_near_duplicate=len(in_pair) / len(vocabulary),
        mean_nearest_cosine=float(nearest.mean()),
        effective_rank=effective_rank(vocabulary),
    )
    if captions is not None:
        report.coverage = coverage(vocabulary, captions)
    if reference is not None:
        report.fidelity = fidelity(vocabulary, reference, reference_source, l1_penalty)
    return report

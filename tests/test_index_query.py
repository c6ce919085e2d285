"""The concept query language: grammar, errors, SQL safety, and answers equal to a brute-force numpy
evaluation over codes computed without the index."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import random_problem

from audioconcepts import ConceptDecomposer, Embeddings, Vocabulary
from audioconcepts.decompose.preprocess import l2_normalize
from audioconcepts.index import ConceptIndex, UnknownConceptError, build_index_from_embeddings
from audioconcepts.index.query import (
    And,
    Condition,
    Not,
    Or,
    QuerySyntaxError,
    all_matching_ids,
    concept_query,
    parse_query,
    positive_concepts,
)

N_CAPTIONS = 2000


# ----------------------------------------------------------------- grammar
def C(name, op=">", value=0.0):
    return Condition(name, op, value)


@pytest.mark.parametrize(
    "query, tree",
    [
        ("rain", C("rain")),
        ("rain > 0.1", C("rain", ">", 0.1)),
        ("rain>=.05", C("rain", ">=", 0.05)),
        ("rain < 1e-2", C("rain", "<", 0.01)),
        ("rain <= 0.3", C("rain", "<=", 0.3)),
        ("rain = 0", C("rain", "=", 0.0)),
        ("rain > 0.1 and not traffic", And((C("rain", ">", 0.1), Not(C("traffic"))))),
        ("(dog or cat) and bark >= 0.05", And((Or((C("dog"), C("cat"))), C("bark", ">=", 0.05)))),
        # precedence: not > and > or
        ("a or b and not c", Or((C("a"), And((C("b"), Not(C("c"))))))),
        ("not a and b", And((Not(C("a")), C("b")))),
        ("not not a", Not(Not(C("a")))),
        ("a and b and c", And((C("a"), C("b"), C("c")))),
        ("a or b or c", Or((C("a"), C("b"), C("c")))),
        ("(a or b) and (c or d)", And((Or((C("a"), C("b"))), Or((C("c"), C("d")))))),
        ("((a))", C("a")),
        ('"church bell" > 0.1', C("church bell", ">", 0.1)),
        ("'church bell'", C("church bell")),
        ('"and" or "not"', Or((C("and"), C("not")))),  # quoted keywords are concepts
        ("RAIN AND Not Traffic", And((C("RAIN"), Not(C("Traffic"))))),  # keywords in any case
        ("hip-hop and rock&roll", And((C("hip-hop"), C("rock&roll")))),
    ],
)
def test_grammar(query, tree):
    assert parse_query(query) == tree


@pytest.mark.parametrize(
    "query, message, position",
    [
        ("", "empty query", 0),
        ("   ", "empty query", 3),
        ("rain >", "expected a number after '>'", 6),
        ("rain > lots", "expected a number after '>', got 'lots'", 7),
        ("rain > inf", "finite", 7),
        ("(rain or dog", "expected ')'", 12),
        ("rain dog", "quote a concept of several words", 5),
        ("rain and", "ends too early", 8),
        ("and rain", "expected a concept or '('", 0),
        ("> 0.1", "expected a concept before '>'", 0),
        ('"church bell > 0.1', "unterminated quote", 0),
        ("rain != 0.1", "not supported", 5),
        ("rain ) or dog", "unexpected ')'", 5),
        ('""', "empty concept name", 0),
    ],
)
def test_syntax_errors_say_what_and_where(query, message, position):
    with pytest.raises(QuerySyntaxError, match=re.escape(message)) as e:
        parse_query(query)
    assert e.value.position == position
    assert str(e.value).splitlines()[-1] == "  " + " " * position + "^"


def test_positive_concepts_follow_negation():
    assert positive_concepts(parse_query("rain > 0.1 and not traffic")) == ["rain"]
    assert positive_concepts(parse_query("not (rain < 0.1) and dog = 0.2 and cat = 0")) == ["rain", "dog"]
    assert positive_concepts(parse_query("not not wind and bird <= 0.2")) == ["wind"]


# ----------------------------------------------------------------- the caption-space index
@pytest.fixture(scope="module")
def space(caption_space, tmp_path_factory):
    """An index of real caption embeddings, and codes computed for them without the index."""
    X = caption_space.embeddings.vectors[:N_CAPTIONS]
    vocab = caption_space.vocabulary
    ids = [f"caption-{i}" for i in range(N_CAPTIONS)]
    labels = ["dog" if "dog" in c.lower() else "other" for c in caption_space.captions[:N_CAPTIONS]]
    db = tmp_path_factory.mktemp("index") / "captions.duckdb"
    build_index_from_embeddings(
        ids, Embeddings(X, vocab.fingerprint), vocab, db, labels=labels, vocabulary_name="captions"
    )
    W = ConceptDecomposer(vocab, l1_penalty=0.15).fit(modality_mean=l2_normalize(X).mean(axis=0)).transform(X).toarray()
    index = ConceptIndex(db)
    row_of = {index.clip_id(p): i for i, p in enumerate(ids)}
    yield index, W, row_of, vocab.concepts, np.array(labels)
    index.close()


def brute_force(W, row_of, concepts, mask, score_concepts):
    """(ids, scores) of the rows where mask holds, ranked by the summed weights, ties by id."""
    col = {c: j for j, c in enumerate(concepts)}
    score = W[:, [col[c] for c in score_concepts]].sum(axis=1) if score_concepts else np.zeros(len(W))
    ids = sorted((i for i, r in row_of.items() if mask[r]), key=lambda i: (-score[row_of[i]], i))
    return ids, [score[row_of[i]] for i in ids]


def w(W, concepts, name):
    return W[:, concepts.index(name)]


CASES = [
    ("rain > 0.1 and not traffic", lambda W, c: (w(W, c, "rain") > 0.1) & ~(w(W, c, "traffic") > 0), ["rain"]),
    (
        "(dog or cat) and bark >= 0.05",
        lambda W, c: ((w(W, c, "dog") > 0) | (w(W, c, "cat") > 0)) & (w(W, c, "bark") >= 0.05),
        ["dog", "cat", "bark"],
    ),
    (
        "wind or birds and not water",
        lambda W, c: (w(W, c, "wind") > 0) | ((w(W, c, "birds") > 0) & ~(w(W, c, "water") > 0)),
        ["wind", "birds"],
    ),
    (
        "(wind or birds) and not water",
        lambda W, c: ((w(W, c, "wind") > 0) | (w(W, c, "birds") > 0)) & ~(w(W, c, "water") > 0),
        ["wind", "birds"],
    ),
    ("engine < 0.05 and car", lambda W, c: (w(W, c, "engine") < 0.05) & (w(W, c, "car") > 0), ["car"]),
    ("not (speech <= 0.2)", lambda W, c: ~(w(W, c, "speech") <= 0.2), ["speech"]),
    ("siren = 0 and traffic > 0.05", lambda W, c: (w(W, c, "siren") == 0) & (w(W, c, "traffic") > 0.05), ["traffic"]),
    (
        "not thunder and not rain and water >= 0.3",
        lambda W, c: (w(W, c, "thunder") == 0) & (w(W, c, "rain") == 0) & (w(W, c, "water") >= 0.3),
        ["water"],
    ),
    ("Man AND talking", lambda W, c: (w(W, c, "man") > 0) & (w(W, c, "talking") > 0), ["man", "talking"]),
    ("music < 0.1", lambda W, c: w(W, c, "music") < 0.1, []),
]


@pytest.mark.parametrize("query, mask, ranked", CASES, ids=[c[0] for c in CASES])
def test_query_answers_equal_brute_force_numpy(space, query, mask, ranked):
    index, W, row_of, concepts, _ = space
    ids, scores = brute_force(W, row_of, concepts, mask(W, concepts), ranked)
    assert 0 < len(ids) < N_CAPTIONS  # the case says something
    result = concept_query(index, query, limit=N_CAPTIONS)
    assert result.total == len(ids)
    assert [h.clip.id for h in result] == ids
    np.testing.assert_allclose([h.score for h in result], scores, atol=1e-9)
    assert sorted(all_matching_ids(index, query)) == sorted(ids)
    # the named concepts' weights are reported with each hit
    hit = result.hits[0]
    for name, weight in hit.matched:
        assert weight == pytest.approx(W[row_of[hit.clip.id], concepts.index(name)], abs=1e-12)


def test_pages_concatenate_to_the_whole_answer(space):
    index, *_ = space
    whole = concept_query(index, "dog or barking", limit=10_000)
    pages = [concept_query(index, "dog or barking", limit=7, offset=o) for o in range(0, whole.total + 7, 7)]
    assert all(p.total == whole.total for p in pages)
    assert [h.clip.id for p in pages for h in p] == whole.ids
    assert len(pages[-1]) == 0


def test_query_within_a_label(space):
    index, W, row_of, concepts, labels = space
    mask = (w(W, concepts, "bark") > 0) & (labels == "dog")
    ids, _ = brute_force(W, row_of, concepts, mask, ["bark"])
    assert [h.clip.id for h in concept_query(index, "bark", label="dog", limit=N_CAPTIONS)] == ids


def test_unknown_concepts_suggest_the_closest_names(space):
    index, *_ = space
    with pytest.raises(UnknownConceptError, match="unknown concept 'rian'") as e:
        concept_query(index, "rian > 0.1")
    assert "rain" in e.value.suggestions
    with pytest.raises(UnknownConceptError) as e:
        concept_query(index, "dog and thundr")
    assert "thunder" in e.value.suggestions


# ----------------------------------------------------------------- hostile names stay data
HOSTILE = [
    "church bell",
    "x'); DROP TABLE codes; --",
    "1 OR 1=1",
    "<script>alert(1)</script>",
    "and",
    "O'Brien",
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    C, Z = random_problem(3, k=30, d=24, n=80)
    names = HOSTILE + [f"concept{j}" for j in range(30 - len(HOSTILE))]
    vocab = Vocabulary(names, C, "test:random")
    db = tmp_path_factory.mktemp("hostile") / "h.duckdb"
    build_index_from_embeddings(
        [f"r{i}" for i in range(len(Z))], Embeddings(Z.astype(np.float32), "test:random"), vocab, db, l1_penalty=0.05
    )
    with ConceptIndex(db) as index:
        W = index.codes(index.ids()).toarray()
        yield index, W, names


@pytest.mark.parametrize(
    "query, name, holds",
    [
        ('"church bell" > 0.01', "church bell", lambda x: x > 0.01),
        ('"x\'); DROP TABLE codes; --"', "x'); DROP TABLE codes; --", lambda x: x > 0),
        ('"1 OR 1=1"', "1 OR 1=1", lambda x: x > 0),
        ('"<script>alert(1)</script>" <= 0.02', "<script>alert(1)</script>", lambda x: x <= 0.02),
        ('not "and"', "and", lambda x: x == 0),
        ('"O\'Brien" >= 0', "O'Brien", lambda x: x >= 0),
    ],
)
def test_names_with_sql_and_markup_are_matched_as_data(hostile, query, name, holds):
    index, W, names = hostile
    j = names.index(name)
    expected = {i for i, r in zip(index.ids(), W) if holds(r[j])}
    assert 0 < len(expected)
    result = concept_query(index, query, limit=1000)
    assert {h.clip.id for h in result} == expected
    assert index.con.execute("SELECT count(*) FROM codes").fetchall()[0][0] == np.count_nonzero(W)  # nothing dropped


@pytest.mark.parametrize(
    "query",
    [
        "rain'; DROP TABLE files; --",
        '"files; DELETE FROM codes"',
        "concept1 > 0 or 1=1",
        "concept1 > 0; DROP TABLE files",
    ],
)
def test_injection_attempts_are_errors_and_change_nothing(hostile, query):
    index, W, _ = hostile
    with pytest.raises((UnknownConceptError, QuerySyntaxError)):
        concept_query(index, query)
    assert len(index) == len(W)
    assert index.con.execute("SELECT count(*) FROM codes").fetchall()[0][0] == np.count_nonzero(W)

"""Notebook HTML: hostile concept names, paths and labels come out as text, never as markup."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest
from conftest import random_problem

from audioconcepts import ConceptDecomposer, Embeddings, Vocabulary
from audioconcepts.display import bar, decomposition_html, explanation_html, profile_html
from audioconcepts.index import ConceptIndex, build_index_from_embeddings
from audioconcepts.index.profile import profile
from audioconcepts.index.query import concept_query
from audioconcepts.index.search import search_like, text_search

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(2)>'
ALLOWED_TAGS = {"table", "caption", "tr", "td", "th", "div", "br", "p"}


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Collect:
    c = Collect()
    c.feed(html)
    c.close()
    assert set(c.tags) <= ALLOWED_TAGS, set(c.tags) - ALLOWED_TAGS
    assert {name for name, _ in c.attrs} <= {"style", "title"}
    return c


def test_explanation_escapes_names_and_draws_proportional_bars():
    html = explanation_html([(SCRIPT, 0.5), ("rain & thunder", 0.25), (ATTRIBUTE, 0.0)], title="<b>title</b>")
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    c = parse(html)
    text = "".join(c.text)
    assert SCRIPT in text and "rain & thunder" in text and ATTRIBUTE in text and "<b>title</b>" in text
    widths = [float(w) for w in re.findall(r"width:([\d.]+)%", html)]
    assert widths == [100.0, 50.0, 0.0]


def test_bar_is_clipped_and_safe_with_odd_values():
    assert "width:100.0%" in bar(2.0, 1.0) and "width:0.0%" in bar(-1.0, 1.0)
    assert "width:0.0%" in bar(float("nan"), 1.0) and "width:0.0%" in bar(0.3, 0.0)


def test_decomposition_table_escapes_concepts_and_row_names():
    C, Z = random_problem(1, k=12, d=10, n=3)
    names = [SCRIPT, ATTRIBUTE] + [f"c{j}" for j in range(10)]
    vocab = Vocabulary(names, C, "test:display")
    result = ConceptDecomposer(vocab, l1_penalty=0.02).fit(Z).decompose(Z)
    html = decomposition_html(result, names=["<i>a</i>", "b", "c"], top=12)
    assert "<script" not in html and "<img" not in html and "<i>" not in html
    c = parse(html)
    text = "".join(c.text)
    assert "<i>a</i>" in text
    used = {names[j] for j in result.codes.indices}
    assert all(n in text for n in used)
    assert text.count("solved") == 3
    # the weights shown are the codes' weights
    for i in range(3):
        for concept, weight in result.explain(i, 12):
            assert f"{weight:.2f}" in text


@pytest.fixture(scope="module")
def hostile_index(tmp_path_factory):
    C, Z = random_problem(5, k=20, d=16, n=40)
    names = [SCRIPT, ATTRIBUTE] + [f"c{j}" for j in range(18)]
    vocab = Vocabulary(names, C, "test:display")
    ids = [f"{ATTRIBUTE}/clip{i}<script>.wav" for i in range(len(Z))]
    labels = [SCRIPT if i % 2 else ATTRIBUTE for i in range(len(Z))]
    db = tmp_path_factory.mktemp("display") / "d.duckdb"
    build_index_from_embeddings(
        ids, Embeddings(Z.astype(np.float32), "test:display"), vocab, db, labels=labels, l1_penalty=0.02
    )
    with ConceptIndex(db) as index:
        yield index, C


def check_result_html(html: str) -> str:
    assert "<script" not in html and "<img" not in html
    c = parse(html)
    for _, value in c.attrs:  # the path sits in a title attribute: escaped, so it is one intact value
        assert value is None or "onerror" not in value or value.startswith(ATTRIBUTE)
    return "".join(c.text)


def test_search_results_and_profiles_render_escaped(hostile_index):
    index, C = hostile_index
    query = concept_query(index, f'"{SCRIPT}" or c1 or c2', limit=5)
    assert len(query) > 0
    text = check_result_html(query._repr_html_())
    assert SCRIPT in text and f"1\u20135 of {query.total}" in text

    like = search_like(index, query.ids[0], {SCRIPT: 0.5, "c1": 0.0}, limit=5)
    text = check_result_html(like._repr_html_())
    assert SCRIPT in text and "0.500" in text

    found = text_search(index, SCRIPT, text_embedding=C[3], rank="concepts", limit=5)
    text = check_result_html(found._repr_html_())
    assert SCRIPT in text

    p = profile(index, label=SCRIPT, limit=5)
    assert p.n_clips == 20
    text = check_result_html(p._repr_html_())
    assert SCRIPT in text and "20 clips" in text
    assert profile_html(p) == p._repr_html_()


def test_a_page_of_clips_renders_escaped(hostile_index):
    index, _ = hostile_index
    page = index.clips(offset=2, limit=3)
    text = check_result_html(page._repr_html_())
    assert f"3\u20135 of {len(index)}" in text
    assert all(c.label in text for c in page)
    text = check_result_html(index.clip(page[0].id)._repr_html_())
    assert page[0].path in text

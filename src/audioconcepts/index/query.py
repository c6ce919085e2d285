"""The concept query language: select clips by their concept weights, answered from the index.

Grammar (keywords are case-insensitive)::

    query      := or_expr
    or_expr    := and_expr ( "or" and_expr )*
    and_expr   := not_expr ( "and" not_expr )*
    not_expr   := "not" not_expr | primary
    primary    := "(" or_expr ")" | condition
    condition  := concept [ op number ]
    op         := ">" | ">=" | "<" | "<=" | "="
    concept    := word | "double-quoted text" | 'single-quoted text'

A word is a run of characters other than spaces, parentheses, quotes and ``< > = !``; a concept of
several words must be quoted (``"church bell" > 0.1``). A bare concept means "weight > 0" (the clip
uses it at all). A clip's weight for a concept it does not use is 0, so ``rain < 0.1`` and
``rain = 0`` also match clips without rain, and ``not rain`` matches exactly the clips without it.
``not`` binds tighter than ``and``, which binds tighter than ``or``:
``a or b and not c`` is ``a or (b and (not c))``.

Examples: ``rain > 0.1 and not traffic``; ``(dog or cat) and bark >= 0.05``; ``"church bell"``.

Ranking: matches are ordered by the sum of their weights for the concepts the query asks to be
present (named outside any ``not`` bare or with ``>``, ``>=`` or ``=`` a positive number; under one
``not``, with ``<`` or ``<=``), largest first, then by clip id. A query that names no such concept
ranks its matches by id.

Names are matched exactly, else case-insensitively; an unknown name raises UnknownConceptError
with the closest vocabulary names. The query is compiled to one SQL statement in which concept
ids and thresholds are bound parameters: no text of the query is ever spliced into the SQL.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from audioconcepts.index.store import Clip, ConceptIndex, ConceptIndexError, HitList, _check_page, _scope_sql

#: comparison token -> SQL operator (a fixed whitelist: user text never reaches the SQL)
OPERATORS = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "=": "=", "==": "="}
KEYWORDS = ("and", "or", "not")


class QuerySyntaxError(ConceptIndexError, ValueError):
    """A query that does not follow the grammar; the message points at the place and says what fits."""

    def __init__(self, message: str, query: str, position: int) -> None:
        self.query, self.position = query, position
        super().__init__(f"{message}\n  {query}\n  {' ' * position}^")


# ----------------------------------------------------------------- syntax tree
@dataclass(frozen=True)
class Condition:
    """weight(concept) op value."""

    concept: str
    op: str = ">"
    value: float = 0.0


@dataclass(frozen=True)
class Not:
    child: Any


@dataclass(frozen=True)
class And:
    children: tuple


@dataclass(frozen=True)
class Or:
    children: tuple


Node = Condition | Not | And | Or


# ----------------------------------------------------------------- tokens
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) |
        (?P<op>>=|<=|==|!=|[<>=!]) |
        "(?P<dq>[^"]*)" | '(?P<sq>[^']*)' |
        (?P<unterminated>["'].*$) |
        (?P<word>[^\s()<>=!"']+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # "(", ")", "op", "word", "quoted", "and", "or", "not", "end"
    text: str
    position: int


def tokenize(query: str) -> list[Token]:
    """Split a query into tokens (keywords recognised case-insensitively, quoted text kept whole)."""
    tokens, pos = [], 0
    while True:
        m = _TOKEN.match(query, pos)
        start = m.start(m.lastgroup) if m and m.lastgroup else len(query)
        if not m or m.lastgroup is None:
            if query[pos:].strip():
                raise QuerySyntaxError(
                    "unexpected character", query, pos + len(query[pos:]) - len(query[pos:].lstrip())
                )
            tokens.append(Token("end", "", len(query)))
            return tokens
        kind = m.lastgroup
        if kind == "unterminated":
            raise QuerySyntaxError("unterminated quote: close it with the same quote character", query, start)
        if kind in ("dq", "sq"):
            tokens.append(Token("quoted", m.group(kind), start - 1))
        elif kind == "word" and m.group(kind).lower() in KEYWORDS:
            tokens.append(Token(m.group(kind).lower(), m.group(kind), start))
        elif kind == "op":
            if m.group(kind) in ("!", "!="):
                raise QuerySyntaxError(
                    f"operator {m.group(kind)!r} is not supported: use 'not', or one of > >= < <= =", query, start
                )
            tokens.append(Token("op", m.group(kind), start))
        else:
            tokens.append(Token({"lparen": "(", "rparen": ")"}.get(kind, kind), m.group(kind), start))
        pos = m.end()


# ----------------------------------------------------------------- parser
class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, token: Token | None = None) -> QuerySyntaxError:
        token = token or self.token
        return QuerySyntaxError(message, self.query, token.position)

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise self.error("empty query: name a concept, e.g. rain > 0.1")
        node = self.or_expr()
        if self.token.kind != "end":
            t = self.token
            if t.kind in ("word", "quoted"):
                raise self.error(
                    f"expected 'and', 'or', ')' or the end of the query before {t.text!r} "
                    '(quote a concept of several words: "church bell")'
                )
            raise self.error(f"unexpected {t.text!r}: expected 'and', 'or' or the end of the query")
        return node

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while self.token.kind == "or":
            self.take()
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self) -> Node:
        children = [self.not_expr()]
        while self.token.kind == "and":
            self.take()
            children.append(self.not_expr())
        return children[0] if len(children) == 1 else And(tuple(children))

    def not_expr(self) -> Node:
        if self.token.kind == "not":
            self.take()
            return Not(self.not_expr())
        return self.primary()

    def primary(self) -> Node:
        t = self.token
        if t.kind == "(":
            self.take()
            node = self.or_expr()
            if self.token.kind != ")":
                raise self.error(f"expected ')' to close the '(' at position {t.position}")
            self.take()
            return node
        if t.kind in ("word", "quoted"):
            self.take()
            name = t.text.strip()
            if not name:
                raise self.error("empty concept name", t)
            if self.token.kind != "op":
                return Condition(name, ">", 0.0)
            op = self.take()
            number = self.token
            if number.kind != "word":
                raise self.error(f"expected a number after {op.text!r}")
            try:
                value = float(number.text)
            except ValueError:
                raise self.error(f"expected a number after {op.text!r}, got {number.text!r}") from None
            if not math.isfinite(value):
                raise self.error(f"the threshold must be a finite number, got {number.text!r}")
            self.take()
            return Condition(name, OPERATORS[op.text], value)
        if t.kind == "end":
            raise self.error("the query ends too early: expected a concept or '('")
        if t.kind == "op":
            raise self.error(f"expected a concept before {t.text!r}")
        raise self.error(
            f"expected a concept or '(' but got {t.text!r} (quote a concept named like a keyword: \"{t.text}\")"
        )


def parse_query(query: str) -> Node:
    """The syntax tree of a concept query (see the module docstring for the grammar)."""
    if not isinstance(query, str):
        raise TypeError(f"a concept query is a string; got {type(query).__name__}")
    return _Parser(query).parse()


def conditions(node: Node) -> list[Condition]:
    """Every condition in the tree, in query order."""
    if isinstance(node, Condition):
        return [node]
    if isinstance(node, Not):
        return conditions(node.child)
    return [c for child in node.children for c in conditions(child)]


def positive_concepts(node: Node, negated: bool = False) -> list[str]:
    """The concepts the query asks to be present (they rank the matches): see the module docstring."""
    if isinstance(node, Condition):
        present = (node.op in (">", ">=") and not negated) or (node.op == "=" and node.value > 0 and not negated)
        present = present or (negated and node.op in ("<", "<="))
        return [node.concept] if present else []
    if isinstance(node, Not):
        return positive_concepts(node.child, not negated)
    return [c for child in node.children for c in positive_concepts(child, negated)]


# ----------------------------------------------------------------- SQL
@dataclass(frozen=True)
class CompiledQuery:
    """SQL selecting (id, score) of the matching clips, with its bound parameters."""

    sql_from: str  #: "FROM ... WHERE ..." (no ORDER/LIMIT)
    score: str  #: SQL expression of the ranking score
    params: list
    concepts: list[str]  #: resolved vocabulary names, in the order of the weight columns c0, c1, ...
    ranked_by: list[str]


def compile_query(index: ConceptIndex, node: Node, *, folder=None, label=None, ids=None) -> CompiledQuery:
    """Translate a syntax tree into SQL over the index's tables (names resolved to concept ids)."""
    names: list[str] = []
    for c in conditions(node):
        name = index.concepts[index.concept_id(c.concept)]
        if name not in names:
            names.append(name)
    column = {name: f"w.c{j}" for j, name in enumerate(names)}
    resolve = lambda concept: index.concepts[index.concept_id(concept)]
    where_params: list[Any] = []

    def sql(n: Node) -> str:
        if isinstance(n, Condition):
            where_params.append(float(n.value))
            return f"(COALESCE({column[resolve(n.concept)]}, 0) {OPERATORS[n.op]} CAST(? AS DOUBLE))"
        if isinstance(n, Not):
            return f"(NOT {sql(n.child)})"
        joiner = " AND " if isinstance(n, And) else " OR "
        return "(" + joiner.join(sql(child) for child in n.children) + ")"

    condition = sql(node)
    ranked = list(dict.fromkeys(resolve(c) for c in positive_concepts(node)))
    pivots = ", ".join(f"max(CASE WHEN concept_id = ? THEN weight END) AS c{j}" for j in range(len(names)))
    ids_list = ", ".join("?" for _ in names)
    scope, scope_params = _scope_sql(folder, label, ids)
    sql_from = (
        f"FROM files f LEFT JOIN (SELECT file_id, {pivots} FROM codes WHERE concept_id IN ({ids_list}) GROUP BY file_id) w "
        f"ON w.file_id = f.id WHERE f.nnz IS NOT NULL AND {scope} AND {condition}"
    )
    concept_ids = [index.concept_id(n) for n in names]
    params = [*concept_ids, *concept_ids, *scope_params, *where_params]
    score = " + ".join(f"COALESCE({column[n]}, 0)" for n in ranked) if ranked else "0.0"
    return CompiledQuery(sql_from, f"CAST({score} AS DOUBLE)", params, names, ranked)


# ----------------------------------------------------------------- running
@dataclass(frozen=True)
class QueryHit:
    """A matching clip, its ranking score and its weights for the concepts the query names."""

    clip: Clip
    score: float
    matched: list[tuple[str, float]]  #: (concept, weight) for every concept named in the query

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.clip.to_dict(),
            "score": self.score,
            "matched": [{"concept": c, "weight": w} for c, w in self.matched],
        }


@dataclass(frozen=True)
class QueryResult(HitList):
    """One page of matches of a concept query, best first, and the total number of matches."""

    query: str
    hits: list[QueryHit]
    total: int
    offset: int
    limit: int
    ranked_by: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "ranked_by": self.ranked_by,
            "hits": [h.to_dict() for h in self.hits],
        }

    def _repr_html_(self) -> str:
        from audioconcepts.display import query_result_html

        return query_result_html(self)


def concept_query(
    index: ConceptIndex,
    query: str,
    *,
    limit: int = 20,
    offset: int = 0,
    top: int = 5,
    folder: str | None = None,
    label: str | None = None,
    ids: list[int] | None = None,
) -> QueryResult:
    """The clips matching a concept query (see the module docstring), a page at a time, best first;
    optionally only within a folder, a label or a set of clip ids."""
    _check_page(offset, limit)
    compiled = compile_query(index, parse_query(query), folder=folder, label=label, ids=ids)
    total = int(index.con.execute(f"SELECT count(*) {compiled.sql_from}", compiled.params).fetchall()[0][0])
    columns = ", ".join(f"w.c{j}" for j in range(len(compiled.concepts)))
    rows = index.con.execute(
        f"SELECT f.id, {compiled.score} AS score, {columns} {compiled.sql_from} ORDER BY score DESC, f.id LIMIT ? OFFSET ?",
        [*compiled.params, int(limit), int(offset)],
    ).fetchall()
    clips = index.get_clips([r[0] for r in rows], top=top)
    hits = [
        QueryHit(clip, float(r[1]), [(name, float(v or 0.0)) for name, v in zip(compiled.concepts, r[2:])])
        for clip, r in zip(clips, rows)
    ]
    return QueryResult(query, hits, total, offset, limit, compiled.ranked_by)


def all_matching_ids(index: ConceptIndex, query: str) -> list[int]:
    """Every clip id matching the query (ordered by id), e.g. to profile a search result."""
    compiled = compile_query(index, parse_query(query))
    return [
        r[0] for r in index.con.execute(f"SELECT f.id {compiled.sql_from} ORDER BY f.id", compiled.params).fetchall()
    ]

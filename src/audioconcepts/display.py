"""HTML for notebooks: explanations, decompositions, search results and profiles as tables with bars.

Everything is self-contained HTML with inline CSS (no scripts, no external styles), so it renders
in Jupyter, VS Code and exported notebooks. Every string that comes from data (concept names,
paths, labels, queries) goes through `html.escape`: a concept named ``<script>`` shows as text.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from typing import Any

_BAR_COLOUR = "#4c78a8"
_TABLE = 'style="border-collapse:collapse;font-size:0.9em;margin:0.3em 0"'
_CELL = 'style="padding:2px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #ddd"'
_NUM = 'style="padding:2px 8px;text-align:right;vertical-align:top;border-bottom:1px solid #ddd;font-variant-numeric:tabular-nums"'


def esc(value: Any) -> str:
    """Escaped text of any value (quotes included, so it is safe in attributes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def bar(value: float, scale: float, width_px: int = 120, colour: str = _BAR_COLOUR) -> str:
    """A horizontal bar of length value/scale of `width_px` (clipped to [0, 1])."""
    fraction = 0.0 if not scale or not math.isfinite(value) else min(max(value / scale, 0.0), 1.0)
    return (
        f'<div style="width:{width_px}px;background:#eee;height:0.8em;display:inline-block">'
        f'<div style="width:{100 * fraction:.1f}%;background:{colour};height:100%"></div></div>'
    )


def _fmt(x: float | None, digits: int = 3) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _row(cells: Sequence[str], header: bool = False) -> str:
    tag = "th" if header else "td"
    return (
        "<tr>" + "".join(c if c.startswith(("<td", "<th")) else f"<{tag} {_CELL}>{c}</{tag}>" for c in cells) + "</tr>"
    )


def _num(text: str) -> str:
    return f"<td {_NUM}>{text}</td>"


def _caption(text: str | None) -> str:
    return f'<caption style="text-align:left;font-weight:bold">{esc(text)}</caption>' if text else ""


def explanation_html(items: Sequence[tuple[str, float]], title: str | None = None, scale: float | None = None) -> str:
    """An explanation [(concept, weight), ...] as a table: concept, bar, weight."""
    items = list(items)
    scale = scale or max((w for _, w in items), default=0.0)
    rows = [_row(["concept", "", "weight"], header=True)]
    rows += [_row([esc(c), bar(w, scale), _num(_fmt(w))]) for c, w in items]
    return f"<table {_TABLE}>{_caption(title)}{''.join(rows)}</table>"


def concept_bars(items: Sequence[tuple[str, float]], scale: float | None = None, width_px: int = 60) -> str:
    """A compact inline list of concepts with small bars (for one cell of a larger table)."""
    items = list(items)
    scale = scale or max((w for _, w in items), default=0.0)
    return "<br>".join(f"{bar(w, scale, width_px)} {esc(c)} {_fmt(w, 2)}" for c, w in items)


def decomposition_html(
    decomposition: Any,
    rows: Sequence[int] | None = None,
    top: int = 8,
    names: Sequence[str] | None = None,
    max_rows: int = 20,
) -> str:
    """A Decomposition as one table row per embedding: name, top concepts with bars, nnz, cosine, status.
    `rows`: which rows (default: the first `max_rows`); `names`: a label per row of the decomposition."""
    from audioconcepts.decompose.decomposer import STATUS_NAMES

    n = len(decomposition)
    chosen = list(range(min(n, max_rows))) if rows is None else [int(r) for r in rows]
    header = _row(["row", "concepts", "nnz", "cosine", "status"], header=True)
    body = []
    for i in chosen:
        name = names[i] if names is not None else str(i)
        body.append(
            _row(
                [
                    esc(name),
                    concept_bars(decomposition.explain(i, top)),
                    _num(str(int(decomposition.nnz[i]))),
                    _num(_fmt(float(decomposition.cosine[i]))),
                    esc(STATUS_NAMES.get(int(decomposition.status[i]), str(decomposition.status[i]))),
                ]
            )
        )
    more = f"<p>{n - len(chosen)} more rows not shown</p>" if rows is None and n > len(chosen) else ""
    return f"<table {_TABLE}>{header}{''.join(body)}</table>{more}"


def _clip_name(path: str) -> str:
    return os.path.basename(path) or path


def _clip_cells(clip: Any) -> list[str]:
    return [
        _num(str(clip.id)),
        f'<td {_CELL} title="{esc(clip.path)}">{esc(_clip_name(clip.path))}</td>',
        esc(clip.label),
        concept_bars(clip.concepts),
    ]


def _page_note(result: Any) -> str:
    shown = len(result)
    if not shown:
        return f"<p>no matches (total {result.total})</p>"
    return f"<p>{result.offset + 1}&ndash;{result.offset + shown} of {result.total}</p>"


def clips_html(clips: Sequence[Any], title: str | None = None, note: str = "") -> str:
    """Clips (id, file, label, top concepts with bars) as a table."""
    header = _row(["id", "clip", "label", "top concepts"], header=True)
    body = [_row(_clip_cells(c)) for c in clips]
    return f"<table {_TABLE}>{_caption(title)}{header}{''.join(body)}</table>{note}"


def query_result_html(result: Any) -> str:
    """A concept-query result: score, clip, label, the named concepts' weights, top concepts."""
    header = _row(["score", "id", "clip", "label", "top concepts", "query concepts"], header=True)
    body = [
        _row([_num(_fmt(h.score)), *_clip_cells(h.clip), esc(", ".join(f"{c} {w:.3f}" for c, w in h.matched))])
        for h in result.hits
    ]
    title = f"concept query: {result.query}"
    return f"<table {_TABLE}>{_caption(title)}{header}{''.join(body)}</table>{_page_note(result)}"


def text_result_html(result: Any) -> str:
    """A text search result: both scores, clip, label, top concepts, and the shared concepts (the reason)."""
    header = _row(
        ["dense", "concepts", "id", "clip", "label", "top concepts", "shared concepts (text / clip)"], header=True
    )
    body = []
    for h in result.hits:
        shared = "<br>".join(f"{esc(c)} {a:.2f} / {b:.2f}" for c, a, b in h.shared[:6])
        body.append(_row([_num(_fmt(h.dense)), _num(_fmt(h.concept_score)), *_clip_cells(h.clip), shared]))
    title = f"text search ({result.rank}): {result.text}"
    concepts = explanation_html(result.text_concepts[:10], title="the text's concepts")
    return f"{concepts}<table {_TABLE}>{_caption(title)}{header}{''.join(body)}</table>{_page_note(result)}"


def like_result_html(result: Any) -> str:
    """A by-example result: what changed (before/after), the edited code, then the nearest clips."""
    changes = "".join(
        _row(
            [
                esc(c.concept),
                _num(_fmt(c.before)),
                _num(_fmt(c.after)),
                bar(c.after, max([x.after for x in result.changes] + [x.before for x in result.changes]) or 1.0),
            ]
        )
        for c in result.changes
    )
    change_table = (
        f"<table {_TABLE}>{_caption('edits')}{_row(['concept', 'before', 'after', ''], header=True)}{changes}</table>"
        if result.changes
        else "<p>no edits: the query is the example's recomposed code</p>"
    )
    header = _row(["cosine", "id", "clip", "label", "top concepts"], header=True)
    body = [_row([_num(_fmt(s)), *_clip_cells(c)]) for c, s in result.hits]
    title = f"like {_clip_name(result.source.path)} (cosine of the edit to the original: {result.cosine_to_source:.3f})"
    return (
        f"{change_table}{explanation_html(result.edited, title='edited code')}"
        f"<table {_TABLE}>{_caption(title)}{header}{''.join(body)}</table>{_page_note(result)}"
    )


def profile_html(profile: Any) -> str:
    """A concept profile: concept, bar of the mean weight, mean, prevalence."""
    scale = max((r.mean for r in profile.rows), default=0.0)
    header = _row(["concept", "mean weight", "", "used by"], header=True)
    body = [
        _row([esc(r.concept), bar(r.mean, scale), _num(_fmt(r.mean)), _num(f"{100 * r.prevalence:.0f}%")])
        for r in profile.rows
    ]
    title = f"profile of {profile.scope} ({profile.n_clips} clips, {profile.total_concepts} concepts used)"
    return f"<table {_TABLE}>{_caption(title)}{header}{''.join(body)}</table>"

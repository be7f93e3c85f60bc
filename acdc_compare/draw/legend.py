"""Legends of drawings. A legend is a list of lines (label, content HTML), laid out as a two-column HTML
table used as the graph's label, so it adds no nodes or edges. Content is either text runs or a row of
coloured swatches."""

from __future__ import annotations

import html
from collections.abc import Mapping

from acdc_compare.circuit import Circuit
from acdc_compare.draw.styles import COMPARISON_COLORS, EDGE_KIND_NAMES, EDGE_STYLES

Run = tuple[str, str | None]  # text, font colour
LegendLine = tuple[str, str]


def runs(runs: list[Run]) -> str:
    """Coloured text runs, three spaces apart."""
    parts = [html.escape(t) if c is None else f'<font color="{c}">{html.escape(t)}</font>' for t, c in runs]
    return "&nbsp;&nbsp;&nbsp;".join(parts)


def swatches(items: list[tuple[str, str, str | None]]) -> str:
    """A row of boxed labels: (text, background, font colour); a blank when there are none (Graphviz
    refuses an empty row)."""
    if not items:
        return " "
    cells = "".join(
        f'<td bgcolor="{bg}" border="1">{runs([(text, colour)])}</td>' for text, bg, colour in items
    )
    return f'<table border="0" cellborder="0" cellspacing="3" cellpadding="2"><tr>{cells}</tr></table>'


def legend_table(title: str | None, lines: list[LegendLine]) -> str:
    """Title and legend lines as one HTML table: bold labels on the left, content left-aligned."""
    rows = []
    if title:
        heading = f'<font point-size="16"><b>{html.escape(title)}</b></font>'
        rows.append(f'<tr><td colspan="2" align="left">{heading}</td></tr>')
    for label, content in lines:  # Graphviz refuses empty <b></b>
        bold = f"<b>{html.escape(label)}</b>" if label else " "
        rows.append(f'<tr><td align="left">{bold}</td><td align="left">{content}</td></tr>')
    return f'<table border="0" cellborder="0" cellspacing="2" cellpadding="1">{"".join(rows)}</table>'


def circuit_legend(c: Circuit, roles: Mapping[str, str], used: list[str],
                    palette: Mapping[str, str], prune: bool, note: str = "") -> list[LegendLine]:
    summary = edge_counts(c) if prune else f"{c.n_kept:,} of {c.n_edges:,} edges kept, all drawn"
    lines = [
        ("edges:", runs([(f"{kind} ({style})", colour) for kind, (colour, style) in EDGE_STYLES.items()])),
        ("width:", runs([(importance_text(c), None)])),
        ("", runs([(summary, "#555555")])),
    ]
    if note:
        lines.append(("", runs([(note, "#b00000")])))
    if roles:
        lines.insert(0, ("roles:", swatches([(role, palette[role], None) for role in used])))
    return lines


def importance_text(c: Circuit) -> str:
    """What widths and sizes stand for: each kept edge's place in the circuit's ranking by its evidence."""
    kinds = ", ".join(f"{n:,} {kind.value}" for kind, n in c.kept_score_kinds().items()) or "none"
    return ("~ importance: a kept edge's place in the circuit's ranking by the score that kept it (first = 1, "
            f"last = 1/{c.n_kept:,}); kept edges scored by {kinds}")


def edge_counts(c: Circuit) -> str:
    """The two edge counts, named the same way wherever they are printed: the edges kept (all of them, as
    tables count) and those on input-to-logits paths (the ones a figure draws; the others change nothing)."""
    return (f"{c.n_kept:,} of {c.n_edges:,} edges kept, {c.n_functional_edges:,} of them on input-to-logits paths "
            "(the figure's edges)")


def comparison_legend(labels: Mapping[str, str], counts: Mapping[str, int]) -> list[LegendLine]:
    sets = [(f"{labels[m]} ({counts[m]} drawn edges)", COMPARISON_COLORS[m][1], COMPARISON_COLORS[m][0])
            for m in labels]
    return [("colour:", swatches(sets)), ("line:", runs([(text, None) for text in style_key()]))]


def style_key() -> list[str]:
    """What each line style means where colour tells circuits apart: the kinds sharing a style named
    together ("solid: q input, MLP input, logits"), so no two entries claim the same style."""
    by_style: dict[str, list[str]] = {}
    for kind, (_, style) in EDGE_STYLES.items():
        by_style.setdefault(style, []).append(EDGE_KIND_NAMES.get(kind, kind))
    return [f"{style}: {', '.join(kinds)}" for style, kinds in by_style.items()]

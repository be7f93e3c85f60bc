"""Circuits and comparisons in a notebook cell: `Circuit._repr_html_` and `CircuitComparison._repr_html_` call
`to_html` (through the renderer the package's `__init__` installs, so the low layers never import this one).

The HTML is the report's interactive viewer (`acdc_compare.viewer`: inline SVG, the script and stylesheet
inline, no network, no library) with a one-line summary (a circuit) or the overlap table (a comparison) above
it, in a box as wide as the cell and at most `height` pixels tall for the graph. The viewer's script starts
whether the page is still loading or the output is inserted later, as notebook front ends do.
"""

from __future__ import annotations

import html
from typing import Any

from acdc_compare.circuit import Circuit
from acdc_compare.compare import CircuitComparison
from acdc_compare.viewer import viewer_data, viewer_html

NOTEBOOK_HEIGHT = 460  # pixels of the graph area: a notebook cell, not a report page

_STYLE = """<style>
.acdc-notebook { width: 100%; max-width: 100%; box-sizing: border-box; font-family: Helvetica, Arial, sans-serif; }
.acdc-notebook .acdc-viewer svg.av-graph { height: var(--acdc-height, 460px); }
.acdc-notebook .acdc-viewer { max-height: calc(var(--acdc-height, 460px) + 360px); overflow: auto; }
.acdc-notebook table.acdc-overlap { border-collapse: collapse; font-size: 0.85em; margin: 0.3em 0; }
.acdc-notebook table.acdc-overlap td, .acdc-notebook table.acdc-overlap th { border: 1px solid #ddd;
  padding: 0.15em 0.5em; text-align: right; }
.acdc-notebook .acdc-summary { font-size: 0.9em; color: #333; margin: 0.2em 0; }
</style>"""


def _box(inner: str, height: int) -> str:
    if not 100 <= height <= 2000:
        raise ValueError(f"height {height} px: give 100 to 2000 pixels for the graph area")
    return f'{_STYLE}<div class="acdc-notebook" style="--acdc-height: {int(height)}px">{inner}</div>'


def circuit_html(c: Circuit, label: str | None = None, height: int = NOTEBOOK_HEIGHT) -> str:
    """One circuit: a summary line (its task and model, when its settings name them) and the viewer."""
    method = c.settings.get("method", "")
    task, model = c.settings.get("task"), c.settings.get("model")
    label = label or (str(task) if task else "circuit")
    where = f" on {html.escape(str(model))}" if model else f" (graph {html.escape(c.graph.config.key)})"
    summary = (f"{html.escape(label)}{where}: {c.n_kept} of {c.n_edges} edges kept"
               + (f", method {html.escape(str(method))}" if method else "")
               + f"; {len(c.functional_heads())} heads on input-to-logits paths")
    return _box(f'<div class="acdc-summary">{summary}</div>' + viewer_html(viewer_data({label: c})), height)


def _overlap_table(cmp_: CircuitComparison) -> str:
    a, b = (html.escape(x) for x in cmp_.labels)
    rows = "".join(
        f"<tr><th>{level}</th><td>{o.precision:.3f}</td><td>{o.recall:.3f}</td><td>{o.f1:.3f}</td>"
        f"<td>{o.jaccard:.3f}</td><td>{len(o.only_a)}</td><td>{len(o.only_b)}</td><td>{len(o.both)}</td></tr>"
        for level, o in (("edges", cmp_.edges), ("nodes", cmp_.nodes), ("heads", cmp_.heads)))
    return (f'<table class="acdc-overlap"><tr><th></th><th>precision</th><th>recall</th><th>F1</th>'
            f"<th>Jaccard</th><th>only {a}</th><th>only {b}</th><th>both</th></tr>{rows}</table>")


def comparison_html(cmp_: CircuitComparison, height: int = NOTEBOOK_HEIGHT) -> str:
    """A comparison: the overlap table (b is the reference) and both circuits in the viewer's compare mode.
    A comparison made without its circuits (built by hand) shows the table alone."""
    table = _overlap_table(cmp_)
    if cmp_.a is None or cmp_.b is None:
        return _box(table, height)
    labels = cmp_.labels if cmp_.labels[0] != cmp_.labels[1] else (cmp_.labels[0], cmp_.labels[1] + " (2)")
    return _box(table + viewer_html(viewer_data({labels[0]: cmp_.a, labels[1]: cmp_.b})), height)


def to_html(value: Any) -> str:
    """The notebook HTML of a circuit or a comparison; TypeError for anything else."""
    if isinstance(value, Circuit):
        return circuit_html(value)
    if isinstance(value, CircuitComparison):
        return comparison_html(value)
    raise TypeError(f"no notebook view for {type(value).__name__}; give a Circuit or a CircuitComparison")

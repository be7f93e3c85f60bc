"""An interactive circuit viewer for the self-contained HTML report: plain JavaScript and inline SVG shipped
in this package (viewer.js, viewer.css), no server, no network, no third-party library.

`viewer_data(circuits, roles, attention)` is everything the page needs as one JSON-ready dict: the nodes of
every circuit with a layered layout computed here (input at the bottom, logits at the top, one row per layer
with its heads left to right and its MLP at the right end; rows with no node are left out), and per circuit
its arrows (one per residual edge and receiving node, as `draw` draws them: a k/v edge under grouped-query
attention enters the query heads of its group that feed something), each with name, kind (q, k, v, mlp,
logits), score, the score's kind, importance (`Circuit.importance`: its place in the ranking by the evidence
that kept it) and whether it lies on an input-to-logits path (`prune_to_paths`); and its head-level arrows
(`draw.head_plan.merged_arrows`: the kept edges between two nodes merged, width ~ summed importance). The page
opens at head level where the figures would (`level`: more than 150 edges on paths) and switches to edges in
one click. Direct edges join a head to itself: they are listed per node, not drawn. Counts are kept apart: `n_kept` graph edges (residual + direct),
`n_live` of them on a path, arrows drawn.

A span circuit (`positions="spans"`) gets the span figure's view (`draw.span_figure`): nodes are (head or MLP,
span) ids such as `a3.h5@IO` on a grid of spans as columns (`layout.columns`) and layers as rows, edges its
functional span edges into the nodes they are drawn into, arrows merged per node pair.

`viewer_html(data)` is the markup (the data in a <script type="application/json"> tag with `<`, `>` and `&`
escaped, so no `</script>` can end it early), and `viewer_section(...)` a report section (`report.Html`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from acdc_compare.circuit import Circuit
from acdc_compare.draw import COMPARISON_COLORS, EDGE_STYLES, drawn_edges, nodes_of, role_palette
from acdc_compare.draw.head_plan import head_level, merged_arrows
from acdc_compare.draw.render import rank_label
from acdc_compare.draw.span_figure import (
    ROW_H,
    grid_positions,
    id_order,
    span_arrows,
    span_edge_targets,
    split_id,
)
from acdc_compare.export import check_roles, edge_kind, node_attributes, prune_to_paths
from acdc_compare.graph import INPUT, LOGITS, SPAN_SEP, Graph
from acdc_compare.report import Html

SCHEMA = "acdc_compare.viewer/1"
NODE_W, NODE_H, DX, DY, MARGIN_LEFT = 54, 20, 64, 58, 60
_DASH = {"solid": "", "dashed": "6,3", "dotted": "2,3"}


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _number(x: float) -> float | None:
    """JSON has no NaN or infinity: those become null (shown as n/a)."""
    return x if x == x and abs(x) != float("inf") else None


def _row_of(graph: Graph, node: str) -> int:
    info = node_attributes(graph, node)
    return info["layer"] + 1


def layout(graph: Graph, nodes: Sequence[str]) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    """Node positions and the layout's size and row labels: one row per occupied layer, input at the bottom,
    logits at the top, heads by index and the MLP at the right end."""
    rows: dict[int, list[str]] = {}
    for node in nodes:
        rows.setdefault(_row_of(graph, node), []).append(node)

    def order(node: str) -> tuple[int, int]:
        info = node_attributes(graph, node)
        return (1, 0) if info["kind"] == "mlp" else (0, info["head"] or 0)

    widest = max(len(members) for members in rows.values())
    width = MARGIN_LEFT + widest * DX + DX / 2
    pos: dict[str, tuple[float, float]] = {}
    labels = []
    ranked = sorted(rows, reverse=True)
    for i, row in enumerate(ranked):
        y = DY / 2 + i * DY
        members = sorted(rows[row], key=order)
        x0 = MARGIN_LEFT + (widest - len(members)) * DX / 2 + DX / 2
        for j, node in enumerate(members):
            pos[node] = (x0 + j * DX, y)
        labels.append({"y": y, "label": "input" if row == 0 else "logits" if row == graph.n_layers + 1
                       else f"layer {row - 1}"})
    return pos, {"width": width, "height": len(ranked) * DY, "rows": labels, "node_w": NODE_W, "node_h": NODE_H}


def _circuit_entry(label: str, c: Circuit) -> tuple[dict[str, Any], set[str]]:
    live = prune_to_paths(c)
    live_names = set(live.kept_edge_names())
    importance = c.importance()
    merged, _ = merged_arrows(c)
    arrows, g = drawn_edges(c)
    nodes = nodes_of(arrows, g, c.graph)
    n_direct = sum(1 for e in c.kept.nonzero().flatten().tolist() if edge_kind(c.graph, e) == "direct")
    direct = {n: {k: _number(float(s)) for k, s in d["direct_scores"].items()}
              for n, d in g.nodes(data=True) if d["direct_scores"]}
    entry = {
        "label": label, "n_edges": c.n_edges, "n_kept": c.n_kept, "n_direct": n_direct,
        "n_residual": c.n_kept - n_direct, "n_live": live.n_kept,
        "edges": [{"name": a.name, "up": a.up, "down": a.down, "kind": a.kind, "score": _number(a.score),
                   "score_kind": c.score_kind(a.name).value,
                   "importance": float(importance[c.graph.edge_index(a.name)]), "live": a.name in live_names}
                  for a in arrows],
        "arrows": [{"up": a.up, "down": a.down, "kind": a.main_kind, "importance": a.importance,
                    "by_kind": [[k, w] for k, w in a.importance_by_kind], "n_edges": len(a.edges)} for a in merged],
        "score_kinds": {k.value: n for k, n in c.kept_score_kinds().items()},
        "direct": direct, "nodes": sorted(nodes),
        "metrics": {k: _number(float(v)) for k, v in c.metrics.items() if isinstance(v, (int, float))},
    }
    return entry, nodes


def _span_circuit_entry(label: str, c: Circuit) -> tuple[dict[str, Any], set[str]]:
    """A span circuit's entry: its functional span edges (all on paths) into the ids they are drawn into."""
    g, importance = c.graph, c.importance()
    merged, _ = span_arrows(c)
    edges = [{"name": g.edge_names[e], "up": up, "down": down, "kind": kind, "score": _number(float(c.scores[e])),
              "score_kind": c.score_kind(e).value, "importance": float(importance[e]), "live": True}
             for e, up, downs, kind in span_edge_targets(c) for down in downs]
    nodes = {i for x in edges for i in (x["up"], x["down"])}
    n_direct = sum(1 for e in c.kept.nonzero().flatten().tolist() if g.is_direct(e))
    entry = {
        "label": label, "n_edges": c.n_edges, "n_kept": c.n_kept, "n_direct": n_direct,
        "n_residual": c.n_kept - n_direct, "n_live": c.n_functional_edges, "edges": edges,
        "arrows": [{"up": a.up, "down": a.down, "kind": a.main_kind, "importance": a.importance,
                    "by_kind": [[k, w] for k, w in a.importance_by_kind], "n_edges": len(a.edges)} for a in merged],
        "score_kinds": {k.value: n for k, n in c.kept_score_kinds().items()}, "direct": {}, "nodes": sorted(nodes),
        "metrics": {k: _number(float(v)) for k, v in c.metrics.items() if isinstance(v, (int, float))},
    }
    return entry, nodes


def span_layout(graph: Graph, ids: Sequence[str]) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    """The span figure's grid (`grid_positions`) in the viewer's coordinates: logits at the top, a row label
    per layer's heads or MLP, a column label per span."""
    pos, centres, rows = grid_positions(graph, ids)
    top = max((y for _, y in rows), default=0.0)
    scale = DY / ROW_H

    def flip(y: float) -> float:
        return DY * 1.2 + (top - y) * scale

    base = graph.base
    labels = [{"y": flip(y), "label": rank_label(base, rank) or ("input" if rank[0] < 0 else "logits")}
              for rank, y in rows]
    width = max([x for x, _ in pos.values()] + list(centres)) + DX
    return ({i: (x, flip(y)) for i, (x, y) in pos.items()},
            {"width": width, "height": flip(0.0) + DY / 2, "rows": labels, "node_w": NODE_W, "node_h": NODE_H,
             "columns": [{"x": x, "y": DY / 2, "label": span} for x, span in zip(centres, graph.spans)]})


def viewer_data(circuits: Mapping[str, Circuit], roles: Mapping[str, str] | None = None,
                attention: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The viewer's JSON-ready data for one or more circuits on the same graph (see the module docstring).
    `roles`: node -> role (fills); `attention`: `attention.viewer_attention(...)` (patterns of pinned heads)."""
    if not circuits:
        raise ValueError("the viewer needs at least one circuit")
    graphs = {c.graph for c in circuits.values()}
    if len(graphs) != 1:
        raise ValueError("the viewer's circuits must share one graph; got " +
                         ", ".join(sorted(g.config.key for g in graphs)))
    graph = next(iter(graphs))
    roles = check_roles(graph, roles)
    spans = graph.has_spans
    entries, all_nodes = [], set() if spans else {INPUT, LOGITS}
    for label, c in circuits.items():
        entry, nodes = (_span_circuit_entry if spans else _circuit_entry)(str(label), c)
        entries.append(entry)
        all_nodes |= nodes
    order = id_order(graph) if spans else {name: i for i, name in enumerate(graph.node_names)}
    ids = sorted(all_nodes, key=order.__getitem__)
    pos, geometry = span_layout(graph, ids) if spans else layout(graph, ids)
    palette = role_palette(roles)
    used = sorted({roles[n] for n in map(_node_of, all_nodes) if n in roles}, key=list(palette).index)
    nodes = {}
    for name in ids:
        node = _node_of(name)
        info = node_attributes(graph.base, node)
        fill = "#ffffff" if info["kind"] in ("input", "logits") else palette[roles.get(node, "unknown")]
        nodes[name] = {"x": pos[name][0], "y": pos[name][1], "kind": info["kind"], "layer": info["layer"],
                       "head": info["head"], "role": roles.get(node, ""), "fill": fill, "label": node}
    return {
        "schema": SCHEMA, "graph": {"key": graph.config.key, "n_layers": graph.n_layers, "n_heads": graph.n_heads,
                                    "n_kv_heads": graph.n_kv_heads},
        "input": INPUT, "logits": LOGITS, "layout": geometry, "nodes": nodes, "circuits": entries,
        "edge_styles": {k: [colour, _DASH[style]] for k, (colour, style) in EDGE_STYLES.items()},
        "comparison_colors": {m: c for m, (c, _) in COMPARISON_COLORS.items()},
        "comparison_fills": {m: f for m, (_, f) in COMPARISON_COLORS.items()},
        "role_colors": {r: palette[r] for r in used},
        "level": "heads" if spans or head_level("auto", *circuits.values()) else "edges",
        "attention": dict(attention) if attention else None,
    }


def _node_of(node_id: str) -> str:
    """The graph node of a viewer id: the id itself, or its node for a span id ('a3.h5@IO' -> 'a3.h5')."""
    return split_id(node_id)[0] if SPAN_SEP in node_id else node_id


def script_json(data: Any) -> str:
    """JSON safe inside a <script> element: `<`, `>`, `&` and the JavaScript line separators escaped, so the
    text can never close the tag or open a comment."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                     ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)
    return text


def viewer_html(data: Mapping[str, Any]) -> str:
    """The viewer's markup: a container with the data blob, the stylesheet and the script inline."""
    return (f'<div class="acdc-viewer"><script type="application/json" class="acdc-viewer-data">'
            f"{script_json(data)}</script></div>\n<style>{_asset('viewer.css')}</style>\n"
            f"<script>{_asset('viewer.js')}</script>\n")


def viewer_section(circuits: Mapping[str, Circuit], roles: Mapping[str, str] | None = None,
                   attention: Mapping[str, Any] | None = None,
                   title: str = "Interactive circuit viewer") -> Html:
    """A report section holding the viewer (for `report.write_report`)."""
    return Html(title, viewer_html(viewer_data(circuits, roles, attention)))


__all__ = ["SCHEMA", "layout", "script_json", "viewer_data", "viewer_html", "viewer_section"]

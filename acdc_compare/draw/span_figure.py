"""Span circuits drawn as the IOI paper draws them: one column per span of the prompts, one row per layer's heads
and per layer's MLP (input at the bottom, logits at the top), a node per head or MLP at each span where the
circuit keeps edges into or out of it there, and the kept span edges between two such nodes merged into one
arrow (q, k and v together, as at head level: `head_plan`).

Where an arrow goes: a q, MLP or logits input reads its sender at its own positions, so those arrows stay in
their column. A k or v input at span S is read by the head's queries at other positions, so a k/v edge at S is
drawn from the sender at S into the head at every span where the head's output is kept (into the head at S
where it is kept nowhere): these arrows cross columns. Under grouped-query attention a k/v edge goes into the
heads of its group whose output is kept (all of them if none is), its importance split among its arrows.
Which edges count is the span-free `Circuit.functional` (on an input-to-logits path at some span).

Over `max_nodes` nodes or `max_arrows` arrows the most important complete paths are drawn, nodes with a role
first (`head_plan.choose_shown`). Nodes are placed on the grid by hand and laid out by Graphviz's nop (neato
-n), so columns stay aligned whatever the arrows. pygraphviz is imported inside `render` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from acdc_compare.circuit import Circuit
from acdc_compare.draw.head_figure import arrow_style, style_line
from acdc_compare.draw.head_plan import (
    MAX_DRAWN_ARROWS,
    MAX_DRAWN_NODES,
    NodeArrow,
    choose_shown,
)
from acdc_compare.draw.legend import importance_text, legend_table, runs, swatches
from acdc_compare.draw.render import (
    add_node,
    new_agraph,
    rank_label,
    rank_of,
    write_drawing,
)
from acdc_compare.draw.styles import role_palette
from acdc_compare.graph import INPUT, LOGITS, SPAN_SEP, Graph
from acdc_compare.types import ReceiverKind

NODE_W, NODE_H = 62.0, 22.0  # points: a node's cell on the grid
ROW_H, COLUMN_GAP, LABEL_W = 46.0, 28.0, 60.0


def at(node: str, span: str) -> str:
    """A drawing id: 'a3.h5@IO'."""
    return f"{node}{SPAN_SEP}{span}"


def split_id(node_id: str) -> tuple[str, str]:
    """'a3.h5@IO' -> ('a3.h5', 'IO')."""
    node, _, span = node_id.rpartition(SPAN_SEP)
    return node, span


@dataclass(frozen=True)
class SpanPlan:
    """A span circuit at (node, span) level: every merged arrow with each node's importance (summed over its
    arrows), and the shown part."""

    circuit: Circuit
    node_importance: Mapping[str, float]  # 'a3.h5@IO' -> importance (heads and MLPs only)
    arrows: tuple[NodeArrow, ...]
    shown_nodes: tuple[str, ...]
    shown_arrows: tuple[NodeArrow, ...]


def span_edge_targets(c: Circuit) -> list[tuple[int, str, tuple[str, ...], str]]:
    """Each functional residual span edge with the arrows it is drawn as (module docstring): (edge index,
    upstream id, downstream ids, input kind 'q' / 'k' / 'v' / 'mlp' / 'logits')."""
    g = c.graph
    if not g.has_spans:
        raise ValueError(f"a span figure needs a circuit on a span graph; {g!r} has no spans")
    edges = [e for e in torch.nonzero(c.functional().kept).flatten().tolist() if not g.is_direct(e)]
    written: dict[str, set[int]] = {}
    for e in edges:
        written.setdefault(g.sender_names[g.edge_sender(e)], set()).add(g.edge_span(e))
    out = []
    for e in edges:
        j, receiver = g.edge_span(e), g.receivers[g.edge_receiver(e)]
        targets = g.receiver_nodes(receiver.index)
        if receiver.kind in (ReceiverKind.K, ReceiverKind.V):
            live = [h for h in targets if h in written] or list(targets)
            downs = tuple(at(h, g.spans[t]) for h in live for t in sorted(written.get(h, {j})))
        else:
            downs = (at(targets[0], g.spans[j]),)
        out.append((e, at(g.sender_names[g.edge_sender(e)], g.spans[j]), downs, receiver.kind.value))
    return out


def span_arrows(c: Circuit) -> tuple[list[NodeArrow], dict[str, float]]:
    """The functional span circuit's residual edges merged per (node, span) pair (`span_edge_targets`; an
    edge drawn as several arrows splits its importance among them), and each (head or MLP, span)'s
    importance."""
    g = c.graph
    importance = c.importance()
    merged: dict[tuple[str, str], dict[str, float]] = {}
    names: dict[tuple[str, str], list[str]] = {}
    for e, up, downs, kind in span_edge_targets(c):
        share = float(importance[e]) / len(downs)
        for down in downs:
            kinds = merged.setdefault((up, down), {})
            kinds[kind] = kinds.get(kind, 0.0) + share
            names.setdefault((up, down), []).append(g.edge_names[e])
    order = id_order(g)
    arrows = [NodeArrow(up, down, tuple(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))), tuple(names[(up, down)]))
              for (up, down), kinds in sorted(merged.items(), key=lambda kv: (order[kv[0][0]], order[kv[0][1]]))]
    nodes: dict[str, float] = {}
    for a in arrows:
        for node_id in (a.up, a.down):
            if split_id(node_id)[0] not in (INPUT, LOGITS):
                nodes[node_id] = nodes.get(node_id, 0.0) + a.importance
    return arrows, dict(sorted(nodes.items(), key=lambda kv: order[kv[0]]))


def id_order(g: Graph) -> dict[str, int]:
    """Every drawing id in forward order: by node, then by span."""
    return {at(node, span): i * g.n_spans + j for i, node in enumerate(g.node_names) for j, span in enumerate(g.spans)}


def plan_spans(c: Circuit, must: Sequence[str] = (), max_nodes: int | None = MAX_DRAWN_NODES,
               max_arrows: int | None = MAX_DRAWN_ARROWS) -> SpanPlan:
    """What the span figure shows: every (node, span) on paths, or the most important complete paths from an
    input to a logits node, those of the nodes in `must` (base names, e.g. heads with a role) first."""
    arrows, importance = span_arrows(c)
    spans = c.graph.spans
    wanted = [at(n, s) for n in must for s in spans if at(n, s) in importance]
    shown, drawn = choose_shown(arrows, id_order(c.graph), wanted, max_nodes, max_arrows,
                                sources=[at(INPUT, s) for s in spans], sinks=[at(LOGITS, s) for s in spans])
    return SpanPlan(c, importance, tuple(arrows), shown, drawn)


def grid_positions(graph: Graph, node_ids: Sequence[str]) -> tuple[dict[str, tuple[float, float]], list[float],
                                                                   list[tuple[tuple[int, int], float]]]:
    """Points (x, y) of each id on the spans x rows grid (a cell's nodes side by side), each column's centre,
    and each row's rank and height."""
    base = graph.base
    ranks = sorted({rank_of(base, split_id(i)[0]) for i in node_ids})
    row_of = {rank: r for r, rank in enumerate(ranks)}
    cells: dict[tuple[int, int], list[str]] = {}
    span_index = {s: j for j, s in enumerate(graph.spans)}
    for node_id in node_ids:
        node, span = split_id(node_id)
        cells.setdefault((row_of[rank_of(base, node)], span_index[span]), []).append(node_id)
    widths = [max([len(ids) for (_, j), ids in cells.items() if j == col] + [1]) * NODE_W
              for col in range(graph.n_spans)]
    left = [LABEL_W + sum(widths[:col]) + col * COLUMN_GAP for col in range(graph.n_spans)]
    pos = {}
    for (row, col), ids in cells.items():
        start = left[col] + (widths[col] - len(ids) * NODE_W) / 2
        for k, node_id in enumerate(ids):
            pos[node_id] = (start + (k + 0.5) * NODE_W, row * ROW_H)
    return pos, [x + w / 2 for x, w in zip(left, widths)], [(rank, r * ROW_H) for rank, r in row_of.items()]


def draw_span_circuit(c: Circuit, paths: Sequence[Path], roles: Mapping[str, str] | None = None,
                      title: str | None = None, max_nodes: int | None = MAX_DRAWN_NODES,
                      max_arrows: int | None = MAX_DRAWN_ARROWS) -> str:
    """Draw a span circuit with spans as columns and layers as rows (module docstring) to `paths` (.svg, .png,
    .dot; one layout); nodes filled by `roles` (head -> role). Returns the DOT source."""
    roles = dict(roles or {})
    plan = plan_spans(c, must=list(roles), max_nodes=max_nodes, max_arrows=max_arrows)
    g = c.graph
    ends = {a for arrow in plan.shown_arrows for a in (arrow.up, arrow.down) if split_id(a)[0] in (INPUT, LOGITS)}
    order = id_order(g)
    ids = sorted(set(plan.shown_nodes) | ends, key=order.__getitem__)
    pos, centres, rows = grid_positions(g, ids)
    palette = role_palette(roles)
    used = sorted({roles.get(split_id(i)[0], "unknown") for i in plan.shown_nodes}, key=list(palette).index)
    legend = [
        ("roles:", swatches([(r if r != "unknown" else "no role", palette[r], None) for r in used])),
        ("columns:", runs([(f"the prompts' spans ({', '.join(g.spans)}); rows: layers, input at the bottom", None)])),
        ("arrows:", runs([(("kept span edges between two nodes merged (q, k, v together); q, MLP and logits inputs "
                            "stay in their span's column, k and v inputs cross into the head at the spans where "
                            "its output is kept; width ~ summed importance"), None)])),
        ("", style_line()),
        ("importance:", runs([(importance_text(c), None)])),
        ("", runs([((f"drawn: {len(plan.shown_nodes)} of {len(plan.node_importance)} (head or MLP, span) nodes, "
                     f"{len(plan.shown_arrows)} of {len(plan.arrows):,} merged arrows; {c.n_kept:,} span edges kept"),
                    "#555555")])),
    ]
    ag = new_agraph(legend_table(title, legend), splines="line")
    for node_id in ids:
        node, span = split_id(node_id)
        x, y = pos[node_id]
        placed = {"pos": f"{x:.1f},{y:.1f}!", "width": f"{(NODE_W - 6) / 72:.2f}", "height": f"{NODE_H / 72:.2f}",
                  "fixedsize": "true", "fontsize": "9"}
        if node in (INPUT, LOGITS):
            add_node(ag, g.base, node, "#ffffff", node, node_id, "", node_id=node_id, **placed)
            continue
        role = roles.get(node, "unknown")
        add_node(ag, g.base, node, palette[role], node,
                 f"{node} at {span}: {role}; importance {plan.node_importance[node_id]:.2f}", "", node_id=node_id,
                 **placed)
    top = max((y for _, y in rows), default=0.0) + ROW_H * 0.8
    for j, (span, x) in enumerate(zip(g.spans, centres)):
        ag.add_node(f"_column{j}", label=span, shape="plaintext", style="", fontsize="12", pos=f"{x:.1f},{top:.1f}!")
    for i, (rank, y) in enumerate(rows):
        ag.add_node(f"_row{i}", label=rank_label(g.base, rank), shape="plaintext", style="", fontcolor="#888888",
                    fontsize="10", pos=f"{LABEL_W / 2:.1f},{y:.1f}!")
    width_scale = max((a.importance for a in plan.shown_arrows), default=0.0)
    for a in plan.shown_arrows:
        ag.add_edge(a.up, a.down, key=f"{a.up}->{a.down}", **arrow_style(a, width_scale), **{"class": "circuit"})
    return write_drawing(ag, paths, len(plan.shown_arrows), layout="fixed")


__all__ = ["SpanPlan", "at", "draw_span_circuit", "grid_positions", "id_order", "plan_spans", "span_arrows",
           "span_edge_targets", "split_id"]

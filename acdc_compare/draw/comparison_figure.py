"""Drawing two circuits on one graph: the union, edges and nodes coloured shared / only left / only right."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import torch

from acdc_compare.circuit import Circuit
from acdc_compare.draw.head_figure import comparison_counts, draw_head_comparison
from acdc_compare.draw.head_plan import MAX_DRAWN_NODES, DrawLevel, head_level
from acdc_compare.draw.legend import comparison_legend, legend_table, runs
from acdc_compare.draw.plan import (
    MAX_DRAWN_EDGES,
    DrawingPlan,
    drawn_edges,
    longest_fitting_prefix,
    nodes_of,
    plan_drawing,
    ranked_edges,
    restricted,
    truncation_note,
)
from acdc_compare.draw.render import (
    add_node,
    add_ranks,
    check_paths,
    direct_text,
    new_agraph,
    sorted_nodes,
    write_drawing,
)
from acdc_compare.draw.styles import COMPARISON_COLORS, EDGE_STYLES
from acdc_compare.export import check_roles
from acdc_compare.files import PathLike
from acdc_compare.graph import INPUT, LOGITS
from acdc_compare.types import Role


def _membership(name: str, left: set[str], right: set[str]) -> str:
    if name in left and name in right:
        return "shared"
    return "left" if name in left else "right"


def _comparison_plans(left: Circuit, right: Circuit, prune: bool,
                      max_edges: int | None) -> tuple[list[DrawingPlan], int, int, int]:
    """Each circuit's drawing plan, restricted together so the union has at most `max_edges` arrows (the
    edges with the highest |score| in either circuit); and the union's residual edge count before and after."""
    plans = [plan_drawing(x, prune, None) for x in (left, right)]
    union = {(e.name, e.up, e.down): e for p in plans for e in p.edges}
    n_all = len({name for name, _, _ in union})
    n_ranked = n_all
    if max_edges is not None and len(union) > max_edges:
        best = Circuit(left.graph, left.kept | right.kept, torch.fmax(left.importance(), right.importance()))
        ranked = ranked_edges(best, union.values())

        def n_arrows(top: Sequence[int]) -> int:
            return len({(e.name, e.up, e.down) for p in plans for e in drawn_edges(restricted(p.shown, top))[0]})

        n_ranked = longest_fitting_prefix(ranked, n_arrows, max_edges)
        plans = [plan_drawing(restricted(p.shown, ranked[:n_ranked]), False, None) for p in plans]
    n_drawn = len({e.name for p in plans for e in p.edges})
    return plans, n_all, n_drawn, n_ranked


def draw_comparison(left: Circuit, right: Circuit, path: PathLike | Sequence[PathLike], left_label: str,
                    right_label: str, roles: Mapping[str, str] | None = None, title: str | None = None,
                    prune: bool = True, max_edges: int | None = MAX_DRAWN_EDGES, level: DrawLevel = "auto",
                    max_nodes: int | None = MAX_DRAWN_NODES, marked: Collection[str] | None = None) -> str:
    """Draw two circuits on the same graph to `path` (.svg, .png, .dot, or a list sharing one layout); return
    the DOT source.

    At head level (`level="heads"`, or "auto" when either circuit has more than `HEAD_LEVEL_ABOVE` edges on
    input-to-logits paths): one panel per circuit, nodes filled in both / only this circuit, the `marked`
    heads (default: those `roles` calls name movers) outlined in both panels, at most `max_nodes` per panel.
    At edge level: the union, edges and nodes coloured shared / only left / only right; edge style still
    tells q/k/v/mlp/logits apart; roles, when given, are written under the node name. Each circuit is pruned
    to paths first; over `max_edges` arrows in the union only the edges ranked first (by importance, in
    either circuit) are drawn, with a note in the legend."""
    paths = check_paths(path)
    if left.graph != right.graph:
        raise ValueError(
            f"cannot compare circuits on different graphs: {left_label!r} is on {left.graph.config.key}, "
            f"{right_label!r} on {right.graph.config.key}"
        )
    if max_edges is not None and max_edges < 1:
        raise ValueError(f"max_edges must be a whole number >= 1 (or None for no limit), got {max_edges!r}")
    roles = check_roles(left.graph, roles)
    title = f"{left_label} vs {right_label}" if title is None else title
    if head_level(level, left, right):
        marked = [n for n, r in roles.items() if r == Role.NAME_MOVER] if marked is None else list(marked)
        return draw_head_comparison(left, right, paths, (left_label, right_label), roles, marked, title,
                                    max_nodes)
    plans, n_all, n_drawn, n_ranked = _comparison_plans(left, right, prune, max_edges)
    drawn = [(p.edges, p.g) for p in plans]
    names = [{e.name for e in edges} for edges, _ in drawn]
    node_sets = [nodes_of(edges, g, left.graph) for edges, g in drawn]
    edges = {(e.name, e.up, e.down): e for edges, _ in drawn for e in edges}
    labels = {"shared": "in both", "left": f"only {left_label}", "right": f"only {right_label}"}
    counts = {m: sum(1 for n in names[0] | names[1] if _membership(n, *names) == m) for m in labels}
    legend = comparison_legend(labels, counts)
    legend += [("", runs([(line, "#555555")])) for line in comparison_counts(left, right, (left_label, right_label))]
    if n_drawn < n_all:
        note = truncation_note(n_drawn, n_all, n_ranked, max_edges).replace("ranked first", "ranked first in either "
                                                                                "circuit")
        legend.append(("", runs([(note, "#b00000")])))
    ag = new_agraph(legend_table(title, legend))
    nodes = sorted_nodes(left.graph, node_sets[0] | node_sets[1] | {INPUT, LOGITS})
    for node in nodes:
        member = "shared" if node in (INPUT, LOGITS) else _membership(node, *node_sets)
        label = node if node not in roles else f"{node}\n{roles[node]}"
        direct = sorted({d for _, g in drawn for d in direct_text(g, node).split(",") if d}, key="qkv".index)
        add_node(ag, left.graph, node, COMPARISON_COLORS[member][1], label, f"{node}: {labels[member]}",
                  ",".join(direct))
    add_ranks(ag, left.graph, nodes)
    for (name, up, down), e in edges.items():
        member = _membership(name, *names)
        ag.add_edge(up, down, key=name, color=COMPARISON_COLORS[member][0] + "cc", style=EDGE_STYLES[e.kind][1],
                    penwidth="1.6" if member == "shared" else "1.3", tooltip=f"{name}: {labels[member]}",
                    membership=member, **{"class": "circuit"})
    return write_drawing(ag, paths, len(edges))

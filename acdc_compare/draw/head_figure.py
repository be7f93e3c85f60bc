"""Head-level drawings (`head_plan`): one circuit, nodes filled by role and sized by importance; or two
circuits side by side, one panel each, nodes filled by membership (in both / only this circuit) and a set of
marked heads (IOI's name movers) outlined in both panels."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from acdc_compare.circuit import Circuit
from acdc_compare.compare import compare_circuits
from acdc_compare.draw.head_plan import HeadPlan, NodeArrow, plan_heads
from acdc_compare.draw.legend import importance_text, legend_table, runs, style_key, swatches
from acdc_compare.draw.render import add_node, add_ranks, new_agraph, write_drawing
from acdc_compare.draw.styles import COMPARISON_COLORS, EDGE_KIND_NAMES, EDGE_STYLES, edge_width, role_palette
from acdc_compare.graph import INPUT, LOGITS, Graph

if TYPE_CHECKING:
    import pygraphviz

MARK_COLOR = "#0b3d91"  # outline of marked heads (IOI's name movers) in a comparison


def node_size(importance: float, scale: float) -> dict[str, str]:
    """A node's Graphviz size and font from its importance as a share of `scale`."""
    share = math.sqrt(importance / scale) if scale > 0 else 0.0
    return {"width": f"{0.55 + 0.9 * share:.2f}", "height": f"{0.3 + 0.3 * share:.2f}",
            "fontsize": f"{10 + 5 * share:.1f}", "fixedsize": "false"}


def arrow_style(arrow: NodeArrow, scale: float) -> dict[str, str]:
    """A merged arrow's Graphviz style: its main input's colour and line, width from importance over `scale`."""
    colour, style = EDGE_STYLES[arrow.main_kind]
    inputs = ", ".join(f"{kind} {w:.2f}" for kind, w in arrow.importance_by_kind)
    return {"color": colour + "cc", "style": style, "penwidth": f"{edge_width(arrow.importance, scale):.2f}",
            "tooltip": f"{arrow.up} -> {arrow.down}: {len(arrow.edges)} edges, importance {inputs}",
            "label": "+".join(arrow.kinds) if len(arrow.kinds) > 1 else "", "fontsize": "8",
            "fontcolor": "#777777"}


def style_line() -> str:
    """The legend line naming each input's colour and line style."""
    return runs([(f"{EDGE_KIND_NAMES[kind]} ({style})", colour) for kind, (colour, style) in EDGE_STYLES.items()])


def whole_counts(plan: HeadPlan) -> str:
    """The whole circuit's counts, as the report and `discover` give them."""
    c = plan.circuit
    n_heads = sum(1 for n in plan.node_importance if n.startswith("a"))
    return (f"whole circuit: {c.n_kept:,} edges kept, {plan.n_edges_on_paths:,} of them on input-to-logits paths, "
            f"between {n_heads} heads and {plan.n_nodes - n_heads} MLPs ({len(plan.arrows):,} merged arrows)")


def drawn_counts(plan: HeadPlan) -> str:
    """What the figure shows of the circuit, counted as the figure holds it."""
    nodes = (f"all {plan.n_nodes} heads and MLPs" if not plan.truncated else
             f"{len(plan.shown_nodes)} of {plan.n_nodes} heads and MLPs (the most important complete paths, "
             "nodes with a role first)")
    return (f"drawn: {nodes}; {len(plan.shown_arrows)} of the {len(plan.arrows):,} merged arrows (every drawn "
            "node's best path, then the strongest), holding "
            f"{plan.n_edges_shown():,} of the {plan.n_edges_on_paths:,} edges on paths")


def draw_head_circuit(c: Circuit, paths: Sequence[Path], roles: Mapping[str, str], title: str | None,
                      max_nodes: int | None) -> str:
    """One circuit at head level (see `draw_circuit(..., level="heads")`)."""
    plan = plan_heads(c, must=[n for n in roles if n in set(c.functional().nodes())], max_nodes=max_nodes)
    palette = role_palette(roles)
    shown = plan.shown_nodes
    used = sorted({roles.get(n, "unknown") for n in shown}, key=list(palette).index)
    legend = [
        ("roles:", swatches([(role if role != "unknown" else "no role", palette[role], None) for role in used])),
        ("nodes:", runs([("heads and MLPs on kept input-to-logits paths, by layer; size ~ summed importance of "
                          "their arrows", None)])),
        ("arrows:", runs([("the kept edges between two nodes merged (q, k, v together; the label names the inputs "
                           "when several); width ~ summed importance; line: the input carrying most of it", None)])),
        ("", style_line()),
        ("importance:", runs([(importance_text(c), None)])),
        ("", runs([(whole_counts(plan), "#555555")])),
        ("", runs([(drawn_counts(plan), "#555555")])),
    ]
    ag = new_agraph(legend_table(title, legend), splines="line")
    scale = max(plan.node_importance.values(), default=0.0)
    for node in (INPUT, *shown, LOGITS):
        if node in (INPUT, LOGITS):
            add_node(ag, c.graph, node, "#ffffff", node, node, "")
            continue
        role = roles.get(node, "unknown")
        label = node if role == "unknown" else f"{node}\n{role}"
        add_node(ag, c.graph, node, palette[role], label,
                 f"{node}: {role}; importance {plan.node_importance[node]:.2f}", "",
                 **node_size(plan.node_importance[node], scale))
    add_ranks(ag, c.graph, [INPUT, *shown, LOGITS])
    arrows = plan.shown_arrows
    width_scale = max((a.importance for a in arrows), default=0.0)
    for a in arrows:
        ag.add_edge(a.up, a.down, key=f"{a.up}->{a.down}", **arrow_style(a, width_scale), **{"class": "circuit"})
    return write_drawing(ag, paths, len(arrows))


# ----- two circuits ---------------------------------------------------------------------------------------

def _panel_id(side: str, node: str) -> str:
    return f"{side}/{node}"


def _graph_node(node_id: str) -> str:
    return node_id.split("/", 1)[1]


def comparison_counts(left: Circuit, right: Circuit, labels: tuple[str, str]) -> list[str]:
    """Whole-circuit overlap as the report's tables and the `compare` command count it: kept edges, and the
    heads on input-to-logits paths."""
    edges = compare_circuits(left, right).edges
    heads = [left.functional_heads(), right.functional_heads()]
    return [f"whole circuits, kept edges: {len(edges.both):,} in both, {len(edges.only_a):,} only {labels[0]}, "
            f"{len(edges.only_b):,} only {labels[1]}",
            f"heads on input-to-logits paths: {len(heads[0] & heads[1])} in both, {len(heads[0] - heads[1])} only "
            f"{labels[0]}, {len(heads[1] - heads[0])} only {labels[1]}"]


def draw_head_comparison(left: Circuit, right: Circuit, paths: Sequence[Path], labels: tuple[str, str],
                         roles: Mapping[str, str], marked: Collection[str], title: str | None,
                         max_nodes: int | None) -> str:
    """Two circuits at head level, side by side (see `draw_comparison(..., level="heads")`): each panel's
    nodes filled 'in both' or 'only this circuit' by whether the other circuit has the node on its paths;
    `marked` heads (IOI's name movers) outlined in both panels, role names under the node names."""
    on_paths = [set(x.functional().nodes()) - {INPUT, LOGITS} for x in (left, right)]
    wanted = set(roles) | set(marked)
    plans = [plan_heads(x, must=[n for n in wanted if n in nodes], max_nodes=max_nodes)
             for x, nodes in zip((left, right), on_paths)]
    member = ("left", "right")
    legend = [
        ("colour:", swatches([("in both", COMPARISON_COLORS["shared"][1], None),
                              (f"only {labels[0]}", COMPARISON_COLORS["left"][1], None),
                              (f"only {labels[1]}", COMPARISON_COLORS["right"][1], None)])),
        ("outlined:", runs([(f"IOI's name movers ({', '.join(sorted(marked, key=_head_key)) or 'none'}), in "
                             "both panels where the circuit has them", MARK_COLOR)])),
        ("arrows:", runs([("kept edges between two nodes merged (q, k, v together), coloured as the nodes: between "
                           "the same two nodes in both circuits, or only this one; width ~ summed importance in "
                           "its circuit; line: the input carrying most of it", None)])),
        ("line:", runs([(text, None) for text in style_key()])),
        *[("", runs([(line, "#555555")])) for line in comparison_counts(left, right, labels)],
        *[("", runs([(f"{label} panel, {drawn_counts(plan)}", "#555555")])) for label, plan in zip(labels, plans)],
    ]
    ag = new_agraph(legend_table(title, legend), splines="line")
    ids: list[str] = []
    pairs = [{(a.up, a.down) for a in plan.arrows} for plan in plans]
    for side, (label, plan, other) in enumerate(zip(labels, plans, reversed(on_paths))):
        ids += _draw_panel(ag, plan, member[side], label, other, pairs[1 - side], roles, set(marked))
    add_ranks(ag, left.graph, ids, node_of=_graph_node, panel_of=lambda node_id: int(node_id.startswith("right/")))
    return write_drawing(ag, paths, sum(len(p.shown_arrows) for p in plans))


def _head_key(name: str) -> tuple[int, int]:
    layer, head = name[1:].split(".h")
    return int(layer), int(head)


def _draw_panel(ag: "pygraphviz.AGraph", plan: HeadPlan, side: str, circuit_label: str, other: set[str],
                other_pairs: set[tuple[str, str]], roles: Mapping[str, str], marked: set[str]) -> list[str]:
    """One comparison panel, nodes and arrows coloured in both / only this circuit (`other`: the other
    circuit's nodes on paths, `other_pairs` its merged arrows); returns its node ids."""
    graph: Graph = plan.circuit.graph
    scale = max(plan.node_importance.values(), default=0.0)
    ids = []
    for node in (INPUT, *plan.shown_nodes, LOGITS):
        node_id = _panel_id(side, node)
        ids.append(node_id)
        if node in (INPUT, LOGITS):
            add_node(ag, graph, node, "#ffffff", f"{circuit_label}: {node}", f"{circuit_label}: {node}", "",
                     node_id=node_id)
            continue
        membership = "shared" if node in other else side
        role = roles.get(node)
        label = node if role is None else f"{node}\n{role}"
        outline = {"color": MARK_COLOR, "penwidth": "3"} if node in marked else {}
        add_node(ag, graph, node, COMPARISON_COLORS[membership][1], label,
                 f"{node}: {'in both' if membership == 'shared' else 'only this circuit'}"
                 + (f"; {role}" if role else ""), "", node_id=node_id, membership=membership,
                 **node_size(plan.node_importance[node], scale), **outline)
    arrows = plan.shown_arrows
    width_scale = max((a.importance for a in arrows), default=0.0)
    for a in arrows:
        membership = "shared" if (a.up, a.down) in other_pairs else side
        style = {**arrow_style(a, width_scale), "color": COMPARISON_COLORS[membership][0] + "cc"}
        ag.add_edge(_panel_id(side, a.up), _panel_id(side, a.down), key=f"{a.up}->{a.down}", membership=membership,
                    **style, **{"class": "circuit"})
    return ids

"""Drawing one circuit: nodes filled by role, edges styled by kind and sized by |score|, with a legend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from acdc_compare.circuit import Circuit
from acdc_compare.draw.head_figure import draw_head_circuit, drawn_counts
from acdc_compare.draw.head_plan import MAX_DRAWN_NODES, DrawLevel, head_level, plan_heads
from acdc_compare.draw.legend import circuit_legend, legend_table
from acdc_compare.draw.plan import MAX_DRAWN_EDGES, nodes_of, plan_drawing
from acdc_compare.draw.render import (
    add_node,
    add_ranks,
    check_paths,
    direct_text,
    new_agraph,
    sorted_nodes,
    write_drawing,
)
from acdc_compare.draw.styles import EDGE_STYLES, edge_width, role_palette
from acdc_compare.export import check_roles
from acdc_compare.files import PathLike
from acdc_compare.graph import INPUT, LOGITS


def draw_circuit(c: Circuit, path: PathLike | Sequence[PathLike], roles: Mapping[str, str] | None = None,
                 title: str | None = None, prune: bool = True, max_edges: int | None = MAX_DRAWN_EDGES,
                 level: DrawLevel = "auto", max_nodes: int | None = MAX_DRAWN_NODES) -> str:
    """Draw a circuit to `path` (.svg, .png, or .dot for the source; a list of paths shares one layout) and
    return the DOT source.

    `level="heads"` (the default, "auto", for circuits of more than `HEAD_LEVEL_ABOVE` edges on input-to-logits
    paths) draws heads and MLPs with merged arrows (`head_plan`), at most `max_nodes` of them (the most
    important complete paths, nodes with a role first); `level="edges"` draws every residual edge:

    With `prune` (default) edges off every input-to-logits path are dropped first (`prune_to_paths`).
    Over `max_edges` arrows only the edges ranked first by the evidence that kept them are drawn (widths:
    `Circuit.importance`), with a note in the legend
    (`plan_drawing`; None draws everything, however long the layout takes).
    Nodes are filled by role (`roles`: node name -> role, e.g. {'a9.h9': 'name mover'}), with a legend.
    """
    paths = check_paths(path)
    roles = check_roles(c.graph, roles)
    if title is None and c.settings.get("task"):
        title = " on ".join(str(c.settings[k]) for k in ("task", "model") if c.settings.get(k))
    if head_level(level, c):
        return draw_head_circuit(c, paths, roles, title, max_nodes)
    plan = plan_drawing(c, prune, max_edges)
    edges, g = plan.edges, plan.g
    nodes = sorted_nodes(c.graph, nodes_of(edges, g, c.graph) | {INPUT, LOGITS})
    palette = role_palette(roles)
    used = sorted({roles.get(n, "unknown") for n in nodes if n not in (INPUT, LOGITS)}, key=list(palette).index)
    importance = c.importance()
    ag = new_agraph(legend_table(title, circuit_legend(c, roles, used, palette, prune, plan.note)))
    for node in nodes:
        role = roles.get(node, "unknown")
        fill = "#ffffff" if node in (INPUT, LOGITS) else palette[role]
        direct = direct_text(g, node)
        tooltip = f"{node}: {role}" + (f"; direct edges kept: {direct}" if direct else "")
        add_node(ag, c.graph, node, fill, node, tooltip, direct)
    add_ranks(ag, c.graph, nodes)
    for e in edges:
        colour, style = EDGE_STYLES[e.kind]
        index = c.graph.edge_index(e.name)
        ag.add_edge(e.up, e.down, key=e.name, color=colour + "cc", style=style,
                    penwidth=f"{edge_width(float(importance[index])):.2f}",
                    tooltip=f"{e.name}: {c.score_kind(index).value} score {e.score:.4g}", **{"class": "circuit"})
    return write_drawing(ag, paths, len(edges))


def figure_note(c: Circuit, roles: Mapping[str, str] | None = None, level: DrawLevel = "auto") -> str:
    """What `draw_circuit(c, ..., roles=roles, level=level)` leaves out of the circuit, '' when nothing."""
    roles = check_roles(c.graph, roles)
    if head_level(level, c):
        plan = plan_heads(c, must=[n for n in roles if n in set(c.functional().nodes())])
        return drawn_counts(plan) if plan.truncated or len(plan.shown_arrows) < len(plan.arrows) else ""
    return plan_drawing(c).note

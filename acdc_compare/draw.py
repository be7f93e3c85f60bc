"""Circuit diagrams with Graphviz (pygraphviz, in-process; no `dot` command needed).

Layout: input at the top, logits at the bottom, one rank per layer's heads and one per layer's MLP (the
MLP reads its layer's heads), a grey layer label at the left of each rank; ranks with no node are left out.
Heads of a layer sit side by side (dot orders them to limit crossings). Residual edges are told apart by colour and style
(q solid blue, k dashed green, v dotted red, MLP input purple, logits dark grey); edge width grows with
|score| (scaled to the largest finite |score| drawn, clipped). Direct edges join a head to itself, so they
are not drawn: a head's node carries them in its `direct` attribute and tooltip. Under grouped-query
attention a k/v edge is drawn into the heads of its group that feed something (all of them if none does).

Bounded drawing time: dot's layout time grows steeply with the number of arrows (measured in
benchmarks/bench_draw.py), so a circuit with more than `max_edges` arrows (default `MAX_DRAWN_EDGES`) is
drawn as its top edges by |score|: the longest top run that, pruned to input-to-logits paths again, makes at
most `max_edges` arrows. The legend says how many of how many are drawn (`plan_drawing(...).note`). Drawings over `FAST_LAYOUT_ARROWS` arrows
use dot with fewer network-simplex and crossing-minimisation iterations. Every output format of one drawing
shares one layout (`path` may be a list of paths).

Every circuit edge in the DOT source has `key` = its edge name and `class="circuit"`; the layer labels
and their invisible chain have `class="layout"`. pygraphviz is imported inside the functions only.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx
import torch

from acdc_compare.circuit import Circuit
from acdc_compare.export import check_roles, node_attributes, prune_to_paths, to_networkx
from acdc_compare.files import PathLike, atomic_write
from acdc_compare.graph import INPUT, LOGITS, Graph
from acdc_compare.types import Role

if TYPE_CHECKING:
    import pygraphviz

ROLE_COLORS: dict[str, str] = {
    Role.NAME_MOVER: "#7fb2e5",
    Role.BACKUP_NAME_MOVER: "#c6dcf2",
    Role.NEGATIVE_NAME_MOVER: "#f2a3a3",
    Role.S_INHIBITION: "#a6dc8e",
    Role.INDUCTION: "#f7c873",
    Role.DUPLICATE_TOKEN: "#d4b0e6",
    Role.PREVIOUS_TOKEN: "#f4e27a",
    Role.MOVER: "#8fd3cc",
    "unknown": "#eeeeee",
}
_EXTRA_ROLE_COLORS = ("#e6c9a8", "#c8c8f4", "#f7c6de", "#cfe8b9", "#bfe3f0", "#e0e0a0", "#d9b8a0")
EDGE_STYLES: dict[str, tuple[str, str]] = {  # kind -> (colour, style)
    "q": ("#1f66b3", "solid"),
    "k": ("#2a9d3a", "dashed"),
    "v": ("#d0312d", "dotted"),
    "mlp": ("#8155b8", "solid"),
    "logits": ("#444444", "solid"),
}
COMPARISON_COLORS: dict[str, tuple[str, str]] = {  # membership -> (edge colour, node fill)
    "shared": ("#3a3a3a", "#dcdcdc"),
    "left": ("#0072b2", "#c4def2"),
    "right": ("#e08a00", "#fbe0b0"),
}
_SUFFIXES = (".svg", ".png", ".dot")
_MIN_WIDTH, _MAX_WIDTH = 0.6, 4.0
MAX_DRAWN_EDGES = 300  # arrows; above it the top-|score| edges are drawn, with a note
FAST_LAYOUT_ARROWS = 150  # above it dot runs with fewer layout iterations
_FAST_LAYOUT = {"nslimit": "2", "nslimit1": "2", "mclimit": "0.2"}


@dataclass(frozen=True)
class _Edge:
    """One drawn arrow: a residual edge from `up` into node `down`."""

    name: str
    up: str
    down: str
    kind: str
    score: float


# ----- circuit -> drawable edges and nodes -----------------------------------------------------------
def drawn_edges(c: Circuit) -> tuple[list[_Edge], nx.MultiDiGraph]:
    """The circuit's residual edges as arrows (k/v edges only into group heads that feed something)."""
    g = to_networkx(c)
    by_name: dict[str, list[_Edge]] = {}
    for up, down, name, data in g.edges(keys=True, data=True):
        by_name.setdefault(name, []).append(_Edge(name, up, down, data["kind"], data["score"]))
    out: list[_Edge] = []
    for arrows in by_name.values():
        alive = [a for a in arrows if a.down == LOGITS or g.out_degree(a.down) > 0]
        out.extend(alive or arrows)
    return out, g


def nodes_of(edges: Iterable[_Edge], g: nx.MultiDiGraph, graph: Graph) -> set[str]:
    """Nodes the arrows touch, plus heads kept only through direct edges (so nothing kept is hidden) - except
    query heads that share a kept k/v direct edge with a head of their group that feeds something: like the
    k/v arrows, the shared edge is drawn on the heads that use it."""
    nodes = {n for e in edges for n in (e.up, e.down)}
    size = graph.group_size
    live_groups = {(d["layer"], d["head"] // size) for n, d in g.nodes(data=True)
                   if d["kind"] == "head" and g.out_degree(n) > 0}
    for n, d in g.nodes(data=True):
        kinds = d["direct_edges_kept"]
        if not kinds or n in nodes:
            continue
        shared_only = size > 1 and set(kinds) <= {"k", "v"}
        if not (shared_only and (d["layer"], d["head"] // size) in live_groups):
            nodes.add(n)
    return nodes


@dataclass(frozen=True)
class DrawingPlan:
    """What a circuit's drawing shows: `shown` (the circuit drawn), its arrows, and how many of the
    circuit's residual edges on input-to-logits paths (`n_on_paths`) are drawn (`n_drawn`)."""

    shown: Circuit
    edges: tuple[_Edge, ...]
    g: nx.MultiDiGraph
    n_on_paths: int
    n_drawn: int
    n_ranked: int  # the drawn edges are those on paths among the n_ranked highest-|score| ones
    max_edges: int | None

    @property
    def truncated(self) -> bool:
        return self.n_drawn < self.n_on_paths

    @property
    def note(self) -> str:
        """'' when every edge is drawn, else what was left out and why."""
        if not self.truncated:
            return ""
        return _truncation_note(self.n_drawn, self.n_on_paths, self.n_ranked, self.max_edges)


def _truncation_note(n_drawn: int, n_all: int, n_ranked: int, max_edges: int | None) -> str:
    return (f"drawn: {n_drawn} of {n_all} residual edges on input-to-logits paths, those still on such a path "
            f"among the {n_ranked} with the highest |score| (at most {max_edges} arrows, so that the layout "
            "stays fast); every kept edge is in the circuit's JSON")


def _ranked_edges(c: Circuit, edges: Iterable[_Edge]) -> list[int]:
    """The drawn edges' indices by |score|, highest first; NaN scores last; ties by index."""
    index = {e.name: c.graph.edge_index(e.name) for e in edges}
    scores = c.scores.abs().nan_to_num(nan=-math.inf)
    return sorted(index.values(), key=lambda i: (-float(scores[i]), i))


def _restricted(c: Circuit, residual: Sequence[int]) -> Circuit:
    """`c` with only the residual edges `residual` (indices; its direct edges all kept), pruned to paths."""
    kept = c.kept & (c.graph.edge_sender_tensor < 0)
    kept[list(residual)] = True
    return prune_to_paths(c.with_kept(kept & c.kept))


def _longest_fitting_prefix(ranked: Sequence[int], n_arrows: Callable[[Sequence[int]], int], max_arrows: int) -> int:
    """The longest prefix of `ranked` (edge indices, best first) whose drawing, pruned to paths, has at most
    `max_arrows` arrows (`n_arrows(prefix)`). Pruning is monotone in the kept set, so the arrow count grows
    with the prefix and bisection finds it."""
    lo, hi = 0, len(ranked)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if n_arrows(ranked[:mid]) <= max_arrows:
            lo = mid
        else:
            hi = mid - 1
    return lo


def plan_drawing(c: Circuit, prune: bool = True, max_edges: int | None = MAX_DRAWN_EDGES) -> DrawingPlan:
    """What `draw_circuit(c, ..., prune, max_edges)` draws; `max_edges=None` draws every edge."""
    if max_edges is not None and max_edges < 1:
        raise ValueError(f"max_edges must be a whole number >= 1 (or None for no limit), got {max_edges!r}")
    shown = prune_to_paths(c) if prune else c
    edges, g = drawn_edges(shown)
    n_all = len({e.name for e in edges})
    n_ranked = n_all
    if max_edges is not None and len(edges) > max_edges:
        ranked = _ranked_edges(shown, edges)
        n_ranked = _longest_fitting_prefix(ranked, lambda top: len(drawn_edges(_restricted(shown, top))[0]),
                                           max_edges)
        shown = _restricted(shown, ranked[:n_ranked])
        edges, g = drawn_edges(shown)
    return DrawingPlan(shown, tuple(edges), g, n_all, len({e.name for e in edges}), n_ranked, max_edges)


def role_palette(roles: Mapping[str, str]) -> dict[str, str]:
    """Colour per role: the known roles' own colours, then extra colours for other role names."""
    palette = dict(ROLE_COLORS)
    extra = iter(_EXTRA_ROLE_COLORS * (1 + len(roles) // len(_EXTRA_ROLE_COLORS)))
    for role in sorted(set(roles.values()) - set(palette)):
        palette[role] = next(extra)
    return palette


def _width(score: float, scale: float) -> float:
    """Edge width from |score|, scaled to `scale` and clipped; NaN scores get a middling width."""
    if math.isnan(score) or scale <= 0:
        return 1.2
    return _MIN_WIDTH + (_MAX_WIDTH - _MIN_WIDTH) * min(1.0, abs(score) / scale)


def _score_scale(edges: Iterable[_Edge]) -> float:
    finite = [abs(e.score) for e in edges if math.isfinite(e.score)]
    return max(finite, default=0.0)


# ----- the Graphviz graph ----------------------------------------------------------------------------
def _new_agraph(label_html: str) -> "pygraphviz.AGraph":
    import pygraphviz

    ag = pygraphviz.AGraph(directed=True, strict=False, name="circuit")
    ag.graph_attr.update(
        rankdir="TB", splines="spline", nodesep="0.18", ranksep="0.55", outputorder="edgesfirst",
        labelloc="t", labeljust="l", fontname="Helvetica", fontsize="12", dpi="96", newrank="true",
        label=f"<{label_html}>",
    )
    ag.node_attr.update(fontname="Helvetica", fontsize="11", style="filled", penwidth="1", margin="0.04,0.02")
    ag.edge_attr.update(arrowsize="0.5", fontname="Helvetica")
    return ag


def _sorted_nodes(graph: Graph, nodes: set[str]) -> list[str]:
    """Nodes in forward order, so the DOT source (and the layout) is the same on every run."""
    order = {name: i for i, name in enumerate(graph.node_names)}
    return sorted(nodes, key=order.__getitem__)


def _rank_of(graph: Graph, node: str) -> tuple[int, int]:
    """Sort key of a node's rank: (layer, 0) for heads, (layer, 1) for MLPs; input first, logits last."""
    info = node_attributes(graph, node)
    return info["layer"], int(info["kind"] == "mlp")


def _rank_label(graph: Graph, rank: tuple[int, int]) -> str:
    layer, is_mlp = rank
    if layer < 0 or layer >= graph.n_layers:
        return ""
    return f"L{layer} mlp" if is_mlp else f"L{layer} attn"


def _add_ranks(ag: "pygraphviz.AGraph", graph: Graph, nodes: list[str]) -> None:
    """One `rank=same` subgraph per occupied rank, led by a layer label chained top to bottom."""
    ranks: dict[tuple[int, int], list[str]] = {}
    for node in nodes:
        ranks.setdefault(_rank_of(graph, node), []).append(node)
    previous: str | None = None
    for i, rank in enumerate(sorted(ranks)):
        label = f"_rank{i}"
        ag.add_node(label, label=_rank_label(graph, rank), shape="plaintext", style="", fontcolor="#888888",
                    fontsize="10", width="0.6")
        members = [label, *ranks[rank]]
        ag.add_subgraph(members, name=f"rank{i}", rank="same")
        for node in ranks[rank]:  # flat edges put the label left of its rank; dot orders the nodes
            ag.add_edge(label, node, key="_order", style="invis", **{"class": "layout"})
        if previous is not None:
            ag.add_edge(previous, label, key="_spine", style="invis", weight="100", **{"class": "layout"})
        previous = label


def _node_style(graph: Graph, node: str) -> dict[str, str]:
    kind = node_attributes(graph, node)["kind"]
    if kind in ("input", "logits"):
        return {"shape": "box", "style": "filled,bold", "fontsize": "12", "width": "1.2"}
    if kind == "mlp":
        return {"shape": "box", "style": "filled"}
    return {"shape": "box", "style": "filled,rounded"}


def _direct_text(g: nx.MultiDiGraph, node: str) -> str:
    return ",".join(g.nodes[node]["direct_edges_kept"]) if node in g.nodes else ""


def _add_node(ag: "pygraphviz.AGraph", graph: Graph, node: str, fill: str, label: str, tooltip: str,
              direct: str) -> None:
    ag.add_node(node, label=label, fillcolor=fill, tooltip=tooltip, direct=direct, **_node_style(graph, node))


def _write(ag: "pygraphviz.AGraph", paths: Sequence[Path], n_arrows: int) -> str:
    """Write the DOT source (.dot) and dot-layout renderings (.svg, .png), all from one layout; return the
    DOT source (without layout attributes)."""
    source = ag.string()
    laid_out = False
    for path in paths:
        suffix = path.suffix.lower()
        if suffix == ".dot":
            atomic_write(path, source.encode("utf-8"))
            continue
        if not laid_out:
            if n_arrows > FAST_LAYOUT_ARROWS:
                ag.graph_attr.update(_FAST_LAYOUT)
            ag.layout(prog="dot")
            laid_out = True
        atomic_write(path, ag.draw(format=suffix[1:]))
    return source


def _check_paths(path: PathLike | Sequence[PathLike]) -> list[Path]:
    """One path or several; each must end in a known format."""
    paths = [Path(p) for p in path] if isinstance(path, Sequence) and not isinstance(path, str) else [Path(path)]
    if not paths:
        raise ValueError("no output path given")
    for p in paths:
        if p.suffix.lower() not in _SUFFIXES:
            raise ValueError(f"cannot tell the format of {p}: use one of {', '.join(_SUFFIXES)}")
    return paths


# ----- legends ---------------------------------------------------------------------------------------
# A legend is a list of lines (label, content HTML), laid out as a two-column HTML table used as the graph's
# label, so it adds no nodes or edges. Content is either text runs or a row of coloured swatches.
Run = tuple[str, str | None]  # text, font colour
LegendLine = tuple[str, str]


def _runs(runs: list[Run]) -> str:
    """Coloured text runs, three spaces apart."""
    parts = [html.escape(t) if c is None else f'<font color="{c}">{html.escape(t)}</font>' for t, c in runs]
    return "&nbsp;&nbsp;&nbsp;".join(parts)


def _swatches(items: list[tuple[str, str, str | None]]) -> str:
    """A row of boxed labels: (text, background, font colour); a blank when there are none (Graphviz
    refuses an empty row)."""
    if not items:
        return " "
    cells = "".join(
        f'<td bgcolor="{bg}" border="1">{_runs([(text, colour)])}</td>' for text, bg, colour in items
    )
    return f'<table border="0" cellborder="0" cellspacing="3" cellpadding="2"><tr>{cells}</tr></table>'


def _legend_table(title: str | None, lines: list[LegendLine]) -> str:
    """Title and legend lines as one HTML table: bold labels on the left, content left-aligned."""
    rows = []
    if title:
        heading = f'<font point-size="16"><b>{html.escape(title)}</b></font>'
        rows.append(f'<tr><td colspan="2" align="left">{heading}</td></tr>')
    for label, content in lines:  # Graphviz refuses empty <b></b>
        bold = f"<b>{html.escape(label)}</b>" if label else " "
        rows.append(f'<tr><td align="left">{bold}</td><td align="left">{content}</td></tr>')
    return f'<table border="0" cellborder="0" cellspacing="2" cellpadding="1">{"".join(rows)}</table>'


def _circuit_legend(c: Circuit, shown: Circuit, roles: Mapping[str, str], used: list[str],
                    palette: Mapping[str, str], scale: float, prune: bool, note: str = "") -> list[LegendLine]:
    summary = f"{shown.n_kept} of {c.n_edges} edges kept"
    if prune:
        summary += f" ({c.n_kept - shown.n_kept} off every input-to-logits path pruned)"
    lines = [
        ("edges:", _runs([(f"{kind} ({style})", colour) for kind, (colour, style) in EDGE_STYLES.items()])),
        ("width:", _runs([(f"~ |score|, max {scale:.3g}" if scale else "no scores", None)])),
        ("", _runs([(summary, "#555555")])),
    ]
    if note:
        lines.append(("", _runs([(note, "#b00000")])))
    if roles:
        lines.insert(0, ("roles:", _swatches([(role, palette[role], None) for role in used])))
    return lines


def _comparison_legend(labels: Mapping[str, str], counts: Mapping[str, int]) -> list[LegendLine]:
    sets = [(f"{labels[m]} ({counts[m]} edges)", COMPARISON_COLORS[m][1], COMPARISON_COLORS[m][0]) for m in labels]
    styles = _runs([(f"{kind} {style}", None) for kind, (_, style) in EDGE_STYLES.items()])
    return [("colour:", _swatches(sets)), ("style:", styles)]


# ----- public ----------------------------------------------------------------------------------------
def draw_circuit(c: Circuit, path: PathLike | Sequence[PathLike], roles: Mapping[str, str] | None = None,
                 title: str | None = None, prune: bool = True, max_edges: int | None = MAX_DRAWN_EDGES) -> str:
    """Draw a circuit to `path` (.svg, .png, or .dot for the source; a list of paths shares one layout) and
    return the DOT source.

    With `prune` (default) edges off every input-to-logits path are dropped first (`prune_to_paths`).
    Over `max_edges` arrows only the highest-|score| edges are drawn, with a note in the legend
    (`plan_drawing`; None draws everything, however long the layout takes).
    Nodes are filled by role (`roles`: node name -> role, e.g. {'a9.h9': 'name mover'}), with a legend.
    """
    paths = _check_paths(path)
    roles = check_roles(c.graph, roles)
    plan = plan_drawing(c, prune, max_edges)
    edges, g = plan.edges, plan.g
    nodes = _sorted_nodes(c.graph, nodes_of(edges, g, c.graph) | {INPUT, LOGITS})
    palette = role_palette(roles)
    used = sorted({roles.get(n, "unknown") for n in nodes if n not in (INPUT, LOGITS)}, key=list(palette).index)
    scale = _score_scale(edges)
    shown = prune_to_paths(c) if prune else c
    ag = _new_agraph(_legend_table(title, _circuit_legend(c, shown, roles, used, palette, scale, prune, plan.note)))
    for node in nodes:
        role = roles.get(node, "unknown")
        fill = "#ffffff" if node in (INPUT, LOGITS) else palette[role]
        direct = _direct_text(g, node)
        tooltip = f"{node}: {role}" + (f"; direct edges kept: {direct}" if direct else "")
        _add_node(ag, c.graph, node, fill, node, tooltip, direct)
    _add_ranks(ag, c.graph, nodes)
    for e in edges:
        colour, style = EDGE_STYLES[e.kind]
        ag.add_edge(e.up, e.down, key=e.name, color=colour + "cc", style=style,
                    penwidth=f"{_width(e.score, scale):.2f}", tooltip=f"{e.name}: {e.score:.4g}",
                    **{"class": "circuit"})
    return _write(ag, paths, len(edges))


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
        best = left.with_kept(left.kept | right.kept)
        best = replace(best, scores=torch.fmax(left.scores.abs(), right.scores.abs()))
        ranked = _ranked_edges(best, union.values())

        def n_arrows(top: Sequence[int]) -> int:
            return len({(e.name, e.up, e.down) for p in plans for e in drawn_edges(_restricted(p.shown, top))[0]})

        n_ranked = _longest_fitting_prefix(ranked, n_arrows, max_edges)
        plans = [plan_drawing(_restricted(p.shown, ranked[:n_ranked]), False, None) for p in plans]
    n_drawn = len({e.name for p in plans for e in p.edges})
    return plans, n_all, n_drawn, n_ranked


def draw_comparison(left: Circuit, right: Circuit, path: PathLike | Sequence[PathLike], left_label: str,
                    right_label: str, roles: Mapping[str, str] | None = None, title: str | None = None,
                    prune: bool = True, max_edges: int | None = MAX_DRAWN_EDGES) -> str:
    """Draw the union of two circuits on the same graph, edges and nodes coloured shared / only left /
    only right, to `path` (.svg, .png, .dot, or a list sharing one layout); return the DOT source. Edge
    style still tells q/k/v/mlp/logits apart; roles, when given, are written under the node name. Each
    circuit is pruned to paths first; over `max_edges` arrows in the union only the highest-|score| edges
    are drawn, with a note in the legend."""
    paths = _check_paths(path)
    if left.graph != right.graph:
        raise ValueError(
            f"cannot compare circuits on different graphs: {left_label!r} is on {left.graph.config.key}, "
            f"{right_label!r} on {right.graph.config.key}"
        )
    if max_edges is not None and max_edges < 1:
        raise ValueError(f"max_edges must be a whole number >= 1 (or None for no limit), got {max_edges!r}")
    roles = check_roles(left.graph, roles)
    plans, n_all, n_drawn, n_ranked = _comparison_plans(left, right, prune, max_edges)
    drawn = [(p.edges, p.g) for p in plans]
    names = [{e.name for e in edges} for edges, _ in drawn]
    node_sets = [nodes_of(edges, g, left.graph) for edges, g in drawn]
    edges = {(e.name, e.up, e.down): e for edges, _ in drawn for e in edges}
    labels = {"shared": "in both", "left": f"only {left_label}", "right": f"only {right_label}"}
    counts = {m: sum(1 for n in names[0] | names[1] if _membership(n, *names) == m) for m in labels}
    legend = _comparison_legend(labels, counts)
    if n_drawn < n_all:
        note = _truncation_note(n_drawn, n_all, n_ranked, max_edges).replace("|score|", "|score| in either circuit")
        legend.append(("", _runs([(note, "#b00000")])))
    ag = _new_agraph(_legend_table(title, legend))
    nodes = _sorted_nodes(left.graph, node_sets[0] | node_sets[1] | {INPUT, LOGITS})
    for node in nodes:
        member = "shared" if node in (INPUT, LOGITS) else _membership(node, *node_sets)
        label = node if node not in roles else f"{node}\n{roles[node]}"
        direct = sorted({d for _, g in drawn for d in _direct_text(g, node).split(",") if d}, key="qkv".index)
        _add_node(ag, left.graph, node, COMPARISON_COLORS[member][1], label, f"{node}: {labels[member]}",
                  ",".join(direct))
    _add_ranks(ag, left.graph, nodes)
    for (name, up, down), e in edges.items():
        member = _membership(name, *names)
        ag.add_edge(up, down, key=name, color=COMPARISON_COLORS[member][0] + "cc", style=EDGE_STYLES[e.kind][1],
                    penwidth="1.6" if member == "shared" else "1.3", tooltip=f"{name}: {labels[member]}",
                    membership=member, **{"class": "circuit"})
    return _write(ag, paths, len(edges))

"""What a head-level drawing shows: the heads and MLPs on a circuit's input-to-logits paths, the kept edges
between two of them merged into one arrow (q, k and v together), each weighted by the edges' importance
(`Circuit.importance`: a kept edge's place in the ranking by the evidence that kept it), and, over
`max_nodes`, the most important complete paths.

Selection: each node's best path is the widest input-to-logits path through it (the path whose weakest
merged arrow is strongest); nodes carrying a role come first, then by the strength of their best path, and
each adds its whole best path while the node budget allows. The arrows drawn are those of the chosen paths,
then the strongest other arrows between shown nodes up to `max_arrows`. Every shown node therefore lies on a
complete path of shown arrows."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from acdc_compare.circuit import Circuit
from acdc_compare.draw.plan import drawn_edges
from acdc_compare.graph import INPUT, LOGITS

DrawLevel = Literal["auto", "heads", "edges"]  # auto: heads above HEAD_LEVEL_ABOVE edges on paths, else edges
MAX_DRAWN_NODES = 40  # heads and MLPs; above it the most important complete paths are drawn
MAX_DRAWN_ARROWS = 80  # merged arrows; above it the chosen paths' arrows and the strongest others
HEAD_LEVEL_ABOVE = 150  # circuits with more edges on input-to-logits paths are drawn at head level by default


@dataclass(frozen=True)
class NodeArrow:
    """The kept edges from node `up` into node `down`, merged: which inputs they feed ('q', 'k', 'v', 'mlp',
    'logits'), with the importance each carries, and the circuit edges they are."""

    up: str
    down: str
    importance_by_kind: tuple[tuple[str, float], ...]  # most important kind first
    edges: tuple[str, ...]

    @property
    def importance(self) -> float:
        return sum(w for _, w in self.importance_by_kind)

    @property
    def main_kind(self) -> str:
        """The input carrying most of the importance: it sets the arrow's line style."""
        return self.importance_by_kind[0][0]

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.importance_by_kind)


@dataclass(frozen=True)
class HeadPlan:
    """A circuit at head level: every node on its input-to-logits paths with its importance (summed over its
    arrows in and out), every merged arrow, and the shown part."""

    circuit: Circuit
    node_importance: Mapping[str, float]  # heads and MLPs on paths (not input / logits)
    arrows: tuple[NodeArrow, ...]  # every merged arrow of the circuit
    shown_nodes: tuple[str, ...]  # heads and MLPs drawn, in graph order
    shown_arrows: tuple[NodeArrow, ...]  # arrows drawn, in the order of `arrows`
    max_nodes: int | None

    @property
    def n_arrows_between_shown(self) -> int:
        shown = set(self.shown_nodes) | {INPUT, LOGITS}
        return sum(1 for a in self.arrows if a.up in shown and a.down in shown)

    @property
    def n_nodes(self) -> int:
        return len(self.node_importance)

    @property
    def truncated(self) -> bool:
        return len(self.shown_nodes) < self.n_nodes

    @property
    def n_edges_on_paths(self) -> int:
        return self.circuit.n_functional_edges

    def n_edges_shown(self) -> int:
        """Residual circuit edges inside the shown arrows (an edge into several heads of a key-value group
        counts once)."""
        return len({name for a in self.shown_arrows for name in a.edges})


def merged_arrows(c: Circuit) -> tuple[list[NodeArrow], dict[str, float]]:
    """The functional circuit's residual edges merged per node pair, and each head's or MLP's importance. An
    edge entering several heads of a key-value group splits its importance among the arrows it makes."""
    functional = c.functional()
    importance = c.importance()
    edges, _ = drawn_edges(functional)
    fan_out: dict[str, int] = {}
    for e in edges:
        fan_out[e.name] = fan_out.get(e.name, 0) + 1
    merged: dict[tuple[str, str], dict[str, float]] = {}
    names: dict[tuple[str, str], list[str]] = {}
    for e in edges:
        share = float(importance[c.graph.edge_index(e.name)]) / fan_out[e.name]
        kinds = merged.setdefault((e.up, e.down), {})
        kinds[e.kind] = kinds.get(e.kind, 0.0) + share
        names.setdefault((e.up, e.down), []).append(e.name)
    order = {name: i for i, name in enumerate(c.graph.node_names)}
    arrows = [NodeArrow(up, down, tuple(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
                        tuple(names[(up, down)]))
              for (up, down), kinds in sorted(merged.items(), key=lambda kv: (order[kv[0][0]], order[kv[0][1]]))]
    nodes: dict[str, float] = {}
    for a in arrows:
        for node in (a.up, a.down):
            if node not in (INPUT, LOGITS):
                nodes[node] = nodes.get(node, 0.0) + a.importance
    return arrows, dict(sorted(nodes.items(), key=lambda kv: order[kv[0]]))


def widest_paths(arrows: list[NodeArrow], order: Mapping[str, int], sources: Collection[str] = (INPUT,),
                 sinks: Collection[str] = (LOGITS,)) -> dict[str, list[str]]:
    """Per node (other than the sources and sinks), its widest path from a source to a sink (the one whose
    weakest arrow is strongest; ties: the earlier node), as the nodes along it."""
    into: dict[str, list[NodeArrow]] = {}
    out_of: dict[str, list[NodeArrow]] = {}
    for a in arrows:
        into.setdefault(a.down, []).append(a)
        out_of.setdefault(a.up, []).append(a)
    nodes = sorted({n for a in arrows for n in (a.up, a.down)}, key=order.__getitem__)
    fwd: dict[str, tuple[float, str | None]] = {s: (math.inf, None) for s in sources}
    for v in nodes:
        if v not in fwd:
            fwd[v] = max(((min(fwd.get(a.up, (-math.inf, None))[0], a.importance), a.up) for a in into.get(v, [])),
                         key=lambda x: (x[0], -order[x[1]]), default=(-math.inf, None))
    bwd: dict[str, tuple[float, str | None]] = {t: (math.inf, None) for t in sinks}
    for v in reversed(nodes):
        if v not in bwd:
            bwd[v] = max(((min(bwd.get(a.down, (-math.inf, None))[0], a.importance), a.down)
                          for a in out_of.get(v, [])), key=lambda x: (x[0], -order[x[1]]), default=(-math.inf, None))
    paths: dict[str, list[str]] = {}
    ends = set(sources) | set(sinks)
    for v in nodes:
        if v in ends or not (math.isfinite(fwd[v][0]) and math.isfinite(bwd[v][0])):
            continue
        back, node = [], fwd[v][1]
        while node is not None:
            back.append(node)
            node = fwd[node][1]
        ahead, node = [], bwd[v][1]
        while node is not None:
            ahead.append(node)
            node = bwd[node][1]
        paths[v] = [*reversed(back), v, *ahead]
    return paths


def path_strength(path: list[str], arrows: Mapping[tuple[str, str], NodeArrow]) -> float:
    return min(arrows[(u, v)].importance for u, v in zip(path, path[1:]))


def plan_heads(c: Circuit, must: Collection[str] = (), max_nodes: int | None = MAX_DRAWN_NODES,
               max_arrows: int | None = MAX_DRAWN_ARROWS) -> HeadPlan:
    """The head-level drawing of `c`: every node on its input-to-logits paths, or over `max_nodes` the most
    important complete paths, the nodes in `must` (e.g. those with a role) and their paths first; the arrows
    of those paths and the strongest others up to `max_arrows` (None: every arrow between shown nodes)."""
    arrows, importance = merged_arrows(c)
    order = {name: i for i, name in enumerate(c.graph.node_names)}
    shown, drawn = choose_shown(arrows, order, must, max_nodes, max_arrows)
    return HeadPlan(c, importance, tuple(arrows), shown, drawn, max_nodes)


def choose_shown(arrows: list[NodeArrow], order: Mapping[str, int], must: Collection[str] = (),
                 max_nodes: int | None = MAX_DRAWN_NODES, max_arrows: int | None = MAX_DRAWN_ARROWS,
                 sources: Collection[str] = (INPUT,),
                 sinks: Collection[str] = (LOGITS,)) -> tuple[tuple[str, ...], tuple[NodeArrow, ...]]:
    """The nodes (in `order`; sources and sinks not counted) and arrows (in the order of `arrows`) a drawing
    shows: the module docstring's selection, with paths running from any source to any sink."""
    for name, value in (("max_nodes", max_nodes), ("max_arrows", max_arrows)):
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise ValueError(f"{name} must be a whole number >= 1 (or None for no limit), got {value!r}")
    paths = widest_paths(arrows, order, sources, sinks)
    by_pair = {(a.up, a.down): a for a in arrows}
    strength = {v: path_strength(p, by_pair) for v, p in paths.items()}
    wanted = set(must)
    ends = set(sources) | set(sinks)
    priority = sorted(paths, key=lambda v: (v not in wanted, -strength[v], order[v]))
    shown: set[str] = set()
    chosen: list[list[str]] = []
    for v in priority:
        new = {n for n in paths[v] if n not in ends} - shown
        if max_nodes is None or len(shown) + len(new) <= max_nodes:
            shown |= new
            chosen.append(paths[v])
    inside = shown | ends
    on_paths = {(u, v) for p in chosen for u, v in zip(p, p[1:])}
    others = sorted((a for a in arrows if a.up in inside and a.down in inside and (a.up, a.down) not in on_paths),
                    key=lambda a: -a.importance)
    room = len(others) if max_arrows is None else max(0, max_arrows - len(on_paths))
    drawn = on_paths | {(a.up, a.down) for a in others[:room]}
    return (tuple(sorted(shown, key=order.__getitem__)),
            tuple(a for a in arrows if (a.up, a.down) in drawn))


def check_level(level: DrawLevel) -> None:
    if level not in ("auto", "heads", "edges"):
        raise ValueError(f"level must be 'auto', 'heads' or 'edges', got {level!r}")


def head_level(level: DrawLevel, *circuits: Circuit) -> bool:
    """Whether a drawing of `circuits` is at head level: asked for, or (auto) any has more than
    HEAD_LEVEL_ABOVE edges on input-to-logits paths."""
    check_level(level)
    if level != "auto":
        return level == "heads"
    return any(c.n_functional_edges > HEAD_LEVEL_ABOVE for c in circuits)

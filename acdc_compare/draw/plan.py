"""What a drawing shows: a circuit's residual edges as arrows (`drawn_edges`), the nodes they touch
(`nodes_of`), and, over `max_edges` arrows, the first edges of the circuit's ranking (`Circuit.ranking`: by
the evidence that kept each) that still fit (`plan_drawing`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import networkx as nx

from acdc_compare.circuit import Circuit
from acdc_compare.export import prune_to_paths, to_networkx
from acdc_compare.graph import LOGITS, Graph

MAX_DRAWN_EDGES = 300  # arrows; above it the first-ranked edges are drawn, with a note


@dataclass(frozen=True)
class DrawnEdge:
    """One drawn arrow: a residual edge from `up` into node `down`."""

    name: str
    up: str
    down: str
    kind: str
    score: float


def drawn_edges(c: Circuit) -> tuple[list[DrawnEdge], nx.MultiDiGraph]:
    """The circuit's residual edges as arrows (k/v edges only into group heads that feed something)."""
    g = to_networkx(c)
    by_name: dict[str, list[DrawnEdge]] = {}
    for up, down, name, data in g.edges(keys=True, data=True):
        by_name.setdefault(name, []).append(DrawnEdge(name, up, down, data["kind"], data["score"]))
    out: list[DrawnEdge] = []
    for arrows in by_name.values():
        alive = [a for a in arrows if a.down == LOGITS or g.out_degree(a.down) > 0]
        out.extend(alive or arrows)
    return out, g


def nodes_of(edges: Iterable[DrawnEdge], g: nx.MultiDiGraph, graph: Graph) -> set[str]:
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
    edges: tuple[DrawnEdge, ...]
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
        return truncation_note(self.n_drawn, self.n_on_paths, self.n_ranked, self.max_edges)


def truncation_note(n_drawn: int, n_all: int, n_ranked: int, max_edges: int | None) -> str:
    return (f"drawn: {n_drawn} of {n_all} residual edges on input-to-logits paths, those still on such a path "
            f"among the {n_ranked} ranked first by the score that kept them (at most {max_edges} arrows, so that "
            "the layout stays fast); every kept edge is in the circuit's JSON")


def ranked_edges(c: Circuit, edges: Iterable[DrawnEdge]) -> list[int]:
    """The drawn edges' indices in the circuit's ranking by evidence (`Circuit.ranking`), first first."""
    wanted = {c.graph.edge_index(e.name) for e in edges}
    return [e for e in c.ranking().tolist() if e in wanted]


def restricted(c: Circuit, residual: Sequence[int]) -> Circuit:
    """`c` with only the residual edges `residual` (indices; its direct edges all kept), pruned to paths."""
    kept = c.kept & (c.graph.edge_sender_tensor < 0)
    kept[list(residual)] = True
    return prune_to_paths(c.with_kept(kept & c.kept))


def longest_fitting_prefix(ranked: Sequence[int], n_arrows: Callable[[Sequence[int]], int], max_arrows: int) -> int:
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
        ranked = ranked_edges(shown, edges)
        n_ranked = longest_fitting_prefix(ranked, lambda top: len(drawn_edges(restricted(shown, top))[0]),
                                           max_edges)
        shown = restricted(shown, ranked[:n_ranked])
        edges, g = drawn_edges(shown)
    return DrawingPlan(shown, tuple(edges), g, n_all, len({e.name for e in edges}), n_ranked, max_edges)

"""A circuit is a value: a graph, which of its edges are kept, and a score per edge."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any

import torch

from acdc_compare.graph import Graph
from acdc_compare.types import ReceiverKind, ScoreKind

Vertex = tuple[str, int]  # ("s", sender index) or ("r", receiver index)

SCORE_KINDS: tuple[ScoreKind, ...] = tuple(ScoreKind)  # a kind's code in `Circuit.score_kinds` is its index here
# Where an edge falls in `Circuit.ranking`: kept edges before removed ones; among kept edges those kept on the
# method's ranking (untested by ACDC) before those ACDC tested and kept (the hybrid tests the lowest-ranked
# candidates); among removed ones those ACDC tested (they were candidates) before the ranking's rest.
_KEPT_TIER = {ScoreKind.LEARNED: 0, ScoreKind.EAP_IG: 0, ScoreKind.EAP: 0, ScoreKind.GIVEN: 0,
              ScoreKind.ACDC: 1, ScoreKind.NONE: 2}
_REMOVED_TIER = {ScoreKind.ACDC: 3, ScoreKind.LEARNED: 4, ScoreKind.EAP_IG: 5, ScoreKind.EAP: 5,
                 ScoreKind.GIVEN: 5, ScoreKind.NONE: 6}
_UNRANKED_TIER = 6


def kind_codes(kind: ScoreKind | str, scores: torch.Tensor) -> torch.Tensor:
    """Per-edge kind codes (int8) for scores all of one kind: `kind` where the score is not NaN, else NONE."""
    code = SCORE_KINDS.index(ScoreKind(kind))
    return torch.where(torch.isnan(scores), SCORE_KINDS.index(ScoreKind.NONE), code).to(torch.int8)


# The notebook renderer (HTML of a circuit or a comparison), plugged in from above: the viewer lives in a higher
# layer than this module, so the package's __init__ registers a function that imports it on first display.
_NOTEBOOK_RENDERER: list[Callable[[Any], str]] = []


def set_notebook_renderer(render: Callable[[Any], str] | None) -> None:
    """Install (or with None remove) the function `_repr_html_` of circuits and comparisons calls."""
    _NOTEBOOK_RENDERER.clear()
    if render is not None:
        _NOTEBOOK_RENDERER.append(render)


def notebook_html(value: Any) -> str | None:
    """`value` as notebook HTML, or None (the notebook then shows its repr) when no renderer is installed."""
    return _NOTEBOOK_RENDERER[0](value) if _NOTEBOOK_RENDERER else None


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, eq=False)
class Circuit:
    """Graph + kept edges + per-edge scores (+ the numbers and settings of the run that found it).

    `kept` is a bool vector over the graph's edges, `scores` a float vector (NaN where an edge was never
    scored) holding for each edge the evidence it was kept or removed on, and `score_kinds` what each score
    is (`ScoreKind`: ACDC's metric change where ACDC tested the edge, else the ranking that chose it - a
    learned mask logit, an EAP-IG or EAP score): int8 codes into `SCORE_KINDS`, or one `ScoreKind` for every
    scored edge (default GIVEN). `ranking()` orders the edges by that evidence; figures, tables, curves, the
    viewer and the MIB export all rank by it. Tensors are private copies: nothing outside can change a
    circuit after it is made.
    """

    graph: Graph
    kept: torch.Tensor
    scores: torch.Tensor = field(default=None)  # type: ignore[assignment]
    metrics: Mapping[str, float] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    score_kinds: torch.Tensor | ScoreKind | str = ScoreKind.GIVEN

    def __post_init__(self) -> None:
        n = self.graph.n_edges
        kept = torch.as_tensor(self.kept).detach().to("cpu")
        if kept.shape != (n,):
            raise ValueError(f"kept has shape {tuple(kept.shape)}; {self.graph!r} needs ({n},)")
        if kept.dtype != torch.bool:
            raise TypeError(f"kept must be a bool tensor, got {kept.dtype}")
        scores = self.scores
        scores = torch.full((n,), math.nan, dtype=torch.float64) if scores is None else torch.as_tensor(scores)
        scores = scores.detach().to("cpu", torch.float64)
        if scores.shape != (n,):
            raise ValueError(f"scores has shape {tuple(scores.shape)}; {self.graph!r} needs ({n},)")
        kinds = self.score_kinds
        if isinstance(kinds, (ScoreKind, str)):
            kinds = kind_codes(kinds, scores)
        kinds = torch.as_tensor(kinds).detach().to("cpu")
        if kinds.shape != (n,) or kinds.dtype != torch.int8:
            raise ValueError(f"score_kinds must be int8 codes of shape ({n},), got {kinds.dtype} {tuple(kinds.shape)}")
        if n and not 0 <= int(kinds.min()) <= int(kinds.max()) < len(SCORE_KINDS):
            raise ValueError(f"score_kinds holds a code outside 0..{len(SCORE_KINDS) - 1}")
        none, given = SCORE_KINDS.index(ScoreKind.NONE), SCORE_KINDS.index(ScoreKind.GIVEN)
        kinds = torch.where(torch.isnan(scores), none, torch.where(kinds == none, given, kinds)).to(torch.int8)
        object.__setattr__(self, "score_kinds", kinds)
        object.__setattr__(self, "kept", kept.clone())
        object.__setattr__(self, "scores", scores.clone())
        object.__setattr__(self, "metrics", _frozen(self.metrics))
        object.__setattr__(self, "settings", _frozen(self.settings))

    # ----- construction -------------------------------------------------------------------------------
    @classmethod
    def full(cls, graph: Graph) -> "Circuit":
        return cls(graph, torch.ones(graph.n_edges, dtype=torch.bool))

    @classmethod
    def empty(cls, graph: Graph) -> "Circuit":
        return cls(graph, torch.zeros(graph.n_edges, dtype=torch.bool))

    @classmethod
    def from_edge_names(cls, graph: Graph, names: Iterable[str], **kwargs: Any) -> "Circuit":
        kept = torch.zeros(graph.n_edges, dtype=torch.bool)
        for name in names:
            kept[graph.edge_index(name)] = True
        return cls(graph, kept, **kwargs)

    @classmethod
    def from_scores(cls, graph: Graph, scores: torch.Tensor, *, top_n: int | None = None,
                    threshold: float | None = None, **kwargs: Any) -> "Circuit":
        """Keep the `top_n` highest-scoring edges, or those scoring at least `threshold` (higher = more
        important). Exactly one of the two must be given."""
        check_selection(top_n, threshold, graph.n_edges)
        scores = torch.as_tensor(scores, dtype=torch.float64)
        if top_n is not None:
            kept = torch.zeros(graph.n_edges, dtype=torch.bool)
            order = torch.argsort(torch.nan_to_num(scores, nan=-math.inf), descending=True, stable=True)
            kept[order[:top_n]] = True
        else:
            kept = torch.nan_to_num(scores, nan=-math.inf) >= float(threshold)  # type: ignore[arg-type]
        return cls(graph, kept, scores, **kwargs)

    @classmethod
    def functional_within(cls, graph: Graph, scores: torch.Tensor, budget: int, **kwargs: Any) -> "Circuit":
        """The functional part (`functional`) of the top-k edges by `scores` for the largest k whose
        functional part keeps at most `budget` edges: an edge budget spent only on edges that can matter."""
        if isinstance(budget, bool) or int(budget) != budget or not 0 <= budget:
            raise ValueError(f"an edge budget must be a whole number >= 0, got {budget!r}")
        lo, hi = 0, graph.n_edges
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if cls.from_scores(graph, scores, top_n=mid).functional().n_kept <= budget:
                lo = mid
            else:
                hi = mid - 1
        return cls.from_scores(graph, scores, top_n=lo, **kwargs).functional()

    def with_kept(self, kept: torch.Tensor) -> "Circuit":
        return replace(self, kept=kept)

    # ----- views --------------------------------------------------------------------------------------
    @property
    def n_kept(self) -> int:
        return int(self.kept.sum())

    @property
    def n_edges(self) -> int:
        return self.graph.n_edges

    def kept_edge_names(self) -> list[str]:
        names = self.graph.edge_names
        return [names[i] for i in torch.nonzero(self.kept).flatten().tolist()]

    def edge_score(self, name: str) -> float:
        return float(self.scores[self.graph.edge_index(name)])

    def score_kind(self, e: int | str) -> ScoreKind:
        """What edge `e`'s (index or name) score is."""
        index = self.graph.edge_index(e) if isinstance(e, str) else int(e)
        return SCORE_KINDS[int(self.score_kinds[index])]

    def kept_score_kinds(self) -> dict[ScoreKind, int]:
        """How many kept edges hold a score of each kind, most common first."""
        codes = torch.bincount(self.score_kinds[self.kept].long(), minlength=len(SCORE_KINDS)).tolist()
        found = {SCORE_KINDS[i]: c for i, c in enumerate(codes) if c}
        return dict(sorted(found.items(), key=lambda kv: -kv[1]))

    # ----- ranking by evidence ------------------------------------------------------------------------
    def ranking(self) -> torch.Tensor:
        """Every edge index, most important first: kept edges before removed ones, then by the kind of
        evidence (see `_KEPT_TIER`, `_REMOVED_TIER`), then by score (a learned logit as it is, other kinds
        by |score|), ties by edge index. Edges that are neither kept nor scored come last."""
        kinds = self.score_kinds.long()
        kept_tier = torch.tensor([_KEPT_TIER[k] for k in SCORE_KINDS])[kinds]
        removed_tier = torch.tensor([_REMOVED_TIER[k] for k in SCORE_KINDS])[kinds]
        tier = torch.where(self.kept, kept_tier, removed_tier)
        learned = kinds == SCORE_KINDS.index(ScoreKind.LEARNED)
        value = torch.where(learned, self.scores, self.scores.abs()).nan_to_num(nan=-math.inf)
        order = torch.sort(-value, stable=True).indices
        return order[torch.sort(tier[order], stable=True).indices]

    def n_ranked(self) -> int:
        """How many edges `ranking` can place: kept or scored (the rest trail in edge order)."""
        return int((self.kept | (self.score_kinds != SCORE_KINDS.index(ScoreKind.NONE))).sum())

    def rank_scores(self) -> torch.Tensor:
        """float64 [n_edges]: n_ranked - position in `ranking` for the first `n_ranked` edges (higher = more
        important), NaN for the rest: the ranking as scores, for anything that ranks edges by a score."""
        out = torch.full((self.n_edges,), math.nan, dtype=torch.float64)
        n = self.n_ranked()
        out[self.ranking()[:n]] = torch.arange(n, 0, -1, dtype=torch.float64)
        return out

    def importance(self) -> torch.Tensor:
        """float64 [n_edges]: a kept edge's place in `ranking` as a share, 1 for the first kept edge down to
        1 / n_kept for the last; 0 for removed edges. Comparable across kinds of evidence, and summable."""
        out = torch.zeros(self.n_edges, dtype=torch.float64)
        n = self.n_kept
        out[self.ranking()[:n]] = torch.arange(n, 0, -1, dtype=torch.float64) / max(n, 1)
        return out

    def nodes(self) -> set[str]:
        """Every node that a kept edge touches."""
        out: set[str] = set()
        for e in torch.nonzero(self.kept).flatten().tolist():
            up, down = self.graph.edge_nodes(e)
            out.update(up)
            out.update(down)
        return out

    def heads(self) -> set[str]:
        """Every head a kept edge touches (under grouped-query attention a kept k/v edge touches every query
        head of its group); `functional_heads` counts only heads that can carry signal."""
        return {n for n in self.nodes() if n.startswith("a")}

    # ----- functional size ----------------------------------------------------------------------------
    def functional(self) -> "Circuit":
        """The same circuit keeping only the edges that can carry signal: those on a path of kept edges
        from `input` to `logits`. An edge whose sender has no such path from the input carries the ablated
        value, the same as removing it; one whose receiver has no path on to the logits changes nothing.

        Signal enters a head only through a q/k/v input with a kept residual edge from a live sender AND
        (when the graph has direct edges) the kept direct edge from that input into the head; a k/v input
        of a key-value head feeds every query head of its group. MLP inputs feed their MLP directly.
        Scores, metrics and settings are carried over unchanged; the result is its own `functional()`.
        """
        return self.with_kept(self._functional_kept)

    @property
    def n_functional_edges(self) -> int:
        """How many kept edges can carry signal (`functional`)."""
        return int(self._functional_kept.sum())

    def functional_heads(self) -> set[str]:
        """Heads that send a kept edge on an input->logits path: with grouped key/value heads a head counts
        for what it sends, not because its group's k/v input is kept."""
        graph = self.graph
        senders = (graph.edge_sender(e) for e in torch.nonzero(self._functional_kept).flatten().tolist())
        return {graph.sender_names[s] for s in senders if s >= 0 and graph.is_head_sender(s)}

    @cached_property
    def _functional_kept(self) -> torch.Tensor:
        adj, ends = _flow_graph(self)
        forward = _reach(adj, ("s", 0))
        backward_adj: dict[Vertex, list[Vertex]] = {}
        for tail, heads in adj.items():
            for head in heads:
                backward_adj.setdefault(head, []).append(tail)
        backward = _reach(backward_adj, ("r", self.graph.logits_receiver))
        kept = torch.zeros_like(self.kept)
        for e, (tail, *heads) in ends.items():
            kept[e] = tail in forward and any(h in backward for h in heads)
        return kept

    def __contains__(self, edge_name: str) -> bool:
        return bool(self.kept[self.graph.edge_index(edge_name)])

    def __repr__(self) -> str:
        """`Circuit(task ioi on smollm2-135m: 1386 of 71101 edges kept, 126 heads on paths)`; the graph's key
        stands in for the model when the settings name none."""
        task = self.settings.get("task")
        where = self.settings.get("model") or self.graph.config.key
        what = f"task {task} on {where}" if task else str(where)
        heads = len(self.functional_heads())
        return f"Circuit({what}: {self.n_kept} of {self.n_edges} edges kept, {heads} head{'s' * (heads != 1)} on paths)"

    def _repr_html_(self) -> str | None:
        """The interactive viewer, inline and self-contained, sized for a notebook cell (Jupyter calls this)."""
        return notebook_html(self)

    def check_graph(self, graph: Graph) -> None:
        """Raise a clear error when this circuit belongs to another graph."""
        if self.graph != graph:
            raise ValueError(
                f"circuit is on graph {self.graph.config.key}, but the model's graph is {graph.config.key}: "
                "build the circuit from this model's graph (Graph.from_model_config)"
            )


def check_selection(top_n: int | None, threshold: float | None, n_edges: int | None = None) -> None:
    """Selection by score: exactly one of `top_n` (0..n_edges) or a score `threshold` (not NaN)."""
    if (top_n is None) == (threshold is None):
        raise ValueError("give exactly one of top_n or threshold")
    if top_n is not None:
        if isinstance(top_n, bool) or int(top_n) != top_n or top_n < 0:
            raise ValueError(f"top_n must be a whole number >= 0, got {top_n!r}")
        if n_edges is not None and top_n > n_edges:
            raise ValueError(f"top_n={top_n} is outside 0..{n_edges}")
    if threshold is not None:
        try:
            value = float(threshold)
        except (TypeError, ValueError):
            raise ValueError(f"threshold must be a number, got {threshold!r}") from None
        if math.isnan(value):
            raise ValueError("threshold must be a number, got nan")


class Liveness:
    """The dead-receiver rule, kept up to date as edges are removed: a receiver whose node sends no kept
    residual edge is dead (a head's q/k/v input also once its direct edge is removed; a grouped k/v input
    once every query head reading it is dead)."""

    def __init__(self, graph: Graph, kept: torch.Tensor) -> None:
        self.graph = graph
        snd = graph.edge_sender_tensor
        resid = snd >= 0
        self.out_count = torch.bincount(snd[resid & kept], minlength=graph.n_senders).tolist()

    def removed(self, e: int) -> None:
        s = self.graph.edge_sender(e)
        if s >= 0:
            self.out_count[s] -= 1

    def dead(self, receiver: int, direct: bool, kept: torch.Tensor) -> bool:
        """Whether the edges into `receiver` (its `direct` edge, or its residual edges) can carry nothing."""
        g = self.graph
        rec = g.receivers[receiver]
        if rec.kind is ReceiverKind.LOGITS:
            return False
        if rec.kind is not ReceiverKind.MLP and not direct and g.config.include_direct:
            return not any(bool(kept[e]) for e in g.direct_edges(receiver))
        return all(self.out_count[s] == 0 for s in g.receiver_node_senders(receiver))


def random_circuit(graph: Graph, n_nodes: int, seed: int, degree: int = 3) -> Circuit:
    """A random circuit of chains input -> nodes -> logits, for drawing tests and benchmarks (no model).

    `n_nodes` random senders each read `degree` residual edges from earlier chosen nodes or the input, and
    feed `max(1, degree // 2)` later chosen nodes (or, one time in five or when none is later, the logits);
    direct edges of the inputs used are kept. Pruned to input-to-logits paths (`functional`); scores random
    (exponential, mean 1/30). The same (graph, n_nodes, seed, degree) always gives the same circuit."""
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(1, graph.n_senders), n_nodes))
    kept: set[int] = set()

    def keep(s: int, r: int) -> None:
        kept.add(graph.resid_edge(s, r))
        if graph.config.include_direct and int(graph.direct_index[r]) >= 0:
            kept.add(graph.direct_edge(r))

    for s in chosen:
        for _ in range(degree):
            r = rng.choice(_node_inputs(graph, s))
            keep(rng.choice([u for u in (0, *chosen) if u < graph.receivers[r].n_upstream]), r)
        later = [t for t in chosen if t > s and graph.receivers[_node_inputs(graph, t)[0]].n_upstream > s]
        for _ in range(max(1, degree // 2)):
            if later and rng.random() < 0.8:
                t = rng.choice(later)
                keep(s, rng.choice([x for x in _node_inputs(graph, t) if graph.receivers[x].n_upstream > s]))
            else:
                keep(s, graph.logits_receiver)
    mask = torch.zeros(graph.n_edges, dtype=torch.bool)
    mask[sorted(kept)] = True
    scores = torch.tensor([rng.expovariate(30.0) for _ in range(graph.n_edges)], dtype=torch.float64)
    return Circuit(graph, mask, scores).functional()


def _node_inputs(graph: Graph, s: int) -> list[int]:
    """The receivers sender `s`'s node reads: a head's q and its group's k, v; an MLP's input."""
    if graph.is_head_sender(s):
        layer, head = graph.sender_head(s)
        group = head // graph.group_size
        return [graph.q_receiver(layer, head), graph.k_receiver(layer, group), graph.v_receiver(layer, group)]
    return [graph.mlp_receiver(graph.sender_layer[s])]


def _flow_graph(c: Circuit) -> tuple[dict[Vertex, list[Vertex]], dict[int, list[Vertex]]]:
    """The kept circuit as a DAG over ('s', sender) and ('r', receiver) vertices.

    Returns the adjacency and, per kept edge, its (tail, heads) vertices. A residual edge runs sender ->
    receiver. A q/k/v receiver passes to its head(s) only through its kept direct edge (with no direct edges
    in the graph, always); an MLP receiver always passes to its MLP; the logits receiver is the sink.
    """
    graph = c.graph
    adj: dict[Vertex, list[Vertex]] = {}
    ends: dict[int, list[Vertex]] = {}
    for e in torch.nonzero(c.kept).flatten().tolist():
        r = graph.edge_receiver(e)
        if graph.is_direct(e):
            tail, heads = ("r", r), [("s", s) for s in graph.receiver_node_senders(r)]
        else:
            tail, heads = ("s", graph.edge_sender(e)), [("r", r)]
        adj.setdefault(tail, []).extend(heads)
        ends[e] = [tail, *heads]
    for rec in graph.receivers:
        gated = graph.config.include_direct and rec.kind in (ReceiverKind.Q, ReceiverKind.K, ReceiverKind.V)
        if not gated and rec.kind is not ReceiverKind.LOGITS:
            adj.setdefault(("r", rec.index), []).extend(("s", s) for s in graph.receiver_node_senders(rec.index))
    return adj, ends


def _reach(adj: Mapping[Vertex, list[Vertex]], start: Vertex) -> set[Vertex]:
    seen, stack = {start}, [start]
    while stack:
        for nxt in adj.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen

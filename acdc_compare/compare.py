"""Comparing circuits: overlap scores, head-class recovery, ROC/AUC as the ACDC reference computes it, and
MIB-style faithfulness curves. Pure functions on `Circuit`s and numbers; no model is needed.

Conventions:
- In `compare_circuits(a, b)`, b is the reference: precision = |a & b| / |a|, recall = |a & b| / |b|.
- ROC points are (FPR, TPR) of a found circuit against a reference circuit over all edges (or all nodes) of
  their shared graph; AUC is the ACDC reference's pessimistic staircase over the Pareto-optimal points.
- Scores follow `Circuit.from_scores`: higher = more important, NaN = never kept (ranked last).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import torch

from acdc_compare.circuit import Circuit, notebook_html
from acdc_compare.graph import Graph

Over = Literal["edges", "nodes"]


# ----- overlap of two circuits ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Overlap:
    """Two sets of names (a = found, b = reference), each part in graph order, with the usual scores.

    Empty sets never divide by zero: precision is 1.0 when a is empty (a claims nothing, so nothing wrong),
    recall is 1.0 when b is empty (nothing to find), F1 is 0.0 when precision + recall is 0, and Jaccard is
    1.0 when both sets are empty (they are equal).
    """

    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    both: tuple[str, ...]

    @property
    def n_a(self) -> int:
        return len(self.only_a) + len(self.both)

    @property
    def n_b(self) -> int:
        return len(self.only_b) + len(self.both)

    @property
    def precision(self) -> float:
        return len(self.both) / self.n_a if self.n_a else 1.0

    @property
    def recall(self) -> float:
        return len(self.both) / self.n_b if self.n_b else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    @property
    def jaccard(self) -> float:
        union = len(self.only_a) + len(self.only_b) + len(self.both)
        return len(self.both) / union if union else 1.0


def overlap(a: set[str], b: set[str], order: Sequence[str]) -> Overlap:
    rank = {n: i for i, n in enumerate(order)}

    def in_order(names: set[str]) -> tuple[str, ...]:
        return tuple(sorted(names, key=lambda n: rank.get(n, len(rank))))

    return Overlap(in_order(a - b), in_order(b - a), in_order(a & b))


@dataclass(frozen=True)
class CircuitComparison:
    """Overlap of a found circuit (a) with a reference circuit (b) over edges, nodes and attention heads."""

    edges: Overlap
    nodes: Overlap
    heads: Overlap
    a: Circuit | None = field(default=None, repr=False, compare=False)  # the circuits compared, for display
    b: Circuit | None = field(default=None, repr=False, compare=False)
    labels: tuple[str, str] = ("a", "b")

    def _repr_html_(self) -> str | None:
        """Both circuits in the interactive viewer (compare mode) with the overlap table, for a notebook cell."""
        return notebook_html(self)


def compare_circuits(a: Circuit, b: Circuit, labels: tuple[str, str] = ("a", "b")) -> CircuitComparison:
    """Compare circuit a against reference b (both on the same graph). Nodes are those `Circuit.nodes` gives
    (every node a kept edge touches); heads are the attention heads among them. `labels` name a and b when
    the comparison is shown."""
    b.check_graph(a.graph)
    graph = a.graph
    return CircuitComparison(
        edges=overlap(set(a.kept_edge_names()), set(b.kept_edge_names()), graph.edge_names),
        nodes=overlap(a.nodes(), b.nodes(), graph.node_names),
        heads=overlap(a.heads(), b.heads(), graph.node_names),
        a=a, b=b, labels=(str(labels[0]), str(labels[1])),
    )


# ----- head classes --------------------------------------------------------------------------------------

def head_class_recovery(found_heads: set[str], classes: Mapping[str, Sequence[str]]) -> dict[str, tuple[int, int]]:
    """Per class: (how many of its heads are in `found_heads`, how many heads the class has)."""
    return {str(name): (sum(h in found_heads for h in heads), len(heads)) for name, heads in classes.items()}


def format_head_class_recovery(recovery: Mapping[str, tuple[int, int]]) -> str:
    """E.g. 'name mover 3/3, S-inhibition 2/4'."""
    return ", ".join(f"{name} {found}/{total}" for name, (found, total) in recovery.items())


# ----- reference-style node counting ----------------------------------------------------------------------

def hook_nodes(circuit: Circuit) -> set[str]:
    """Nodes as the ACDC reference counts them: its hook-level nodes touched by a kept edge.

    A head has up to seven: its q/k/v inputs (named like the receivers, `a9.h9<q>`), its q/k/v vectors
    (`a9.h9.q`, reached by the direct edges) and its output (`a9.h9`); with grouped-query attention the k/v
    ones are per key-value head (`a9.kv1<k>`, `a9.kv1.k`). An MLP counts once (`m3`; the reference's node filter merges or drops its
    input hook), plus `input` and `logits`. The IOI ground truth has 196 such nodes (26 heads x 7 + 12 MLPs
    + input + logits), which is the reference's count.
    """
    graph = circuit.graph
    names = graph.receiver_names
    out: set[str] = set()
    for e in torch.nonzero(circuit.kept).flatten().tolist():
        r = graph.edge_receiver(e)
        rec = graph.receivers[r]
        out.add(names[r])
        s = graph.edge_sender(e)
        if s < 0:
            out.add(f"{rec.unit}.{rec.kind.value}")
        else:
            out.add(graph.sender_names[s])
    return out


# ----- ROC / AUC -------------------------------------------------------------------------------------------

class RocPoint(NamedTuple):
    fpr: float
    tpr: float


def _rates(found: torch.Tensor, truth: torch.Tensor) -> RocPoint:
    """(FPR, TPR) of bool vector `found` against `truth`; a rate with an empty denominator is 0.0."""
    pos = int(truth.sum())
    neg = truth.numel() - pos
    tp = int((found & truth).sum())
    fp = int((found & ~truth).sum())
    return RocPoint(fp / neg if neg else 0.0, tp / pos if pos else 0.0)


def _node_vector(circuit: Circuit) -> torch.Tensor:
    nodes = circuit.nodes()
    return torch.tensor([n in nodes for n in circuit.graph.node_names], dtype=torch.bool)


def roc_point(circuit: Circuit, reference: Circuit, over: Over = "edges") -> RocPoint:
    """(FPR, TPR) of a found circuit against the reference, over all edges or all nodes of the graph
    (`Graph.node_names`: input, heads, MLPs, logits)."""
    reference.check_graph(circuit.graph)
    if over == "edges":
        return _rates(circuit.kept, reference.kept)
    if over == "nodes":
        return _rates(_node_vector(circuit), _node_vector(reference))
    raise ValueError(f"over must be 'edges' or 'nodes', got {over!r}")


def roc_points(circuits: Iterable[Circuit], reference: Circuit, over: Over = "edges") -> list[RocPoint]:
    """One (FPR, TPR) point per circuit (e.g. one per threshold), in the circuits' order."""
    return [roc_point(c, reference, over) for c in circuits]


def pareto_front(points: Iterable[tuple[float, float]]) -> list[RocPoint]:
    """The points no other point strictly beats on both axes (lower FPR and higher TPR), deduplicated and
    sorted by (FPR, TPR): the reference's `discard_non_pareto_optimal`. What remains has TPR non-decreasing
    in FPR."""
    pts = sorted({RocPoint(float(x), float(y)) for x, y in points})
    front: list[RocPoint] = []
    best_tpr_before = -math.inf  # highest TPR among points with strictly lower FPR
    i = 0
    while i < len(pts):
        j = i
        while j < len(pts) and pts[j].fpr == pts[i].fpr:
            j += 1
        front.extend(p for p in pts[i:j] if not best_tpr_before > p.tpr)
        best_tpr_before = max(best_tpr_before, pts[j - 1].tpr)
        i = j
    return front


def pessimistic_auc(points: Iterable[tuple[float, float]]) -> float:
    """Area under the pessimistic ROC staircase, as the ACDC reference computes it: add (0, 0) and (1, 1),
    keep the Pareto front, and let TPR only rise at each point's FPR (it holds its previous value until
    then): AUC = sum_i (1 - FPR_i) * (TPR_i - TPR_{i-1}) over the sorted front."""
    front = pareto_front([*points, (0.0, 0.0), (1.0, 1.0)])
    return float(sum((1.0 - cur.fpr) * (cur.tpr - prev.tpr) for prev, cur in zip(front, front[1:])))


def roc_auc(circuits: Iterable[Circuit], reference: Circuit, over: Over = "edges") -> float:
    """Pessimistic AUC of a family of circuits (e.g. a threshold sweep) against the reference."""
    return pessimistic_auc(roc_points(circuits, reference, over))


def score_roc_points(scores: torch.Tensor, reference: Circuit) -> list[RocPoint]:
    """(FPR, TPR) over edges of `scores >= t` for every distinct score t (higher = more important; NaN ranks
    below everything and is never kept), from the empty circuit to the one keeping all non-NaN edges."""
    scores = torch.as_tensor(scores, dtype=torch.float64).detach().cpu()
    if scores.shape != (reference.n_edges,):
        raise ValueError(f"scores has shape {tuple(scores.shape)}; the reference's graph has {reference.n_edges} edges")
    valid = ~torch.isnan(scores)
    order = torch.argsort(scores[valid], descending=True, stable=True)
    s = scores[valid][order]
    truth = reference.kept[valid][order].to(torch.float64)
    pos = int(reference.kept.sum())
    neg = reference.n_edges - pos
    tp, fp = torch.cumsum(truth, 0), torch.cumsum(1.0 - truth, 0)
    # the last index of each group of equal scores: a threshold keeps all of a tie or none of it
    ends = torch.nonzero(torch.cat([s[1:] != s[:-1], torch.tensor([True])])).flatten().tolist() if s.numel() else []
    points = [RocPoint(0.0, 0.0)]
    for i in ends:
        points.append(RocPoint(float(fp[i]) / neg if neg else 0.0, float(tp[i]) / pos if pos else 0.0))
    return points


def score_auc(scores: torch.Tensor, reference: Circuit) -> float:
    """Pessimistic edge AUC of a continuous per-edge score, sweeping every threshold: 1.0 when every
    reference edge outscores every other edge, 0.0 when every one scores below."""
    return pessimistic_auc(score_roc_points(scores, reference))


__all__ = [
    "CircuitComparison",
    "Overlap",
    "RocPoint",
    "compare_circuits",
    "format_head_class_recovery",
    "head_class_recovery",
    "hook_nodes",
    "pareto_front",
    "pessimistic_auc",
    "roc_auc",
    "roc_point",
    "roc_points",
    "score_auc",
    "score_roc_points",
]

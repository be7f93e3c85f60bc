"""Circuits on span graphs (position-aware circuits): a task's span graph, kept edges per span, and the
span-free circuit a span circuit projects to (for tools that know no positions, such as MIB files)."""

from __future__ import annotations

import torch

from acdc_compare.circuit import Circuit
from acdc_compare.graph import Graph
from acdc_compare.tasks.base import Task


def task_span_graph(graph: Graph, task: Task) -> Graph:
    """`graph` (with or without spans) split by the task's spans (`Task.span_schema`)."""
    return graph.base.with_spans(task.span_schema().names)


def kept_per_span(c: Circuit) -> dict[str, int]:
    """How many edges a span circuit keeps in each span, in the graph's span order."""
    _require_spans(c.graph, "kept_per_span")
    per = c.kept.view(c.graph.n_base_edges, c.graph.n_spans).sum(0).tolist()
    return dict(zip(c.graph.spans, (int(x) for x in per)))


def kept_spans(c: Circuit) -> dict[str, tuple[str, ...]]:
    """Each base edge a span circuit keeps in some span, with the spans it keeps it in (base edge name ->
    span names), in edge order."""
    _require_spans(c.graph, "kept_spans")
    g = c.graph
    kept = c.kept.view(g.n_base_edges, g.n_spans)
    names = g.base.edge_names
    return {names[b]: tuple(g.spans[j] for j in torch.nonzero(kept[b]).flatten().tolist())
            for b in torch.nonzero(kept.any(1)).flatten().tolist()}


def collapse_spans(c: Circuit) -> Circuit:
    """The span-free circuit on `c.graph.base`: a base edge is kept when it is kept in any span, and scored
    by the sum of its span edges' scores (NaN where no span edge has one; for EAP and EAP-IG that sum is the
    span-free score). Metrics and settings are carried over, with settings "collapsed_spans" naming the
    spans. A circuit without spans is returned as it is."""
    g = c.graph
    if not g.has_spans:
        return c
    kept = c.kept.view(g.n_base_edges, g.n_spans).any(1)
    scores = c.scores.view(g.n_base_edges, g.n_spans)
    summed = torch.where(torch.isnan(scores).all(1), torch.nan, scores.nan_to_num(nan=0.0).sum(1))
    kinds = c.score_kinds.view(g.n_base_edges, g.n_spans).max(1).values
    return Circuit(g.base, kept, summed, metrics=c.metrics,
                   settings={**c.settings, "collapsed_spans": list(g.spans)}, score_kinds=kinds)


def _require_spans(graph: Graph, what: str) -> None:
    if not graph.has_spans:
        raise ValueError(f"{what} needs a circuit on a span graph; {graph!r} has no spans "
                         "(discover with positions='spans')")

"""Hybrid discovery: EAP-IG picks the candidates, exact greedy ACDC decides among them.

What it does, exactly:
1. Score every edge with EAP-IG (`eap_ig_scores(problem, steps)`, |score| by default) - or take the
   scores given as `prior` (e.g. to share one EAP-IG run across a threshold sweep).
2. Keep the `k` highest-scoring edges as candidates (ties broken by edge index, NaN last) - or, with
   `coverage=c` instead of `k`, the smallest k on the grid 25 x 2^i (and all edges) whose top-k EAP-IG
   circuit alone reaches normalised faithfulness c, so the candidates hold that much of the task's effect
   before ACDC prunes them (`settings["k"]`, `settings["candidate_faithfulness"]`). Every other edge
   is removed before ACDC starts and is never tested; its score in the result is NaN, like an edge ACDC
   removed untested because its receiver was dead.
3. Run greedy ACDC (`acdc(problem, threshold, candidates=...)`) from that circuit: same reference order,
   same threshold rule, same dead-receiver rule, testing only candidates. Scores of tested edges are
   ACDC's (the metric change their removal caused, on the circuit at that moment).

How its circuit relates to exact ACDC's: with k = None or k >= n_edges nothing is filtered and EAP-IG is not
even run: the result is exact ACDC's, edge for edge. With fewer candidates it is a subset of the candidates,
and it differs from exact ACDC's in two ways: an edge that ACDC would keep but EAP-IG ranks below the
top k is lost, and every test is made on a circuit that already lacks the non-candidates, so borderline
decisions can go either way. Its faithfulness should be checked (`metrics["circuit"]` against "full" and
"empty", or `faithfulness_of_scores`), as the benchmark does beside exact ACDC's. Cost: EAP-IG's forward
and backward passes plus at most k tested edges instead of n_edges.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from acdc_compare.algorithms.acdc import acdc, check_threshold
from acdc_compare.algorithms.eap import IGRule, eap_ig_scores, evaluate_many
from acdc_compare.algorithms.problem import Problem
from acdc_compare.circuit import Circuit
from acdc_compare.compare import normalized_faithfulness


def hybrid(problem: Problem, threshold: float, *, k: int | None = None, coverage: float | None = None,
           steps: int = 5, prior: torch.Tensor | None = None, absolute: bool = True, rule: IGRule = "left",
           **acdc_kwargs: Any) -> Circuit:
    """ACDC over the top-`k` edges by EAP-IG score, or over the fewest top edges reaching faithfulness
    `coverage` (see the module docstring). `acdc_kwargs` go to `acdc` (order, abs_value, max_batch, journal,
    progress)."""
    tau = check_threshold(threshold)
    graph = problem.graph
    n = graph.n_edges
    if k is not None and (isinstance(k, bool) or int(k) != k or k < 0):
        raise ValueError(f"k must be a whole number >= 0 (or None for all edges), got {k!r}")
    if coverage is not None:
        if k is not None:
            raise ValueError("give k or coverage, not both")
        if not 0.0 < float(coverage) <= 1.0:
            raise ValueError(f"coverage must be a faithfulness in (0, 1], got {coverage!r}")
    if "candidates" in acdc_kwargs:
        raise TypeError("hybrid chooses the candidates itself; call acdc(..., candidates=...) directly instead")
    started = time.perf_counter()
    filtered = coverage is not None or (k is not None and k < n)
    candidates = None
    prior_seconds = 0.0
    extra: dict[str, Any] = {}
    if filtered:
        if prior is None:
            prior = eap_ig_scores(problem, steps, absolute=absolute, rule=rule)
        else:
            prior = torch.as_tensor(prior, dtype=torch.float64).detach().cpu()
            if prior.shape != (n,):
                raise ValueError(f"prior has shape {tuple(prior.shape)}; the graph has {n} edges")
        if coverage is not None:
            k, reached = smallest_covering_k(problem, prior, float(coverage))
            extra = {"coverage": float(coverage), "candidate_faithfulness": reached}
        prior_seconds = time.perf_counter() - started
        candidates = Circuit.from_scores(graph, prior, top_n=int(k)).kept  # type: ignore[arg-type]
    found = acdc(problem, tau, candidates=candidates, **acdc_kwargs)
    settings = {**found.settings, "method": "hybrid", "k": n if k is None else int(k), **extra,
                "steps": steps if filtered else 0, "absolute": absolute, "rule": rule,
                "prior_seconds": prior_seconds, "acdc_seconds": found.settings["seconds"],
                "seconds": time.perf_counter() - started}
    return Circuit(graph, found.kept, found.scores, metrics=found.metrics, settings=settings)


def coverage_grid(n_edges: int, start: int = 25) -> list[int]:
    """Candidate counts tried by `coverage`: start, 2 x start, 4 x start, ... below n_edges, then n_edges."""
    sizes, k = [], start
    while k < n_edges:
        sizes.append(k)
        k *= 2
    return [*sizes, n_edges]


def smallest_covering_k(problem: Problem, scores: torch.Tensor, coverage: float) -> tuple[int, float]:
    """The smallest grid size k whose circuit of the k highest `scores` has normalised faithfulness
    >= coverage, and that faithfulness. All grid circuits are evaluated together (batched forwards)."""
    graph = problem.graph
    n = graph.n_edges
    m_full, m_empty = problem.metric_ends
    sizes = coverage_grid(n)
    masks = torch.stack([Circuit.from_scores(graph, scores, top_n=size).kept for size in sizes])
    values = evaluate_many(problem, masks).tolist()
    if m_full == m_empty:
        return n, 1.0  # the task's effect is nil: nothing to cover, keep every edge
    for size, value in zip(sizes, values):
        reached = normalized_faithfulness(value, m_full, m_empty)
        if reached >= coverage:
            return size, reached
    return n, 1.0


__all__ = ["coverage_grid", "hybrid", "smallest_covering_k"]

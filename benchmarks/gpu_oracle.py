"""The GPU run's oracle (benchmarks/gpu_run.py): the one-edge-one-forward hook oracle run on a prefix of the
reference order within a time box, and the engine's ACDC decisions compared with it on that prefix."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from gpu_results import sync

from acdc_compare.algorithms.acdc import reference_order
from acdc_compare.algorithms.problem import Problem
from acdc_compare.backends.hook_oracle import hook_patched_logits, oracle_acdc
from acdc_compare.circuit import Circuit
from acdc_compare.metrics import kl_divergence


def oracle_evaluator(model: Any, problem: Problem) -> Callable[[torch.Tensor], float]:
    """M(kept) with one full forward through the bridge's own hooks (tests' oracle, REFERENCE.md section 2)."""
    graph, task, device = problem.graph, problem.task, problem.patcher.device
    clean, corrupted = task.clean.to(device), task.corrupted.to(device)
    pos = task.positions[:, 0].to(device)
    reference = problem.clean_logits

    @torch.no_grad()
    def evaluate(kept: torch.Tensor) -> float:
        logits = hook_patched_logits(model, graph, clean, kept, corrupted=corrupted)
        logits = logits[torch.arange(len(pos), device=logits.device), pos]
        return float(kl_divergence(reference.to(logits.device), logits[None, :, None])[0])

    return evaluate


class _Stop(Exception):
    pass


def oracle_prefix(model: Any, problem: Problem, tau: float, max_edges: int, max_s: float) -> dict[str, Any]:
    """`oracle_acdc` stopped once it is about to test edge max_edges + 1 or max_s has passed. Returns the
    tested prefix's length, its decisions (mask at the stop) and metric values, and its rate."""
    evaluate = oracle_evaluator(model, problem)
    values: list[float] = []
    snapshot: list[torch.Tensor] = []
    device = problem.patcher.device
    start = [0.0]

    def counted(kept: torch.Tensor) -> float:
        if len(values) == 1:
            start[0] = time.perf_counter()  # the rate excludes the first (full-circuit) evaluation
        if len(values) > max_edges or (len(values) > 1 and time.perf_counter() - start[0] >= max_s):
            snapshot.append(kept.clone())
            raise _Stop
        values.append(evaluate(kept))
        return values[-1]

    t0 = time.perf_counter()
    try:
        kept, _ = oracle_acdc(counted, problem.graph, tau)
        snapshot.append(kept.clone())
        finished = True
    except _Stop:
        finished = False
    sync(device)
    wall = time.perf_counter() - (start[0] or t0)
    tested = len(values) - 1
    return {"kept": snapshot[-1], "values": values, "tested": tested, "finished": finished,
            "wall_s": wall, "edges_per_s": tested / wall if wall > 0 and tested else math.nan}


def compare_prefix(problem: Problem, circuit: Circuit, oracle: dict[str, Any], tau: float) -> dict[str, Any]:
    """The engine's decisions on the oracle's tested prefix (the first tested edges of the reference order).
    With random GPT-2 weights (initializer range 0.02) KL(full || empty) is ~1e-4, so tau is near the float32
    noise of the metric: `max_abs_score_difference` (engine vs oracle metric change) is that noise, and a
    mismatch on an edge whose score lies within it of tau is a float tie, not a wrong decision."""
    graph = problem.graph
    order = [e for step in reference_order(graph) for e in step.edges]
    engine_tested = [e for e in order if not math.isnan(float(circuit.scores[e]))]
    n = min(oracle["tested"], len(engine_tested))
    prefix = engine_tested[:n]
    mismatched = [graph.edge_names[e] for e in prefix if bool(circuit.kept[e]) != bool(oracle["kept"][e])]
    # the oracle's metric change per tested edge, from its values and its own decisions
    current, worst = oracle["values"][0], 0.0
    for e, value in zip(prefix, oracle["values"][1:]):
        worst = max(worst, abs((value - current) - float(circuit.scores[e])))
        if not bool(oracle["kept"][e]):
            current = value
    margins = [abs(float(circuit.scores[e]) - tau) for e in prefix]
    beyond = [graph.edge_names[e] for e in prefix if bool(circuit.kept[e]) != bool(oracle["kept"][e])
              and abs(float(circuit.scores[e]) - tau) > worst]
    return {"prefix_edges": n, "decisions_identical": not mismatched and n > 0, "mismatched_edges": mismatched[:20],
            "mismatches_beyond_score_noise": beyond[:20], "min_margin_to_threshold": min(margins, default=None),
            "kept_on_prefix": sum(bool(circuit.kept[e]) for e in prefix),
            "max_abs_score_difference": worst}

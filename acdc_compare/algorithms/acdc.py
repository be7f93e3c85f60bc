"""Greedy ACDC (Conmy et al. 2023) with the reference semantics, made fast without changing a decision.

Walking receivers from the logits back to the input, each incoming edge is removed and the metric
re-evaluated; if it rose by less than the threshold (signed, or absolute with `abs_value`) the edge stays
removed, else it is restored. A receiver whose node has no kept outgoing edge left is dead: its incoming
edges are removed untested.

Speed, with decisions identical to one-edge-one-forward evaluation:
- a candidate is evaluated by restarting the forward at its receiver's stage from cached upstream outputs;
- consecutive candidates are evaluated together in one batched forward, speculating that each is removed
  (candidate j assumes candidates before it in the batch are removed); at the first kept edge the rest of
  the batch is discarded and re-evaluated with that edge restored. The batch grows while edges are removed
  and shrinks when one is kept.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from acdc_compare.algorithms.base import AlgorithmSpec, Evaluator, check_threshold, option
from acdc_compare.circuit import Circuit, Liveness
from acdc_compare.graph import Graph
from acdc_compare.journal import Decision, JournalWriter, read_journal
from acdc_compare.progress import ProgressLike, as_progress

EdgeOrder = Literal["reference"]


@dataclass(frozen=True)
class AcdcOptions:
    """Greedy ACDC's settings; validated when made."""

    threshold: float = option(None, "ACDC's tau, absolute, in the metric's own units (KL in nats, or the "
                                    "logit difference): an edge is removed when the metric rises by less")
    order: EdgeOrder | Sequence[str] = option("reference", "'reference', or every edge name once", cli=False)
    abs_value: bool = option(False, "compare |metric change| with the threshold")
    max_batch: int | None = option(None, "speculative candidates per forward (None: 64 on a GPU, 1 on a CPU)")
    journal: str | os.PathLike | None = option(None, "decision journal; rerun with the same path to resume")
    progress: ProgressLike = option(False, "a progress bar over the candidates: True (on a terminal), False, or "
                                           "a Progress (acdc_compare.progress)", cli=False)
    max_tests: int | None = option(None, "stop after this many tested edges (a partial, resumable result)")

    def __post_init__(self) -> None:
        if self.threshold is None:
            raise ValueError("ACDC needs a threshold (tau >= 0)")
        object.__setattr__(self, "threshold", check_threshold(self.threshold))
        for name in ("max_batch", "max_tests"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


class AcdcError(RuntimeError):
    """The run cannot continue (e.g. the metric became NaN)."""


@dataclass(frozen=True)
class Step:
    """One receiver's edges, tested in this order. `direct` steps hold the receiver's direct edge."""

    receiver: int
    direct: bool
    edges: tuple[int, ...]


def reference_order(graph: Graph) -> list[Step]:
    """The reference implementation's order (REFERENCE.md section 2): logits; then per layer, last first,
    the MLP input, the direct edges (v, k, q; highest head first), the residual inputs (v, k, q; highest head
    first). Senders of one receiver: latest first, the MLP before its layer's heads, `input` last."""
    steps = [_resid_step(graph, graph.logits_receiver)]
    for layer in reversed(range(graph.n_layers)):
        if graph.config.has_mlp:
            steps.append(_resid_step(graph, graph.mlp_receiver(layer)))
        attn = _attn_receivers_reference(graph, layer)
        if graph.config.include_direct:
            steps.extend(Step(r, True, (graph.direct_edge(r),)) for r in attn)
        steps.extend(_resid_step(graph, r) for r in attn)
    return steps


def _attn_receivers_reference(graph: Graph, layer: int) -> list[int]:
    out = [graph.v_receiver(layer, h) for h in reversed(range(graph.n_kv_heads))]
    out += [graph.k_receiver(layer, h) for h in reversed(range(graph.n_kv_heads))]
    out += [graph.q_receiver(layer, h) for h in reversed(range(graph.n_heads))]
    return out


def _resid_step(graph: Graph, r: int) -> Step:
    n_up = graph.receivers[r].n_upstream
    return Step(r, False, tuple(graph.resid_index[s, r].item() for s in reversed(range(n_up))))


def order_from_edge_names(graph: Graph, names: Sequence[str]) -> list[Step]:
    """A custom order: edges in the given sequence, grouped into steps by consecutive receiver. Every edge
    of the graph must appear exactly once."""
    idx = [graph.edge_index(n) for n in names]
    if sorted(idx) != list(range(graph.n_edges)):
        raise ValueError(f"a custom order must list each of the graph's {graph.n_edges} edges exactly once")
    steps: list[Step] = []
    for e in idx:
        r, direct = graph.edge_receiver(e), graph.is_direct(e)
        if steps and steps[-1].receiver == r and steps[-1].direct == direct:
            steps[-1] = Step(r, direct, steps[-1].edges + (e,))
        else:
            steps.append(Step(r, direct, (e,)))
    return steps


def estimated_seconds(problem: Evaluator, n_tests: int) -> float:
    """Rough wall time of testing `n_tests` edges one per forward (batch 1, as on a CPU): a full forward,
    timed now, times the mean fraction of the model a test re-runs (it restarts at its receiver's stage)."""
    graph = problem.graph
    kept = torch.ones(1, graph.n_edges, dtype=torch.bool)
    started = time.perf_counter()
    problem.evaluate(kept)
    full = time.perf_counter() - started
    stage_of = torch.tensor([problem.stage(r) for r in range(graph.n_receivers)], dtype=torch.float64)
    rerun = (problem.n_stages - stage_of[graph.edge_receiver_tensor]) / problem.n_stages  # [n_edges]
    return full * float(rerun.mean()) * n_tests


def acdc(problem: Evaluator, threshold: float, *, candidates: torch.Tensor | None = None,
         **options: Any) -> Circuit:
    """Greedy ACDC at `threshold` (options: see `AcdcOptions`); `candidates` as in `run_acdc`."""
    return run_acdc(problem, AcdcOptions(threshold=threshold, **options), candidates=candidates)


def run_acdc(problem: Evaluator, options: AcdcOptions, candidates: torch.Tensor | None = None) -> Circuit:
    """Run greedy ACDC and return the circuit with each tested edge's score (its metric change).

    `candidates` (bool [n_edges], optional): only these edges are tested; every other edge is removed before
    the first test and never tested (score NaN). The greedy run then starts from that circuit, in the same
    order. None (or all True) is plain ACDC.

    `options.max_tests` stops after that many tested edges (for time-boxed runs and benchmarks): the result is
    then partial (settings["complete"] is False, untested edges stay kept); with a journal, rerunning resumes."""
    tau, order, abs_value = options.threshold, options.order, options.abs_value
    journal, max_tests = options.journal, options.max_tests
    graph = problem.graph
    steps = reference_order(graph) if order == "reference" else order_from_edge_names(graph, order)
    max_batch = options.max_batch or problem.default_batch
    started = time.perf_counter()

    kept = torch.ones(graph.n_edges, dtype=torch.bool)
    scores = torch.full((graph.n_edges,), math.nan, dtype=torch.float64)
    full_metric = float(problem.evaluate(kept[None])[0])
    current = full_metric
    identity = {**problem.fingerprint(), "threshold": tau, "abs_value": abs_value,
                "order": order if isinstance(order, str) else "custom"}
    done: set[int] = set()
    if candidates is not None:
        candidates = _check_candidates(candidates, graph)
        identity["candidates_sha256"] = hashlib.sha256(candidates.numpy().tobytes()).hexdigest()[:16]
        if not bool(candidates.all()):
            kept &= candidates
            done.update(torch.nonzero(~candidates).flatten().tolist())
            current = float(problem.evaluate(kept[None])[0])
    replayed = read_journal(journal, identity) if journal is not None else []
    for d in replayed:
        kept[d.edge], scores[d.edge], current = d.kept, d.score, d.metric
        done.add(d.edge)
    writer = JournalWriter(journal, identity, len(replayed)) if journal is not None else None

    initial = torch.ones(graph.n_edges, dtype=torch.bool) if candidates is None else candidates
    base = problem.checkpoint(initial)  # the circuit before any tested decision
    lowest_changed = min((problem.stage(graph.edge_receiver(d.edge)) for d in replayed if not d.kept),
                         default=problem.n_stages)
    live = Liveness(graph, kept)
    n_tested = sum(1 for d in replayed if not math.isnan(d.score))
    n_candidates = graph.n_edges if candidates is None else int(candidates.sum())
    decided = sum(1 for d in replayed if candidates is None or bool(candidates[d.edge]))
    bar = as_progress(options.progress)("ACDC", n_candidates, unit="edge", initial=decided)
    batch = 1

    def decide(e: int, keep: bool, score: float) -> None:
        nonlocal current
        scores[e] = score
        kept[e] = keep
        done.add(e)
        if not keep:
            live.removed(e)
        if writer is not None:
            writer.write(Decision(e, keep, score, current))
        bar.update(1)

    try:
        for step in steps:
            if max_tests is not None and n_tested >= max_tests:
                break
            todo = [e for e in step.edges if e not in done]
            if not todo:
                continue
            if live.dead(step.receiver, step.direct, kept):
                for e in todo:
                    decide(e, False, math.nan)
                continue
            stage = problem.stage(step.receiver)
            if lowest_changed < stage:  # the cached upstream outputs are stale (custom orders only)
                base = problem.checkpoint(kept)
                lowest_changed = problem.n_stages
            i = 0
            while i < len(todo) and (max_tests is None or n_tested < max_tests):
                room = batch if max_tests is None else min(batch, max_tests - n_tested)
                cand = todo[i:i + room]
                masks = kept.repeat(len(cand), 1)
                for j in range(len(cand)):
                    masks[j:, cand[j]] = False
                values = problem.evaluate_from(base, stage, masks).cpu().tolist()
                n_tested_batch = 0
                for j, e in enumerate(cand):
                    value = values[j]
                    if not math.isfinite(value):
                        raise AcdcError(f"the metric became {value} when removing edge {graph.edge_names[e]!r}; "
                                        "check the task's prompts and the model's dtype")
                    delta = value - current
                    n_tested_batch += 1
                    if (abs(delta) if abs_value else delta) < tau:
                        current = value
                        decide(e, False, delta)
                        lowest_changed = min(lowest_changed, stage)
                    else:
                        decide(e, True, delta)
                        break
                n_tested += n_tested_batch
                i += n_tested_batch
                batch = min(max_batch, batch * 2) if n_tested_batch == len(cand) else max(1, batch // 2)
                bar.set_postfix(kept=int(kept.sum()), metric=f"{current:.4g}")
        bar.set_postfix(kept=int(kept.sum()), metric=f"{current:.4g}")
    finally:
        bar.close()
        if writer is not None:
            writer.close()

    empty_metric = float(problem.evaluate(torch.zeros(1, graph.n_edges, dtype=torch.bool))[0])
    circuit_metric = float(problem.evaluate(kept[None])[0])
    return Circuit(
        graph, kept, scores,
        metrics={"full": full_metric, "circuit": circuit_metric, "empty": empty_metric, "final_greedy": current},
        settings={**identity, "method": "acdc", "seconds": time.perf_counter() - started,
                  "n_tested": n_tested, "max_batch": max_batch,
                  "n_candidates": n_candidates,
                  **problem.run_settings(),
                  "resumed_decisions": len(replayed), "complete": len(done) == graph.n_edges},
    )


def _check_candidates(candidates: torch.Tensor, graph: Graph) -> torch.Tensor:
    candidates = torch.as_tensor(candidates).detach().to("cpu")
    if candidates.dtype != torch.bool or candidates.shape != (graph.n_edges,):
        raise ValueError(f"candidates must be a bool tensor of shape ({graph.n_edges},), got "
                         f"{candidates.dtype} {tuple(candidates.shape)}")
    return candidates


SPEC = AlgorithmSpec("acdc", AcdcOptions, lambda problem, options: run_acdc(problem, options),
                     "exact greedy ACDC over every edge (reference order and rule)")

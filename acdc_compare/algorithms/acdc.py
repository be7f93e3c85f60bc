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
from acdc_compare.progress import Bar, ProgressLike, as_progress
from acdc_compare.types import ScoreKind

EdgeOrder = Literal["reference"]


@dataclass(frozen=True)
class AcdcOptions:
    """Greedy ACDC's settings; validated when made."""

    threshold: float = option(None, "ACDC's tau, absolute, in the metric's own units (KL in nats, or the "
                                    "logit difference): an edge is removed when the metric rises by less "
                                    "(--threshold-scale relative: a fraction of the task's gap instead)")
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
    first). Senders of one receiver: latest first, the MLP before its layer's heads, `input` last. On a span
    graph each base edge's span edges follow each other, in the graph's span order."""
    steps = [_resid_step(graph, graph.logits_receiver)]
    for layer in reversed(range(graph.n_layers)):
        if graph.config.has_mlp:
            steps.append(_resid_step(graph, graph.mlp_receiver(layer)))
        attn = _attn_receivers_reference(graph, layer)
        if graph.config.include_direct:
            steps.extend(Step(r, True, tuple(graph.direct_edges(r))) for r in attn)
        steps.extend(_resid_step(graph, r) for r in attn)
    return steps


def _attn_receivers_reference(graph: Graph, layer: int) -> list[int]:
    out = [graph.v_receiver(layer, h) for h in reversed(range(graph.n_kv_heads))]
    out += [graph.k_receiver(layer, h) for h in reversed(range(graph.n_kv_heads))]
    out += [graph.q_receiver(layer, h) for h in reversed(range(graph.n_heads))]
    return out


def _resid_step(graph: Graph, r: int) -> Step:
    n_up = graph.receivers[r].n_upstream
    return Step(r, False, tuple(e for s in reversed(range(n_up)) for e in graph.resid_edges(s, r)))


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
         fixed: torch.Tensor | None = None, **options: Any) -> Circuit:
    """Greedy ACDC at `threshold` (options: see `AcdcOptions`); `candidates` and `fixed` as in `run_acdc`."""
    return run_acdc(problem, AcdcOptions(threshold=threshold, **options), candidates=candidates, fixed=fixed)


def run_acdc(problem: Evaluator, options: AcdcOptions, candidates: torch.Tensor | None = None,
             fixed: torch.Tensor | None = None) -> Circuit:
    """Run greedy ACDC and return the circuit with each tested edge's score (its metric change).

    `candidates` (bool [n_edges], optional): only these edges are tested; every other edge is removed before
    the first test and never tested (score NaN). The greedy run then starts from that circuit, in the same
    order. None (or all True) is plain ACDC.

    `fixed` (bool [n_edges], optional, disjoint from `candidates`): edges kept without a test (score NaN),
    e.g. the highest-ranked edges of an attribution; the dead-receiver rule still removes one whose receiver
    dies, since it could change nothing.

    `options.max_tests` stops after that many tested edges (for time-boxed runs and benchmarks): the result is
    then partial (settings["complete"] is False, untested edges stay kept); with a journal, rerunning resumes."""
    graph = problem.graph
    order = options.order
    steps = reference_order(graph) if order == "reference" else order_from_edge_names(graph, order)
    started = time.perf_counter()
    run = _start(problem, options, candidates, fixed)
    try:
        for step in steps:
            if run.tests_left() == 0:
                break
            _test_step(problem, run, step)
        run.show_state()
    finally:
        run.close()
    return _result(problem, run, started)


@dataclass
class _Run:
    """A greedy run in progress: the circuit so far with its scores and metric, the cached upstream outputs
    tests restart from, and what records each decision (the journal and the progress bar)."""

    options: AcdcOptions
    max_batch: int
    identity: dict[str, Any]
    kept: torch.Tensor
    scores: torch.Tensor
    full_metric: float
    current: float
    done: set[int]
    replayed: list[Decision]
    writer: JournalWriter | None
    base: Any
    lowest_changed: int
    live: Liveness
    n_tested: int
    n_candidates: int
    bar: Bar
    fixed: frozenset[int] = frozenset()
    batch: int = 1

    def tests_left(self) -> int | None:
        """How many more edges may be tested (None: no limit)."""
        max_tests = self.options.max_tests
        return None if max_tests is None else max(0, max_tests - self.n_tested)

    def decide(self, e: int, keep: bool, score: float) -> None:
        """Record edge `e`'s decision in the circuit, the journal and the bar."""
        self.scores[e] = score
        self.kept[e] = keep
        self.done.add(e)
        if not keep:
            self.live.removed(e)
        if self.writer is not None:
            self.writer.write(Decision(e, keep, score, self.current))
        self.bar.update(1)

    def show_state(self) -> None:
        """Show the kept count and the metric on the bar."""
        self.bar.set_postfix(kept=int(self.kept.sum()), metric=f"{self.current:.4g}")

    def close(self) -> None:
        """End the bar and the journal (also on error)."""
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _start(problem: Evaluator, options: AcdcOptions, candidates: torch.Tensor | None,
           fixed: torch.Tensor | None = None) -> _Run:
    """The run before its first test: every edge kept, less the non-candidates (the fixed ones stay), then the
    journal's decisions replayed; the journal reopened for appending and the bar started at the replayed
    count."""
    if options.max_batch is not None and hasattr(problem, "check_batch"):
        problem.check_batch(options.max_batch, grad=False)  # a refusal naming the batch that fits, before any test
    graph = problem.graph
    kept = torch.ones(graph.n_edges, dtype=torch.bool)
    scores = torch.full((graph.n_edges,), math.nan, dtype=torch.float64)
    full_metric = problem.metric_ends[0]
    identity = {**problem.fingerprint(), "threshold": options.threshold, "abs_value": options.abs_value,
                "order": options.order if isinstance(options.order, str) else "custom"}
    done: set[int] = set()
    fixed_set: frozenset[int] = frozenset()
    if fixed is not None and candidates is None:
        raise ValueError("fixed edges need candidates: the edges ACDC tests, disjoint from the fixed ones")
    initial = kept.clone()  # the circuit before any tested decision
    if candidates is not None:
        candidates = _check_candidates(candidates, graph)
        identity["candidates_sha256"] = hashlib.sha256(candidates.numpy().tobytes()).hexdigest()[:16]
        initial = candidates.clone()
    if fixed is not None:
        fixed = _check_candidates(fixed, graph, "fixed")
        if bool((fixed & initial).any()):
            raise ValueError("an edge cannot be both fixed (kept untested) and a candidate (tested)")
        identity["fixed_sha256"] = hashlib.sha256(fixed.numpy().tobytes()).hexdigest()[:16]
        fixed_set = frozenset(torch.nonzero(fixed).flatten().tolist())
        initial |= fixed
    if candidates is not None and not bool(candidates.all()):
        kept &= initial
        done.update(torch.nonzero(~candidates).flatten().tolist())
    current, base = problem.evaluate_and_checkpoint(initial)
    journal = options.journal
    replayed = read_journal(journal, identity) if journal is not None else []
    for d in replayed:
        kept[d.edge], scores[d.edge], current = d.kept, d.score, d.metric
        done.add(d.edge)
    writer = JournalWriter(journal, identity, len(replayed)) if journal is not None else None
    n_candidates = graph.n_edges if candidates is None else int(candidates.sum())
    decided = sum(1 for d in replayed if candidates is None or bool(candidates[d.edge]))
    return _Run(
        options=options, max_batch=options.max_batch or problem.default_batch, identity=identity,
        kept=kept, scores=scores, full_metric=full_metric, current=current, done=done, replayed=replayed,
        writer=writer, base=base,
        lowest_changed=min((problem.stage(graph.edge_receiver(d.edge)) for d in replayed if not d.kept),
                           default=problem.n_stages),
        live=Liveness(graph, kept), n_tested=sum(1 for d in replayed if not math.isnan(d.score)),
        n_candidates=n_candidates,
        bar=as_progress(options.progress)("ACDC", n_candidates, unit="edge", initial=decided), fixed=fixed_set,
    )


def _test_step(problem: Evaluator, run: _Run, step: Step) -> None:
    """Decide one step's undecided edges: all removed untested if the receiver is dead, else tested in
    speculative batches that double while edges are removed and halve when one is kept."""
    todo = [e for e in step.edges if e not in run.done]
    if not todo and not run.fixed:
        return
    if run.live.dead(step.receiver, step.direct, run.kept):
        for e in todo:
            run.decide(e, False, math.nan)
        for e in step.edges:
            if e in run.fixed and bool(run.kept[e]):
                run.kept[e] = False
                run.live.removed(e)
        return
    if not todo:
        return
    stage = problem.stage(step.receiver)
    if run.lowest_changed < stage:  # the cached upstream outputs are stale (custom orders only)
        run.base = problem.checkpoint(run.kept)
        run.lowest_changed = problem.n_stages
    i = 0
    while i < len(todo) and run.tests_left() != 0:
        left = run.tests_left()
        cand = todo[i:i + (run.batch if left is None else min(run.batch, left))]
        n_tested_batch = _test_batch(problem, run, stage, cand)
        run.n_tested += n_tested_batch
        i += n_tested_batch
        full = n_tested_batch == len(cand)
        run.batch = min(run.max_batch, run.batch * 2) if full else max(1, run.batch // 2)
        run.show_state()


def _test_batch(problem: Evaluator, run: _Run, stage: int, cand: list[int]) -> int:
    """Evaluate `cand` in one forward, candidate j assuming those before it removed, and decide them in
    order up to and including the first kept one; returns how many were decided."""
    masks = run.kept.repeat(len(cand), 1)
    for j in range(len(cand)):
        masks[j:, cand[j]] = False
    values = problem.evaluate_from(run.base, stage, masks).cpu().tolist()
    tau, abs_value = run.options.threshold, run.options.abs_value
    for j, e in enumerate(cand):
        value = values[j]
        if not math.isfinite(value):
            raise AcdcError(f"the metric became {value} when removing edge {problem.graph.edge_names[e]!r}; "
                            "check the task's prompts and the model's dtype")
        delta = value - run.current
        if (abs(delta) if abs_value else delta) < tau:
            run.current = value
            run.decide(e, False, delta)
            run.lowest_changed = min(run.lowest_changed, stage)
        else:
            run.decide(e, True, delta)
            return j + 1
    return len(cand)


def _result(problem: Evaluator, run: _Run, started: float) -> Circuit:
    """The circuit the run reached, with its metrics and the settings that identify and describe the run."""
    graph = problem.graph
    empty_metric = problem.metric_ends[1]
    circuit_metric = float(problem.evaluate(run.kept[None])[0])
    return Circuit(
        graph, run.kept, run.scores, score_kinds=ScoreKind.ACDC,
        metrics={"full": run.full_metric, "circuit": circuit_metric, "empty": empty_metric,
                 "final_greedy": run.current},
        settings={**run.identity, "method": "acdc", "seconds": time.perf_counter() - started,
                  "n_tested": run.n_tested, "max_batch": run.max_batch,
                  "n_candidates": run.n_candidates,
                  **problem.run_settings(),
                  "resumed_decisions": len(run.replayed), "complete": len(run.done) == graph.n_edges},
    )


def _check_candidates(candidates: torch.Tensor, graph: Graph, what: str = "candidates") -> torch.Tensor:
    candidates = torch.as_tensor(candidates).detach().to("cpu")
    if candidates.dtype != torch.bool or candidates.shape != (graph.n_edges,):
        raise ValueError(f"{what} must be a bool tensor of shape ({graph.n_edges},), got "
                         f"{candidates.dtype} {tuple(candidates.shape)}")
    return candidates


SPEC = AlgorithmSpec("acdc", AcdcOptions, lambda problem, options: run_acdc(problem, options),
                     "exact greedy ACDC over every edge (reference order and rule)")

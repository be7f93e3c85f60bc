"""Edge attribution patching: EAP (Syed et al. 2023) and EAP-IG (Hanna et al. 2024) on the patching engine.

Score convention (shared with ACDC and `Circuit.from_scores`): higher = more important. ACDC scores an edge
by its effect metric(circuit without e) - metric(circuit), the metric being minimised, so a large positive
change means the edge matters. Attribution estimates that effect at the full circuit without testing edges
one by one:

- EAP: the first-order estimate of the change when the edge's mask goes from 1 to 0,
  score_e = -dM/dmask_e at mask = 1, which equals (ablated - clean sender output) . dM/d(receiver input).
  One differentiable forward + one backward gives every edge's score; with the ablated run cached in the
  problem's context that is EAP's "two forwards and one backward".
- EAP-IG (the default path, "input"): as Hanna et al., the gradients are averaged over `steps` runs whose
  input embeddings move from the ablated towards the clean ones (alpha = k / steps, k = 0..steps-1, their
  left Riemann sum; `rule="midpoint"` uses (k + 1/2) / steps), and multiplied by the clean-minus-ablated
  activation differences: score_e = -(clean - ablated)_e . mean_k dM/d(receiver input)(alpha_k). The
  engine keeps those differences fixed while running the interpolated inputs (`GradReference`).
- EAP-IG along the mask ("mask" path): the gradient dM/dmask_e averaged over the circuits alpha * (all
  edges), alpha from 0 (everything ablated) to 1 (full). Integrated gradients on this straight path are
  complete: the scores sum to M(empty) - M(full) (up to the Riemann-sum error).

Cost: EAP is one differentiable forward + backward; EAP-IG one forward for the clean differences plus
`steps` forwards + backwards (batched `batch` per pass). With every mask equal (all 1, or all alpha) each
layer's receivers read the same input, which the engine gathers and normalises once.

KL and plain EAP: KL(full || circuit) is minimal (zero) at the full circuit, so its gradient there is zero and
EAP scores every edge ~0 under the KL metric: use the logit difference with EAP, or EAP-IG, whose gradients
are taken away from the clean point.

Ranking uses |score| by default (`absolute=True`), as EAP, EAP-IG and MIB do: an edge whose removal helps
the metric a lot is also part of the mechanism. `absolute=False` keeps the signed estimate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from acdc_compare.algorithms.base import AlgorithmSpec, option
from acdc_compare.algorithms.problem import Problem, memory_model
from acdc_compare.circuit import Circuit, check_selection
from acdc_compare.faithfulness import DEFAULT_FRACTIONS, FaithfulnessCurve, faithfulness_curve
from acdc_compare.metrics import parse_metric
from acdc_compare.progress import Bar, ProgressLike, as_progress
from acdc_compare.types import Metric, ScoreKind

IGPath = Literal["input", "mask"]
IGRule = Literal["left", "midpoint"]


@dataclass(frozen=True)
class EapOptions:
    """EAP's settings: which edges to keep by score (exactly one of `top_n` or `threshold`)."""

    threshold: float | None = option(None, "eap/eap-ig: keep the edges scoring at least this (a score; "
                                            "--threshold-scale relative: a fraction of the task's gap)")
    top_n: int | None = option(None, "eap/eap-ig: keep the top-n edges by score")
    absolute: bool = option(True, "rank edges by |score| (MIB's convention)")

    def __post_init__(self) -> None:
        check_selection(self.top_n, self.threshold)
        if self.absolute and self.threshold is not None and float(self.threshold) < 0:
            raise ValueError(f"threshold {self.threshold!r} is negative: edges are ranked by |score| >= 0 "
                             "(absolute=True, the default), so it would keep every edge. Give a threshold >= 0, "
                             "or top_n (--top-n), or absolute=False (--no-absolute) to select by signed score")


@dataclass(frozen=True)
class EapIgOptions(EapOptions):
    """EAP-IG's settings: EAP's selection plus the integration (see the module docstring)."""

    steps: int = option(5, "EAP-IG integration steps")
    path: IGPath = option("input", "integrate over the input embeddings or along the edge masks",
                          flag="--ig-path")
    rule: IGRule = option("left", "Riemann rule of the integration", flag="--ig-rule")
    batch: int | None = option(None, "interpolation steps per forward (default: as many as fit)", cli=False)
    progress: ProgressLike = option(False, "a progress bar over the integration steps: True (on a terminal), "
                                           "False, or a Progress (acdc_compare.progress)", cli=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_steps(self.steps)
        if self.path not in ("input", "mask"):
            raise ValueError(f"path must be 'input' or 'mask', got {self.path!r}")
        ig_alphas(1, self.rule)


def check_steps(steps: Any) -> int:
    """Integration steps: a whole number >= 1."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return steps


# ----- scores ----------------------------------------------------------------------------------------------

def eap_scores(problem: Problem, *, absolute: bool = True) -> torch.Tensor:
    """EAP: -dM/dmask_e at the full circuit, per edge (float64 [n_edges], on the CPU). ~0 under KL."""
    patcher = problem.patcher
    leaf = torch.ones(1, problem.graph.n_edges, dtype=patcher.dtype, device=patcher.device, requires_grad=True)
    problem.metric(patcher.run_grad(problem.ctx, leaf)).sum().backward()
    return _finish(-leaf.grad[0], absolute)


def eap_ig_scores(problem: Problem, steps: int = 5, *, absolute: bool = True, path: IGPath = "input",
                  rule: IGRule = "left", batch: int | None = None, progress: ProgressLike = None) -> torch.Tensor:
    """EAP-IG scores (float64 [n_edges], on the CPU): see the module docstring for `path` and `rule`.

    `batch` is how many interpolation steps share one forward (default: as many as fit in memory);
    `progress` gets one bar of `steps` units, advanced after each forward + backward."""
    check_steps(steps)
    if path not in ("input", "mask"):
        raise ValueError(f"path must be 'input' or 'mask', got {path!r}")
    alphas = ig_alphas(steps, rule)
    if batch is not None:
        problem.check_batch(min(batch, steps), grad=True)
    batch = batch or circuits_per_pass(problem, grad=True)
    bar = as_progress(progress)("EAP-IG", steps, unit="step")
    try:
        grad = (_input_path_grad if path == "input" else _mask_path_grad)(problem, alphas.split(batch), steps, bar)
    finally:
        bar.close()
    return _finish(-grad, absolute)


def _input_path_grad(problem: Problem, chunks: Sequence[torch.Tensor], steps: int, bar: Bar) -> torch.Tensor:
    """mean_k dM/dmask at the full circuit with the inputs interpolated by alpha_k: [n_edges]."""
    patcher, ctx = problem.patcher, problem.ctx
    reference = patcher.grad_reference(ctx)
    leaf = torch.ones(1, problem.graph.n_edges, dtype=patcher.dtype, device=patcher.device, requires_grad=True)
    for chunk in chunks:
        logits = patcher.run_grad(ctx, leaf.expand(len(chunk), -1), reference=reference,
                                  input_scale=chunk.to(patcher.device))
        (problem.metric(logits).sum() / steps).backward()
        del logits  # frees this pass's graph (and its delta buffers) before the next one
        bar.update(len(chunk))
    return leaf.grad[0]


def _mask_path_grad(problem: Problem, chunks: Sequence[torch.Tensor], steps: int, bar: Bar) -> torch.Tensor:
    """mean_k dM/dmask at the circuits alpha_k * (all edges): [n_edges]."""
    patcher, ctx = problem.patcher, problem.ctx
    n_edges = problem.graph.n_edges
    grad = torch.zeros(n_edges, dtype=torch.float64, device=patcher.device)
    for chunk in chunks:
        kept = chunk.to(patcher.device)[:, None] * torch.ones(n_edges, dtype=torch.float64, device=patcher.device)
        kept = kept.to(patcher.dtype).requires_grad_(True)
        (problem.metric(patcher.run_grad(ctx, kept)).sum() / steps).backward()
        grad += kept.grad.sum(0).double()
        del kept
        bar.update(len(chunk))
    return grad


def ig_alphas(steps: int, rule: IGRule = "left") -> torch.Tensor:
    """Interpolation points (float64 [steps]): k/steps (left, Hanna et al.) or (k + 1/2)/steps (midpoint)."""
    k = torch.arange(steps, dtype=torch.float64)
    if rule == "left":
        return k / steps
    if rule == "midpoint":
        return (k + 0.5) / steps
    raise ValueError(f"rule must be 'left' or 'midpoint', got {rule!r}")


def _finish(scores: torch.Tensor, absolute: bool) -> torch.Tensor:
    scores = scores.detach().to("cpu", torch.float64)
    return scores.abs() if absolute else scores


# ----- circuits --------------------------------------------------------------------------------------------

def eap(problem: Problem, **options: Any) -> Circuit:
    """The circuit of the edges with the highest EAP scores (options: `EapOptions`)."""
    return run_eap(problem, EapOptions(**options))


def run_eap(problem: Problem, options: EapOptions) -> Circuit:
    """EAP's circuit; refuses the KL metric, under which every EAP score is ~0 (see the module docstring)."""
    check_selection(options.top_n, options.threshold, problem.graph.n_edges)
    check_eap_metric(problem)
    started = time.perf_counter()
    scores = eap_scores(problem, absolute=options.absolute)
    return _circuit(problem, scores, options, started, {"method": "eap", "absolute": options.absolute})


def eap_ig(problem: Problem, **options: Any) -> Circuit:
    """The circuit of the edges with the highest EAP-IG scores (options: `EapIgOptions`)."""
    return run_eap_ig(problem, EapIgOptions(**options))


def run_eap_ig(problem: Problem, options: EapIgOptions) -> Circuit:
    check_selection(options.top_n, options.threshold, problem.graph.n_edges)
    started = time.perf_counter()
    scores = eap_ig_scores(problem, options.steps, absolute=options.absolute, path=options.path,
                           rule=options.rule, batch=options.batch, progress=options.progress)
    return _circuit(problem, scores, options, started,
                    {"method": "eap-ig", "steps": options.steps, "path": options.path, "rule": options.rule,
                     "absolute": options.absolute})


def check_eap_metric(metric: Problem | Metric | str) -> None:
    """EAP under KL ranks edges by rounding noise: fail with what to use instead. `metric`: a prepared
    problem, or the metric's name (so the mistake is refused before any model loads)."""
    kind = metric.metric_kind if isinstance(metric, Problem) else parse_metric(metric)
    if kind is Metric.KL:
        raise ValueError("EAP cannot rank edges under the KL metric: KL(full || circuit) has zero gradient at "
                         "the full circuit, so every EAP score is ~0. Use metric='logit_diff' with EAP, or "
                         "EAP-IG (method 'eap-ig'), which works with KL.")


def _circuit(problem: Problem, scores: torch.Tensor, options: EapOptions, started: float,
             settings: dict[str, Any]) -> Circuit:
    seconds = time.perf_counter() - started
    selected = Circuit.from_scores(problem.graph, scores, top_n=options.top_n, threshold=options.threshold)
    full, empty = problem.metric_ends
    circuit = float(problem.evaluate(selected)[0])
    return Circuit(problem.graph, selected.kept, scores, score_kinds=ScoreKind(settings["method"]),
                   metrics={"full": full, "circuit": circuit, "empty": empty},
                   settings={**problem.fingerprint(), **settings, "top_n": options.top_n,
                             "threshold": options.threshold, "seconds": seconds, **problem.run_settings()})


# ----- evaluating many circuits, faithfulness --------------------------------------------------------------

def evaluate_many(problem: Problem, kept: torch.Tensor, batch: int | None = None, *,
                  progress: ProgressLike = None, desc: str = "circuits") -> torch.Tensor:
    """Metric of each circuit in `kept` [B, n_edges] (bool or float), `batch` circuits per forward:
    float64 [B] on the CPU. `progress` gets one bar of B units named `desc`."""
    if batch is not None:
        problem.check_batch(min(batch, max(1, int(kept.shape[0]))), grad=False)
    batch = batch or circuits_per_pass(problem, grad=False)
    bar = as_progress(progress)(desc, int(kept.shape[0]), unit="circuit")
    out = []
    try:
        for part in kept.split(batch):
            out.append(problem.metric(problem.patcher.logits(problem.ctx, part)).detach().to("cpu", torch.float64))
            bar.update(int(part.shape[0]))
    finally:
        bar.close()
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def faithfulness_of_scores(problem: Problem, scores: torch.Tensor,
                           fractions: Sequence[float] = DEFAULT_FRACTIONS, *, log_x: bool = False,
                           batch: int | None = None, progress: ProgressLike = None) -> FaithfulnessCurve:
    """MIB-style faithfulness curve (CPR, CMD) of the top-by-score circuits for any scoring (higher = more
    important; NaN last): `compare.faithfulness_curve` with the circuits evaluated `batch` per forward
    (`progress`: one bar over them)."""
    graph = problem.graph
    n = graph.n_edges
    m_full, m_empty = problem.metric_ends
    cache = {Circuit.full(graph).kept.numpy().tobytes(): m_full,
             Circuit.empty(graph).kept.numpy().tobytes(): m_empty}
    sizes = sorted({min(n, math.ceil(float(f) * n - 1e-9)) for f in fractions if 0 < float(f) <= 1})
    masks = [m for m in (Circuit.from_scores(graph, scores, top_n=k).kept for k in sizes)
             if m.numpy().tobytes() not in cache]
    if masks:
        values = evaluate_many(problem, torch.stack(masks), batch, progress=progress, desc="curve")
        cache.update(zip((m.numpy().tobytes() for m in masks), values.tolist()))

    def evaluate(circuit: Circuit) -> float:
        key = circuit.kept.numpy().tobytes()
        if key not in cache:  # a size the curve chose differently: evaluate it on its own
            cache[key] = float(problem.evaluate(circuit)[0])
        return cache[key]

    return faithfulness_curve(scores, graph, evaluate, fractions, m_full=m_full, m_empty=m_empty, log_x=log_x)


def circuits_per_pass(problem: Problem, *, grad: bool, budget_bytes: float | None = None) -> int:
    """How many circuits one (differentiable) patched forward takes: the largest batch whose peak the memory
    model (`acdc_compare.memory`) fits in `budget_bytes` (default: the problem's budget, `max_memory` or what
    the device has free), at least 1."""
    if budget_bytes is None:
        return max(1, problem.batch_that_fits(grad=grad))
    return max(1, memory_model(problem.patcher).largest_batch(problem.workload, budget_bytes, grad=grad))


EAP_SPEC = AlgorithmSpec("eap", EapOptions, run_eap, "edge attribution patching: one forward + backward "
                         "(needs metric logit_diff)")
EAP_IG_SPEC = AlgorithmSpec("eap-ig", EapIgOptions, run_eap_ig, "EAP with integrated gradients over the input "
                            "embeddings")

__all__ = ["EAP_IG_SPEC", "EAP_SPEC", "EapIgOptions", "EapOptions", "check_eap_metric", "circuits_per_pass", "eap",
           "eap_ig", "eap_ig_scores", "eap_scores", "evaluate_many", "faithfulness_of_scores", "ig_alphas",
           "run_eap", "run_eap_ig"]

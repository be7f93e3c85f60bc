"""What every discovery algorithm works on: a model's patcher, one task's prompts and a metric.

`Problem` is also the evaluator greedy ACDC talks to (`algorithms.base.Evaluator`): it checkpoints a
circuit's run and evaluates candidate circuits from a receiver's stage on, hiding the patching engine."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, get_args

import torch

from acdc_compare.allocator import allocator_tuned
from acdc_compare.circuit import Circuit
from acdc_compare.graph import Graph
from acdc_compare.memory import (MAX_BATCH, MemoryBudgetError, MemoryModel, Workload, available_memory,
                                 size_text)
from acdc_compare.metrics import MetricFn, kl_divergence, parse_metric
from acdc_compare.patching import PatchContext, Patcher, RunState, parse_ablation
from acdc_compare.tasks.base import Task
from acdc_compare.types import Ablation, Metric, Positions


@dataclass(frozen=True)
class Problem:
    """A model + task + metric + ablation, prepared once and shared by the algorithms.

    `metric` maps patched logits [K, N, Q, V] to [K] values that ACDC minimises.
    """

    patcher: Patcher
    ctx: PatchContext
    task: Task
    metric_kind: Metric
    ablation: Ablation
    metric: MetricFn
    clean_logits: torch.Tensor  # [N, Q, V], all edges kept
    model_name: str
    max_memory: int | None = None  # bytes a run may hold beyond the weights (None: what the device has free)
    reference: torch.Tensor | None = None  # mean ablation's reference prompts [M, P] (None: the clean ones)

    @property
    def graph(self) -> Graph:
        return self.patcher.graph

    def evaluate(self, circuits: Circuit | list[Circuit] | torch.Tensor) -> torch.Tensor:
        """Metric value of each circuit: [K] (float64)."""
        return self.metric(self.patcher.logits(self.ctx, circuits))

    @cached_property
    def metric_ends(self) -> tuple[float, float]:
        """(M(full circuit), M(empty circuit)): the ends that normalised faithfulness and relative thresholds
        are measured between, computed once per problem. M(full) is the metric of `clean_logits`, which are
        the full circuit's logits; M(empty) that of the ablated run's logits (`Patcher.ablated_logits`, where
        the patcher offers them): no forward instead of two."""
        ablated = getattr(self.patcher, "ablated_logits", None)
        if ablated is not None:
            empty = self.metric(ablated(self.ctx))
        else:
            empty = self.evaluate(torch.zeros(1, self.graph.n_edges, dtype=torch.bool))
        return float(self.metric(self.clean_logits[None])[0]), float(empty[0])

    def relative_threshold(self, fraction: float) -> float:
        """A threshold in the metric's units: `fraction` x (M(empty) - M(full)). Tasks differ widely in how
        much their corruption moves the output, so one absolute tau keeps everything of one task and nothing
        of another; a fraction of each task's own gap makes them comparable."""
        full, empty = self.metric_ends
        return max(empty - full, 0.0) * fraction

    def batches(self, size: int) -> list["Problem"]:
        """The prompts in consecutive minibatches of `size` (the last one may be smaller), each a problem on
        the same patcher, metric and ablation; a mean ablation keeps this problem's reference, so every
        minibatch patches in the same means."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"minibatch size must be a whole number >= 1, got {size!r}")
        n = self.task.n_prompts
        return [self.select(range(lo, min(lo + size, n))) for lo in range(0, n, size)]

    def select(self, indices: Sequence[int]) -> "Problem":
        """The prompts at `indices` as a problem on the same patcher, metric and ablation (a mean ablation
        keeps this problem's reference)."""
        reference = self.task.clean if self.reference is None else self.reference
        return make_problem(self.patcher, self.task.select(indices), metric=self.metric_kind, ablation=self.ablation,
                            model_name=self.model_name, max_memory=self.max_memory,
                            reference=reference if self.ablation is Ablation.MEAN else None)

    # ----- the evaluator seam (greedy ACDC) -----------------------------------------------------------
    @property
    def n_stages(self) -> int:
        return self.patcher.n_stages

    def stage(self, receiver: int) -> int:
        return self.patcher.receiver_stage(receiver)

    def checkpoint(self, kept: torch.Tensor) -> RunState:
        """The run of one circuit `kept` [n_edges], for `evaluate_from`."""
        return self.evaluate_and_checkpoint(kept)[1]

    def evaluate_and_checkpoint(self, kept: torch.Tensor) -> tuple[float, RunState]:
        """The metric of one circuit `kept` [n_edges] and its run for `evaluate_from`, from one forward (the
        same value as `evaluate`: the stages a run keeping its state computes, and one keeping none skips,
        are read by no receiver)."""
        logits, state = self.patcher.run(self.ctx, kept[None], keep_state=True)
        return float(self.metric(logits)[0]), state  # type: ignore[return-value]

    def evaluate_from(self, checkpoint: RunState, stage: int, kept: torch.Tensor) -> torch.Tensor:
        """Metric [K] of circuits `kept` [K, n_edges] that agree with the checkpoint's circuit on every
        receiver before `stage`: only the stages from there on are run."""
        logits, _ = self.patcher.run(self.ctx, kept, start_stage=stage, base=checkpoint)
        return self.metric(logits)

    @property
    def default_batch(self) -> int:
        """Speculative candidates per forward: 64 on a GPU, where a batch of K costs little more than one, as
        far as the memory budget allows; 1 on a CPU, where it costs K times one (measured: 8 circuits 8.5x one
        on SmolLM2), so speculation only wastes work there."""
        return max(1, self.batch_that_fits(grad=False, limit=64 if self.patcher.device.type == "cuda" else 1))

    # ----- memory -------------------------------------------------------------------------------------
    @property
    def workload(self) -> Workload:
        return Workload(self.ctx.n_prompts, self.ctx.seq_len, int(self.ctx.positions.shape[1]))

    def memory_budget(self) -> float:
        """Bytes a run on this problem may hold at its peak, the prepared context included: `max_memory`, or
        what the device has free now plus what the context already holds; half the free memory on a CPU whose
        allocator keeps what it frees (`acdc_compare.allocator`: its resident size measured up to twice the
        live peak), so batches chosen there leave room."""
        if self.max_memory is not None:
            return float(self.max_memory)
        free = available_memory(self.patcher.device)
        if self.patcher.device.type == "cpu" and allocator_tuned():
            free //= 2
        return free + memory_model(self.patcher).context_bytes(self.workload)

    def check_batch(self, batch: int, *, grad: bool) -> None:
        """Refuse `batch` circuits per (differentiable) forward when the memory model says they cannot fit the
        budget, naming the largest batch that does."""
        fits = self.batch_that_fits(grad=grad, limit=batch)
        if fits < batch:
            raise MemoryBudgetError(
                f"{batch} circuits per forward need more than the {size_text(self.memory_budget())} budget on "
                f"{self.patcher.device} ({self.task.n_prompts} prompts of {self.ctx.seq_len} tokens): use at "
                f"most {max(fits, 1)} per forward" + ("" if fits else ", or fewer prompts"))

    def batch_that_fits(self, *, grad: bool, limit: int = MAX_BATCH) -> int:
        """The most circuits per (differentiable) forward the memory model fits in the budget (0: none)."""
        return memory_model(self.patcher).largest_batch(self.workload, self.memory_budget(), grad=grad,
                                                        limit=limit)

    def run_settings(self) -> dict[str, Any]:
        """What a result records about where it ran."""
        return {"n_prompts": self.task.n_prompts, "device": str(self.patcher.device),
                "dtype": str(self.patcher.dtype).replace("torch.", "")}

    def fingerprint(self) -> dict[str, Any]:
        """Identity of the run's inputs, for journals and saved results."""
        digest = hashlib.sha256()
        spans = (self.task.span_schema().index,) if self.graph.has_spans else ()
        for t in (self.task.clean, self.task.corrupted, self.task.positions, self.task.correct, self.task.wrong,
                  *spans):
            digest.update(t.cpu().numpy().tobytes())
        return {
            "model": self.model_name,
            "graph": self.graph.config.key,
            "task": self.task.name,
            "corruption": None if self.task.corruption is None else self.task.corruption.value,
            "task_sha256": digest.hexdigest()[:16],
            "metric": self.metric_kind.value,
            "ablation": self.ablation.value,
            "weights_sha256": self.patcher.weights_sha256,
            "dtype": str(self.patcher.dtype).replace("torch.", ""),
        }


def make_metric(metric: Metric | str, task: Task, clean_logits: torch.Tensor) -> MetricFn:
    """The function ACDC minimises: KL(full model || circuit), or the negated task score."""
    metric = parse_metric(metric)
    if metric is Metric.KL:
        return lambda logits: kl_divergence(clean_logits, logits)
    task.score(clean_logits[None])  # fails early when the task has no wrong answers
    return lambda logits: -task.score(logits)


def span_patcher(patcher: Patcher, task: Task, positions: Positions = "spans") -> Patcher:
    """The patcher for `positions`: itself for "all", else on its graph split by the task's spans
    (`Task.span_schema`: the task's named spans, or end-aligned positions)."""
    if positions not in get_args(Positions):
        raise ValueError(f"positions must be one of {list(get_args(Positions))}, got {positions!r}")
    if positions == "all":
        return patcher.with_graph(patcher.graph.base)
    return patcher.with_graph(patcher.graph.base.with_spans(task.span_schema().names))


def make_problem(patcher: Patcher, task: Task, *, metric: Metric | str = Metric.KL,
                 ablation: Ablation | str = Ablation.CORRUPTED, model_name: str | None = None,
                 reference: torch.Tensor | None = None, grad: bool = False,
                 max_memory: int | None = None) -> Problem:
    """Prepare the ablated run and the full model's logits for a task (validates the inputs first, the
    memory they need included: `grad` for a run of EAP / EAP-IG, within `max_memory` bytes, default what
    the device has free)."""
    metric_kind, ablation_kind = parse_metric(metric), parse_ablation(ablation)
    task.check_vocab(patcher.vocab_size)
    check_fits(patcher, task.n_prompts, task.clean.shape[1], task.positions.shape[1], grad=grad,
               max_memory=max_memory)
    spans = task.span_schema() if patcher.graph.has_spans else None
    ctx = patcher.prepare(task.clean, ablation_kind, corrupted=task.corrupted, positions=task.positions,
                          reference=reference, spans=spans)
    clean_logits = patcher.logits(ctx, Circuit.full(patcher.graph))[0]
    return Problem(patcher=patcher, ctx=ctx, task=task, metric_kind=metric_kind, ablation=ablation_kind,
                   metric=make_metric(metric_kind, task, clean_logits), clean_logits=clean_logits,
                   model_name=model_name or patcher.cfg.name, max_memory=max_memory, reference=reference)


# ----- memory (the model is `acdc_compare.memory`) -------------------------------------------------------
def memory_model(patcher: Patcher) -> MemoryModel:
    """The memory model of the patcher's model, graph and dtype."""
    cfg = dataclasses.replace(patcher.cfg, d_vocab=patcher.vocab_size)
    return MemoryModel(cfg, patcher.dtype, include_direct=patcher.graph.config.include_direct,
                       n_spans=patcher.graph.n_spans)


def check_fits(patcher: Patcher, n_prompts: int, seq_len: int, n_positions: int = 1, *, grad: bool = False,
               max_memory: int | None = None) -> None:
    """Refuse, before any activation is computed, a task whose run cannot fit in `max_memory` bytes (default:
    what the device has free now): the ablated run, a checkpoint and one circuit per forward (`grad`: EAP's
    and EAP-IG's differentiable forward with its reference). The message names how many prompts would fit."""
    model = memory_model(patcher)
    work = Workload(n_prompts, seq_len, n_positions)
    need = model.peak_bytes(work, 1, grad=grad)
    budget = available_memory(patcher.device) if max_memory is None else max_memory
    if need <= budget:
        return
    fits = model.largest_prompts(work, budget, grad=grad)
    dtype = str(patcher.dtype).replace("torch.", "")
    what = "EAP/EAP-IG's differentiable run" if grad else "the patched run"
    where = "the --max-memory budget" if max_memory is not None else "available"
    raise MemoryBudgetError(
        f"{n_prompts} prompts of {seq_len} tokens need about {size_text(need)} for {what} on {patcher.device} "
        f"({model.graph.n_senders} senders x {patcher.cfg.d_model} values per token, {patcher.vocab_size} "
        f"logits per scored position, {dtype}), but only {size_text(budget)} is {where}: "
        + (f"use at most {fits} prompts (--n-prompts {fits})" if fits else
           "even 1 prompt does not fit; give a larger --max-memory, or use a machine with more memory"))

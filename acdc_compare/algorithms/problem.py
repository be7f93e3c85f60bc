"""What every discovery algorithm works on: a model's patcher, one task's prompts and a metric.

`Problem` is also the evaluator greedy ACDC talks to (`algorithms.base.Evaluator`): it checkpoints a
circuit's run and evaluates candidate circuits from a receiver's stage on, hiding the patching engine."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from acdc_compare.circuit import Circuit
from acdc_compare.graph import Graph
from acdc_compare.metrics import MetricFn, kl_divergence, parse_metric
from acdc_compare.patching import PatchContext, Patcher, RunState, parse_ablation
from acdc_compare.tasks.base import Task
from acdc_compare.types import Ablation, Metric


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

    @property
    def graph(self) -> Graph:
        return self.patcher.graph

    def evaluate(self, circuits: Circuit | list[Circuit] | torch.Tensor) -> torch.Tensor:
        """Metric value of each circuit: [K] (float64)."""
        return self.metric(self.patcher.logits(self.ctx, circuits))

    @cached_property
    def metric_ends(self) -> tuple[float, float]:
        """(M(full circuit), M(empty circuit)): the ends that normalised faithfulness and relative thresholds
        are measured between, computed once per problem."""
        n = self.graph.n_edges
        ends = self.evaluate(torch.stack([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)]))
        return float(ends[0]), float(ends[1])

    def relative_threshold(self, fraction: float) -> float:
        """A threshold in the metric's units: `fraction` x (M(empty) - M(full)). Tasks differ widely in how
        much their corruption moves the output, so one absolute tau keeps everything of one task and nothing
        of another; a fraction of each task's own gap makes them comparable."""
        full, empty = self.metric_ends
        return max(empty - full, 0.0) * fraction

    # ----- the evaluator seam (greedy ACDC) -----------------------------------------------------------
    @property
    def n_stages(self) -> int:
        return self.patcher.n_stages

    def stage(self, receiver: int) -> int:
        return self.patcher.receiver_stage(receiver)

    def checkpoint(self, kept: torch.Tensor) -> RunState:
        """The run of one circuit `kept` [n_edges], for `evaluate_from`."""
        _, state = self.patcher.run(self.ctx, kept[None], keep_state=True)
        return state  # type: ignore[return-value]

    def evaluate_from(self, checkpoint: RunState, stage: int, kept: torch.Tensor) -> torch.Tensor:
        """Metric [K] of circuits `kept` [K, n_edges] that agree with the checkpoint's circuit on every
        receiver before `stage`: only the stages from there on are run."""
        logits, _ = self.patcher.run(self.ctx, kept, start_stage=stage, base=checkpoint)
        return self.metric(logits)

    @property
    def default_batch(self) -> int:
        """Speculative candidates per forward. On a GPU a batch of K costs little more than one; on a CPU it
        costs K times one (measured: 8 circuits 8.5x one on SmolLM2), so speculation only wastes work there."""
        return 64 if self.patcher.device.type == "cuda" else 1

    def run_settings(self) -> dict[str, Any]:
        """What a result records about where it ran."""
        return {"n_prompts": self.task.n_prompts, "device": str(self.patcher.device),
                "dtype": str(self.patcher.dtype).replace("torch.", "")}

    def fingerprint(self) -> dict[str, Any]:
        """Identity of the run's inputs, for journals and saved results."""
        digest = hashlib.sha256()
        for t in (self.task.clean, self.task.corrupted, self.task.positions, self.task.correct, self.task.wrong):
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


def make_problem(patcher: Patcher, task: Task, *, metric: Metric | str = Metric.KL,
                 ablation: Ablation | str = Ablation.CORRUPTED, model_name: str | None = None,
                 reference: torch.Tensor | None = None) -> Problem:
    """Prepare the ablated run and the full model's logits for a task (validates the inputs first)."""
    metric_kind, ablation_kind = parse_metric(metric), parse_ablation(ablation)
    task.check_vocab(patcher.vocab_size)
    ctx = patcher.prepare(task.clean, ablation_kind, corrupted=task.corrupted, positions=task.positions,
                          reference=reference)
    clean_logits = patcher.logits(ctx, Circuit.full(patcher.graph))[0]
    return Problem(patcher=patcher, ctx=ctx, task=task, metric_kind=metric_kind, ablation=ablation_kind,
                   metric=make_metric(metric_kind, task, clean_logits), clean_logits=clean_logits,
                   model_name=model_name or patcher.cfg.name)

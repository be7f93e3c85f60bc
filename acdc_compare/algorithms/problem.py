"""What every discovery algorithm works on: a model's patcher, one task's prompts and a metric."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from acdc_compare.circuit import Circuit
from acdc_compare.graph import Graph
from acdc_compare.metrics import MetricFn, make_metric, parse_metric
from acdc_compare.patching import PatchContext, Patcher, _parse_ablation
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
        }


def make_problem(patcher: Patcher, task: Task, *, metric: Metric | str = Metric.KL,
                 ablation: Ablation | str = Ablation.CORRUPTED, model_name: str | None = None,
                 reference: torch.Tensor | None = None) -> Problem:
    """Prepare the ablated run and the full model's logits for a task (validates the inputs first)."""
    metric_kind, ablation_kind = parse_metric(metric), _parse_ablation(ablation)
    task.check_vocab(patcher.w.W_E.shape[0])
    ctx = patcher.prepare(task.clean, ablation_kind, corrupted=task.corrupted, positions=task.positions,
                          reference=reference)
    clean_logits = patcher.logits(ctx, Circuit.full(patcher.graph))[0]
    return Problem(patcher=patcher, ctx=ctx, task=task, metric_kind=metric_kind, ablation=ablation_kind,
                   metric=make_metric(metric_kind, task, clean_logits), clean_logits=clean_logits,
                   model_name=model_name or patcher.cfg.name)

"""What every discovery algorithm works on: a model's patcher, one task's prompts and a metric.

`Problem` is also the evaluator greedy ACDC talks to (`algorithms.base.Evaluator`): it checkpoints a
circuit's run and evaluates candidate circuits from a receiver's stage on, hiding the patching engine."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
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
    """Prepare the ablated run and the full model's logits for a task (validates the inputs first, the
    memory they need included)."""
    metric_kind, ablation_kind = parse_metric(metric), parse_ablation(ablation)
    task.check_vocab(patcher.vocab_size)
    check_fits(patcher, task.n_prompts, task.clean.shape[1], task.positions.shape[1])
    ctx = patcher.prepare(task.clean, ablation_kind, corrupted=task.corrupted, positions=task.positions,
                          reference=reference)
    clean_logits = patcher.logits(ctx, Circuit.full(patcher.graph))[0]
    return Problem(patcher=patcher, ctx=ctx, task=task, metric_kind=metric_kind, ablation=ablation_kind,
                   metric=make_metric(metric_kind, task, clean_logits), clean_logits=clean_logits,
                   model_name=model_name or patcher.cfg.name)


# ----- memory -------------------------------------------------------------------------------------------
def pass_bytes(patcher: Patcher, n_prompts: int, seq_len: int, *, grad: bool) -> float:
    """Bytes one circuit's patched forward holds (with `grad`: differentiable, uniform masks): the sender
    buffer plus what each layer keeps, all [n_prompts * seq_len, d_model]-sized."""
    cfg, g = patcher.cfg, patcher.graph
    r_attn = cfg.n_heads + 2 * cfg.kv_heads
    if grad:  # sender buffer + its gradient + what each layer keeps for backward
        units = 2 * g.n_senders + cfg.n_layers * (r_attn + 8 + 4 * cfg.d_mlp / cfg.d_model)
    else:
        units = g.n_senders + 3 * r_attn + 4 * cfg.d_mlp / cfg.d_model
    return units * _activation_bytes(patcher, n_prompts, seq_len)


def context_bytes(patcher: Patcher, n_prompts: int, seq_len: int) -> float:
    """Bytes of the prepared ablated run (`Patcher.prepare`): every sender's ablated output and each layer's
    ablated attention and MLP inputs."""
    units = patcher.graph.n_senders + 2 * patcher.cfg.n_layers
    return units * _activation_bytes(patcher, n_prompts, seq_len)


def _activation_bytes(patcher: Patcher, n_prompts: int, seq_len: int) -> float:
    return n_prompts * seq_len * patcher.cfg.d_model * (torch.finfo(patcher.dtype).bits // 8)


def available_memory(device: torch.device) -> int:
    """Free GPU memory, or the RAM available to new allocations (MemAvailable; 8 GiB where unknown)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def logits_bytes(patcher: Patcher, n_prompts: int, n_positions: int) -> float:
    """Bytes of the logits a metric evaluation holds at once: the full model's (kept), one circuit's and the
    metric's two log-softmax temporaries, each [n_prompts, n_positions, vocab]."""
    return 4 * n_prompts * n_positions * patcher.vocab_size * (torch.finfo(patcher.dtype).bits // 8)


def check_fits(patcher: Patcher, n_prompts: int, seq_len: int, n_positions: int = 1) -> None:
    """Refuse, before anything is allocated, a task whose ablated run, logits and one circuit's forward cannot
    fit in the device's available memory; the message names how many prompts would."""
    per_prompt = (context_bytes(patcher, 1, seq_len) + pass_bytes(patcher, 1, seq_len, grad=False)
                  + logits_bytes(patcher, 1, n_positions))
    available = available_memory(patcher.device)
    if n_prompts * per_prompt <= available:
        return
    fits = int(available // per_prompt)
    dtype = str(patcher.dtype).replace("torch.", "")
    raise MemoryBudgetError(
        f"{n_prompts} prompts of {seq_len} tokens need about {_size(n_prompts * per_prompt)} for the patching "
        f"buffers and logits on {patcher.device} ({patcher.graph.n_senders} senders x {patcher.cfg.d_model} "
        f"values per token, {patcher.vocab_size} logits per scored position, {dtype}), but only "
        f"{_size(available)} is available: use at most {fits} prompts (--n-prompts {max(fits, 1)}; EAP-IG and "
        "the hybrid need fewer still, for gradients)" + ("" if fits else ", or a machine with more memory"))


class MemoryBudgetError(ValueError):
    """A run would need more memory than the device has; the message names the size that fits."""


def _size(n_bytes: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes / 1e3:.1f} kB"

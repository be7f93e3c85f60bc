"""How well a model does a task: logit difference, accuracy, and KL between clean and corrupted runs.

The numbers answer "is this task worth running circuit discovery on?": a model that fails the task has no
circuit for it, and a corruption that barely moves the output (small KL) leaves nothing to attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from acdc_compare.metrics import kl_divergence, logit_diff, prob_diff
from acdc_compare.backends.transformer_lens import run_logits
from acdc_compare.stats import Proportion
from acdc_compare.tasks.base import Task


@dataclass(frozen=True)
class TaskEvaluation:
    """One task's numbers on one model (means over prompts and scored positions).

    accuracy: fraction where the correct answer's logit beats the wrong answer's; for set-valued answers
        (Greater-Than) P(correct set) > P(wrong set); without wrong answers (induction) top-1 accuracy.
    logit_diff: mean correct - wrong logit; for set-valued answers log P(correct set) - log P(wrong set);
        None without wrong answers.
    prob_diff: P(correct) - P(wrong) (sets: of the sets, the task's metric); None without wrong answers.
    p_correct: mean probability of the correct answer (or set).
    kl: KL(clean || corrupted) at the scored positions: how much the corruption moves the output (None when
        evaluated on the clean prompts alone, as `corrupted_logit_diff`).
    corrupted_logit_diff: the same logit difference (clean answers) on the corrupted prompts: near the clean
        value means the model did not use the information the corruption removes.
    corruption: the task's corruption (`Corruption` value), None for a hand-made task.
    """

    name: str
    n: int
    accuracy: float
    logit_diff: float | None
    prob_diff: float | None
    p_correct: float
    kl: float | None
    corrupted_logit_diff: float | None
    n_positions: int = 1
    description: str = ""
    corruption: str | None = None

    @property
    def accuracy_interval(self) -> Proportion:
        """The accuracy with its 95% Wilson interval over the `n` prompts (positions of one prompt are not
        independent trials, so they do not narrow it)."""
        return Proportion(self.accuracy, self.n)


def evaluate_task(model: Any, task: Task, batch_size: int = 32, *, corrupted: bool = True) -> TaskEvaluation:
    """Run the clean and corrupted prompts through the model and score them (batch by batch, keeping only
    the logits at the scored positions). `corrupted=False`: the clean prompts alone, half the forwards, with
    `kl` and `corrupted_logit_diff` None (for tables of accuracy and logit difference only)."""
    _check_vocab(model, task)
    sums: dict[str, float] = {}
    for start in range(0, task.n_prompts, batch_size):
        rows = slice(start, start + batch_size)
        positions = task.positions[rows]
        clean = _at(run_logits(model, task.clean[rows]), positions)
        other = _at(run_logits(model, task.corrupted[rows]), positions) if corrupted else None
        for key, value in _batch_stats(task, rows, clean, other).items():
            sums[key] = sums.get(key, 0.0) + value * clean.shape[0]
    mean = {k: v / task.n_prompts for k, v in sums.items()}
    return TaskEvaluation(
        name=task.name, n=task.n_prompts, accuracy=mean["accuracy"], logit_diff=mean.get("logit_diff"),
        prob_diff=mean.get("prob_diff"), p_correct=mean["p_correct"], kl=mean.get("kl"),
        corrupted_logit_diff=mean.get("corrupted_logit_diff"), n_positions=int(task.positions.shape[1]),
        description=task.description, corruption=None if task.corruption is None else task.corruption.value,
    )


def clean_accuracy(model: Any, task: Task, batch_size: int = 32) -> float:
    """`TaskEvaluation.accuracy` from the clean prompts alone: half the forwards of `evaluate_task`, for
    checking that the model does a task (e.g. in each of its wordings) when KL is not needed."""
    return evaluate_task(model, task, batch_size, corrupted=False).accuracy


def _check_vocab(model: Any, task: Task) -> None:
    cfg = model.cfg
    d_vocab = int(getattr(cfg, "d_vocab_out", 0) or 0)
    task.check_vocab(d_vocab if d_vocab > 0 else int(cfg.d_vocab))


def _hits(task: Task, rows: slice, clean: torch.Tensor) -> torch.Tensor:
    """Per prompt of the batch, the share of its scored positions answered correctly (see
    `TaskEvaluation.accuracy`): clean logits [B, Q, V] -> [B] float64."""
    if task.correct_sets is not None and task.wrong_sets is not None:
        return (_set_probs(clean, task.correct_sets[rows]) > _set_probs(clean, task.wrong_sets[rows])).double()
    correct = task.correct[rows].to(clean.device)
    if not task.has_wrong_answers:
        return (clean.argmax(-1) == correct).double().mean(-1)
    wrong = task.wrong[rows].to(clean.device)
    lc = clean.gather(-1, correct[..., None]).squeeze(-1)
    lw = clean.gather(-1, wrong[..., None]).squeeze(-1)
    return (lc > lw).double().mean(-1)


def _at(logits: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """logits [N, P, V] at positions [N, Q] -> [N, Q, V]."""
    positions = positions.to(logits.device)
    return logits[torch.arange(logits.shape[0], device=logits.device)[:, None], positions]


def _batch_stats(task: Task, rows: slice, clean: torch.Tensor, corrupted: torch.Tensor | None) -> dict[str, float]:
    """Means over one batch of prompts; clean/corrupted logits [B, Q, V] (corrupted None: no KL and no
    corrupted logit difference)."""
    stats = {} if corrupted is None else {"kl": float(kl_divergence(clean, corrupted[None])[0])}
    if task.correct_sets is not None and task.wrong_sets is not None:
        csets, wsets = task.correct_sets[rows], task.wrong_sets[rows]
        pc, pw = _set_probs(clean, csets), _set_probs(clean, wsets)
        stats.update(
            accuracy=float(_hits(task, rows, clean).mean()),
            logit_diff=float((pc.log() - pw.log()).mean()),
            prob_diff=float(prob_diff(clean[None], csets, wsets)[0]),
            p_correct=float(pc.mean()),
        )
        if corrupted is not None:
            cc, cw = _set_probs(corrupted, csets), _set_probs(corrupted, wsets)
            stats["corrupted_logit_diff"] = float((cc.log() - cw.log()).mean())
        return stats
    correct = task.correct[rows].to(clean.device)
    logp = torch.log_softmax(clean.double(), dim=-1)
    p_correct = logp.gather(-1, correct[..., None]).squeeze(-1).exp()
    stats["p_correct"] = float(p_correct.mean())
    if task.has_wrong_answers:
        wrong = task.wrong[rows].to(clean.device)
        lc = clean.gather(-1, correct[..., None]).squeeze(-1)
        lw = clean.gather(-1, wrong[..., None]).squeeze(-1)
        p_wrong = logp.gather(-1, wrong[..., None]).squeeze(-1).exp()
        stats.update(
            accuracy=float(_hits(task, rows, clean).mean()),
            logit_diff=float(logit_diff(clean[None], correct, wrong)[0]),
            prob_diff=float((p_correct - p_wrong).mean()),
        )
        if corrupted is not None:
            stats["corrupted_logit_diff"] = float(logit_diff(corrupted[None], correct, wrong)[0])
    else:
        stats["accuracy"] = float(_hits(task, rows, clean).mean())
    return stats


def _set_probs(logits: torch.Tensor, sets: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """P(set) at the first scored position, per prompt: logits [B, Q, V] -> [B] (float64)."""
    probs = torch.softmax(logits[:, 0].double(), dim=-1)
    mask = torch.zeros_like(probs)
    for i, s in enumerate(sets):
        mask[i, list(s)] = 1.0
    return (probs * mask).sum(-1)


def format_evaluation(e: TaskEvaluation) -> str:
    """One line: prompts, accuracy, logit difference and KL(clean || corrupted), each saying what it means."""
    ld = "-" if e.logit_diff is None else f"{e.logit_diff:.2f}"
    line = f"{e.n} prompts, accuracy {100 * e.accuracy:.0f}% (correct answer beats the wrong one), logit difference {ld}"
    if e.kl is None:
        return line + " (clean prompts alone)"
    return (f"{line}, KL(clean || corrupted) {e.kl:.3f} nats (how far the corruption moves the output: the signal "
            "discovery attributes)")

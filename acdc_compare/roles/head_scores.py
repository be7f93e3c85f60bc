"""`HeadScores`: the per-head role scores of one model on one task, the value every roles module shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from acdc_compare.graph import head_name, parse_head
from acdc_compare.roles.mover_score import PromptMovers
from acdc_compare.stats import bootstrap_interval

SCORE_NAMES: tuple[str, ...] = ("previous_token", "duplicate_token", "induction", "mover", "s_inhibition")


@dataclass(frozen=True, eq=False)
class HeadScores:
    """Per-head role scores of one model on one task; every tensor is [n_layers, n_heads] (float64, CPU).

    answer_attention and direct_logit are the two factors of `mover` (each averaged over the same prompts).
    s_inhibition is NaN for heads that were not measured (at or after the last mover's layer, or all heads
    when s_inhibition scoring was switched off).

    `prompt_movers` keeps the mover score per prompt (toward the correct answer), so that `mover_interval`
    gives each head's score a bootstrap interval over prompts; `given_movers` the same toward the answer the
    model gives (of correct and wrong, the one with the higher logit), and `n_wrong_given` counts the scored
    positions where that is the wrong one. All three are absent (None, 0) on scores built by hand."""

    task_name: str
    previous_token: torch.Tensor
    duplicate_token: torch.Tensor
    induction: torch.Tensor
    mover: torch.Tensor
    s_inhibition: torch.Tensor
    answer_attention: torch.Tensor
    direct_logit: torch.Tensor
    repeat_source: str = "task"  # "task" or "random repeated tokens"
    n_mover_prompts: int = 0
    s_inhibition_movers: tuple[str, ...] = ()
    ablation: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    prompt_movers: PromptMovers | None = None
    given_movers: PromptMovers | None = None
    n_wrong_given: int = 0

    @property
    def n_layers(self) -> int:
        return int(self.mover.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.mover.shape[1])

    def movers_toward(self, answer: str = "correct") -> PromptMovers | None:
        """The per-prompt mover scores toward the "correct" or the "given" answer (None where not kept)."""
        if answer not in ("correct", "given"):
            raise ValueError(f"unknown answer {answer!r}; choose 'correct' or 'given'")
        return self.prompt_movers if answer == "correct" else self.given_movers

    def mover_toward(self, answer: str = "correct") -> tuple[torch.Tensor, torch.Tensor] | None:
        """Mover scores and attention to the answer [L, H] toward the "correct" answer (`mover`,
        `answer_attention`) or the "given" one (None where its per-prompt scores were not kept)."""
        if answer == "correct":
            return self.mover, self.answer_attention
        pm = self.movers_toward(answer)
        return None if pm is None else (pm.pooled(pm.mover), pm.pooled(pm.attention))

    def mover_interval(self, answer: str = "correct", level: float = 0.95, n_resamples: int = 1000,
                       seed: int = 0) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Each head's percentile-bootstrap `level` interval of its mover score toward `answer` ("correct" or
        "given"), resampling prompts (`stats.bootstrap_interval`, weighted by each prompt's scored positions):
        (low, high), each [L, H]; None where the per-prompt scores were not kept."""
        pm = self.movers_toward(answer)
        if pm is None or pm.count == 0:
            return None
        return bootstrap_interval(pm.mover, pm.weights, level=level, n_resamples=n_resamples, seed=seed)

    def score(self, name: str) -> torch.Tensor:
        if name not in SCORE_NAMES:
            raise ValueError(f"unknown score {name!r}; choose one of {SCORE_NAMES}")
        return getattr(self, name)

    def top(self, name: str, k: int, largest: bool = True) -> list[tuple[str, float]]:
        """The k heads with the largest (or smallest) finite score: [(head, score)]."""
        flat = self.score(name).reshape(-1)
        finite = torch.isfinite(flat)
        idx = [int(i) for i in torch.argsort(flat, descending=largest) if finite[int(i)]][:k]
        return [(head_name(*divmod(i, self.n_heads)), float(flat[i])) for i in idx]

    def head_scores(self, head: str) -> dict[str, float]:
        layer, h = parse_head(head)
        out = {name: float(self.score(name)[layer, h]) for name in SCORE_NAMES}
        out["answer_attention"] = float(self.answer_attention[layer, h])
        out["direct_logit"] = float(self.direct_logit[layer, h])
        return out

"""`HeadScores`: the per-head role scores of one model on one task, the value every roles module shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from acdc_compare.graph import head_name, parse_head

SCORE_NAMES: tuple[str, ...] = ("previous_token", "duplicate_token", "induction", "mover", "s_inhibition")


@dataclass(frozen=True, eq=False)
class HeadScores:
    """Per-head role scores of one model on one task; every tensor is [n_layers, n_heads] (float64, CPU).

    answer_attention and direct_logit are the two factors of `mover` (each averaged over the same prompts).
    s_inhibition is NaN for heads that were not measured (at or after the last mover's layer, or all heads
    when s_inhibition scoring was switched off)."""

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

    @property
    def n_layers(self) -> int:
        return int(self.mover.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.mover.shape[1])

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

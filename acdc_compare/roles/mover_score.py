"""The mover score: attention from the scored position to the answer's positions x the head's direct logit
contribution, and where the answer sits in a prompt (`answer_mask`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from acdc_compare.tasks.base import Task

def answer_mask(tokens: torch.Tensor, positions: torch.Tensor, answers: torch.Tensor,
                decode: Callable[[int], str] | None = None) -> torch.Tensor:
    """[N, Q, P]: key positions j <= scored position holding the answer token. Where the answer's exact token
    does not occur and `decode` is given, tokens with the same text up to surrounding whitespace count
    (' Emma' as the answer, 'Emma' at the start of the prompt)."""
    tokens, positions, answers = tokens.cpu(), positions.cpu(), answers.cpu()
    p = tokens.shape[1]
    before = torch.arange(p)[None, None, :] <= positions[:, :, None]
    mask = (tokens[:, None, :] == answers[:, :, None]) & before & (answers[:, :, None] >= 0)
    if decode is None:
        return mask
    for n, q in (~mask.any(-1) & (answers >= 0)).nonzero().tolist():
        text = decode(int(answers[n, q])).strip()
        if not text:
            continue
        for j in range(int(positions[n, q]) + 1):
            if decode(int(tokens[n, j])).strip() == text:
                mask[n, q, j] = True
    return mask


def token_decoder(model: Any) -> Callable[[int], str] | None:
    """Token id -> text with the model's tokenizer (memoised), or None without one."""
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        return None
    return lru_cache(maxsize=None)(lambda i: str(tok.decode([i])))


def attention_from(patterns: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """patterns [L, N, H, P, P] -> attention rows at the scored positions [L, N, H, Q, P]."""
    L, n, H, p, _ = patterns.shape
    pos = positions.cpu()
    idx = pos[None, :, None, :, None].expand(L, n, H, pos.shape[1], p)
    return patterns.gather(3, idx)


@dataclass(frozen=True)
class PromptMovers:
    """Per-prompt mover scores toward one answer: each prompt's mean over its scored positions whose answer
    occurs in the prompt. mover, attention, direct_logit: [N, L, H] (0 for prompts without such a position);
    weights: [N], how many such positions each prompt has (the pooled mean over all of them is
    sum(weights x values) / sum(weights), what `stats.bootstrap_interval(values, weights)` resamples)."""

    mover: torch.Tensor
    attention: torch.Tensor
    direct_logit: torch.Tensor
    weights: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.weights.sum())

    def pooled(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over all (prompt, scored position) pairs counted: [L, H]."""
        return (values * self.weights[:, None, None]).sum(0) / max(self.count, 1)


def given_answers(task: Task, logit_diff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The answer the model gives at each scored position, of (correct, wrong): the one with the higher logit
    (correct on a tie, and where there is no wrong answer), [N, Q]; and the sign turning a (correct - wrong)
    direct logit contribution into one toward the given answer (+1 / -1), [N, Q]."""
    correct, wrong = task.correct.cpu(), task.wrong.cpu()
    wrong_given = (logit_diff.cpu() < 0) & (wrong >= 0)
    return torch.where(wrong_given, wrong, correct), 1.0 - 2.0 * wrong_given.double()


def prompt_movers(task: Task, patterns: torch.Tensor, dla: torch.Tensor, decode: Callable[[int], str] | None,
                  answers: torch.Tensor | None = None, sign: torch.Tensor | None = None) -> PromptMovers:
    """Per-prompt mover scores (`PromptMovers`) toward `answers` [N, Q] (default: the correct answers), with
    the heads' (correct - wrong) contributions `dla` [N, Q, L, H] multiplied by `sign` [N, Q] (default +1; -1
    where the answer scored is the wrong one, so the contribution is toward it)."""
    answers = task.correct if answers is None else answers
    rows = attention_from(patterns, task.positions)  # [L, N, H, Q, P]
    mask = answer_mask(task.clean, task.positions, answers, decode)  # [N, Q, P]
    att = (rows * mask[None, :, None].double()).sum(-1).permute(1, 3, 0, 2)  # [N, Q, L, H]
    d = dla if sign is None else dla * sign.double()[..., None, None]
    valid = mask.any(-1).double()  # [N, Q]
    weights = valid.sum(1)  # [N]
    v = valid[..., None, None]
    per = weights.clamp(min=1)[:, None, None]
    return PromptMovers((att * d * v).sum(1) / per, (att * v).sum(1) / per, (d * v).sum(1) / per, weights)


def mover_scores(task: Task, patterns: torch.Tensor, dla: torch.Tensor,
                 decode: Callable[[int], str] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Mover scores [L, H], their attention-to-answer and direct-logit factors [L, H], and the number of
    (prompt, scored position) pairs whose answer occurs in the prompt."""
    pm = prompt_movers(task, patterns, dla, decode)
    L, H = patterns.shape[0], patterns.shape[2]
    if pm.count == 0:
        zero = torch.zeros(L, H, dtype=torch.float64)
        return zero, zero.clone(), dla.mean(dim=(0, 1)), 0
    return pm.pooled(pm.mover), pm.pooled(pm.attention), pm.pooled(pm.direct_logit), pm.count

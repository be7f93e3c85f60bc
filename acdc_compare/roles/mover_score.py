"""The mover score: attention from the scored position to the answer's positions x the head's direct logit
contribution, and where the answer sits in a prompt (`answer_mask`)."""

from __future__ import annotations

from collections.abc import Callable
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


def mover_scores(task: Task, patterns: torch.Tensor, dla: torch.Tensor,
                 decode: Callable[[int], str] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Mover scores [L, H], their attention-to-answer and direct-logit factors [L, H], and the number of
    (prompt, scored position) pairs whose answer occurs in the prompt."""
    rows = attention_from(patterns, task.positions)  # [L, N, H, Q, P]
    mask = answer_mask(task.clean, task.positions, task.correct, decode)  # [N, Q, P]
    att = (rows * mask[None, :, None].double()).sum(-1).permute(1, 3, 0, 2)  # [N, Q, L, H]
    valid = mask.any(-1)  # [N, Q]
    count = int(valid.sum())
    L, H = patterns.shape[0], patterns.shape[2]
    if count == 0:
        zero = torch.zeros(L, H, dtype=torch.float64)
        return zero, zero.clone(), dla.mean(dim=(0, 1)), 0
    v = valid[..., None, None].double()
    mover = (att * dla * v).sum(dim=(0, 1)) / count
    return mover, (att * v).sum(dim=(0, 1)) / count, (dla * v).sum(dim=(0, 1)) / count, count

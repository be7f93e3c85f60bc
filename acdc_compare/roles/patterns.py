"""Attention-pattern scores: previous-token, duplicate-token and induction, each [n_layers, n_heads].

Duplicate-token and induction scores are measured on the task's prompts when they hold repeats, otherwise on
random tokens repeated twice (`repeated_random_tokens`); see `roles.scoring` for the definitions."""

from __future__ import annotations

from typing import Any

import torch

from acdc_compare.backends.hooks import attention_patterns

def all_patterns(model: Any, tokens: torch.Tensor, chunk: int) -> torch.Tensor:
    """Attention patterns [L, N, H, P, P] (float64, CPU), `chunk` sequences per forward."""
    parts = [attention_patterns(model, tokens[i:i + chunk]).double().cpu() for i in range(0, len(tokens), chunk)]
    return torch.cat(parts, dim=1)


def context_length(model: Any) -> int:
    """The model's context length (1024 when its config does not say)."""
    return int(getattr(model.cfg, "n_ctx", 0) or 1024)


def valid_positions(tokens: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    """[N, P] bool: the real tokens of each prompt, up to its last scored position (right padding after it)."""
    n, p = tokens.shape
    if positions is None:
        return torch.ones(n, p, dtype=torch.bool)
    last = positions.cpu().max(dim=1).values
    return torch.arange(p)[None, :] <= last[:, None]


def previous_token_score(patterns: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of A[i, i-1] over prompts and their real positions i >= 1: [L, H]."""
    p = patterns.shape[-1]
    i = torch.arange(1, p)
    rows = valid[:, 1:].double()  # [N, P-1]
    return (patterns[..., i, i - 1] * rows[None, :, None]).sum(dim=(1, 3)) / rows.sum().clamp(min=1)


def repeat_scores(patterns: torch.Tensor, tokens: torch.Tensor,
                  valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Duplicate-token and induction scores [L, H] over the real positions whose token occurred before, and
    the number of such (prompt, position) pairs."""
    tokens = tokens.cpu()
    n, p = tokens.shape
    same = tokens[:, :, None] == tokens[:, None, :]  # [N, i, j]
    earlier = torch.tril(torch.ones(p, p, dtype=torch.bool), diagonal=-1)
    dup_mask = same & earlier & valid[:, :, None]  # j < i holds the same token, i a real position
    ind_mask = torch.zeros_like(dup_mask)
    ind_mask[:, :, 1:] = dup_mask[:, :, :-1]  # j + 1 where j is an earlier occurrence ...
    ind_mask &= earlier  # ... and j + 1 < i
    dup_rows = dup_mask.any(-1)  # [N, i]
    ind_rows = ind_mask.any(-1)
    n_rows = int(dup_rows.sum())
    L, _, H = patterns.shape[:3]
    if n_rows == 0:
        return torch.zeros(L, H, dtype=torch.float64), torch.zeros(L, H, dtype=torch.float64), 0
    dup_att = (patterns * dup_mask[None, :, None].double()).sum(-1)  # [L, N, H, i]
    ind_att = (patterns * ind_mask[None, :, None].double()).sum(-1)
    dup = (dup_att * dup_rows[None, :, None].double()).sum(dim=(1, 3)) / n_rows
    n_ind = int(ind_rows.sum())
    ind = (ind_att * ind_rows[None, :, None].double()).sum(dim=(1, 3)) / max(n_ind, 1)
    return dup, ind, n_rows


def repeated_random_tokens(tokens: torch.Tensor, valid: torch.Tensor, n_seqs: int, length: int, seed: int,
                           n_ctx: int) -> torch.Tensor:
    """[n_seqs, 2T]: T distinct tokens (drawn from the task's own real tokens) followed by the same T again."""
    vocab = torch.unique(tokens.cpu()[valid])
    length = max(2, min(length, len(vocab), n_ctx // 2))
    gen = torch.Generator().manual_seed(seed)
    halves = torch.stack([vocab[torch.randperm(len(vocab), generator=gen)[:length]] for _ in range(n_seqs)])
    return torch.cat([halves, halves], dim=1)

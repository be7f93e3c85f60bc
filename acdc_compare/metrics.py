"""Metrics on logits at the scored positions, as pure tensor functions: one value per circuit, or per circuit and
prompt (`*_per_prompt`, which the means are taken from)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from acdc_compare.types import Metric, parse_enum

MetricFn = Callable[[torch.Tensor], torch.Tensor]  # logits [K, N, Q, V] -> [K]


def kl_divergence(ref_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(ref || circuit), summed over the vocabulary, mean over prompts and positions.
    ref_logits [N, Q, V], logits [K, N, Q, V] -> [K] (float64)."""
    ref_logp = torch.log_softmax(ref_logits.double(), dim=-1)
    logp = torch.log_softmax(logits.double(), dim=-1)
    return (ref_logp.exp() * (ref_logp - logp)).sum(-1).mean(dim=(-1, -2))


def logit_diff_per_prompt(logits: torch.Tensor, correct: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    """Each prompt's (correct - wrong) logit, mean over its scored positions.
    logits [K, N, Q, V], correct/wrong [N, Q] -> [K, N] (float64)."""
    logits = logits.double()
    idx_c = correct.to(logits.device)[None, ..., None].expand(logits.shape[0], -1, -1, 1)
    idx_w = wrong.to(logits.device)[None, ..., None].expand(logits.shape[0], -1, -1, 1)
    return (logits.gather(-1, idx_c) - logits.gather(-1, idx_w)).squeeze(-1).mean(dim=-1)


def logit_diff(logits: torch.Tensor, correct: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    """Mean (correct - wrong) logit over prompts (`logit_diff_per_prompt`). -> [K]."""
    return logit_diff_per_prompt(logits, correct, wrong).mean(dim=-1)


def prob_diff_per_prompt(logits: torch.Tensor, correct_sets: tuple[tuple[int, ...], ...],
                         wrong_sets: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """Each prompt's P(correct set) - P(wrong set) at its first scored position (Greater-Than). -> [K, N]."""
    probs = torch.softmax(logits.double()[:, :, 0], dim=-1)  # [K, N, V]
    mask_c = _set_mask(correct_sets, probs.shape[-1], probs.device)
    mask_w = _set_mask(wrong_sets, probs.shape[-1], probs.device)
    return (probs * mask_c).sum(-1) - (probs * mask_w).sum(-1)


def prob_diff(logits: torch.Tensor, correct_sets: tuple[tuple[int, ...], ...],
              wrong_sets: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """Mean P(correct set) - P(wrong set) over prompts (`prob_diff_per_prompt`). -> [K]."""
    return prob_diff_per_prompt(logits, correct_sets, wrong_sets).mean(-1)


def _set_mask(sets: tuple[tuple[int, ...], ...], vocab: int, device: torch.device) -> torch.Tensor:
    mask = torch.zeros(len(sets), vocab, dtype=torch.float64, device=device)
    for i, s in enumerate(sets):
        mask[i, list(s)] = 1.0
    return mask


def parse_metric(metric: Metric | str) -> Metric:
    return parse_enum(Metric, metric, "metric")

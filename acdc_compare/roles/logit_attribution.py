"""Direct logit attribution: each head's direct contribution to the (correct - wrong) logit difference at the
scored positions, through the final norm with its scale frozen from the clean run."""

from __future__ import annotations

from typing import Any

import torch

from acdc_compare.backends.hooks import patterns_and_head_results
from acdc_compare.backends.transformer_lens import extract_weights
from acdc_compare.progress import Bar
from acdc_compare.tasks.base import Task
from acdc_compare.weights import ModelWeights

def _answer_direction(weights: ModelWeights, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """W_U[:, correct] - W_U[:, wrong] per scored position [N, Q, d] (W_U[:, correct] where there is no wrong
    answer), and the matching unembedding-bias difference [N, Q]; float64 on the CPU."""
    W_U, b_U = weights.W_U.double().cpu(), weights.b_U.double().cpu()
    correct, wrong = task.correct.cpu(), task.wrong.cpu()
    has_wrong = (wrong >= 0).double()
    w_idx = wrong.clamp(min=0)
    direction = W_U[:, correct].permute(1, 2, 0) - W_U[:, w_idx].permute(1, 2, 0) * has_wrong[..., None]
    return direction, b_U[correct] - b_U[w_idx] * has_wrong


def _direct_contributions(weights: ModelWeights, task: Task, heads: torch.Tensor, resid: torch.Tensor,
                          rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """Heads' direct logit-difference contributions [m, Q, L, H] and the rest [m, Q] for the prompts `rows`,
    from the head outputs [m, Q, L, H, d] and final residual [m, Q, d] at the scored positions."""
    cfg = weights.config
    raw, bias_diff = _answer_direction(weights, task)
    raw, bias_diff = raw[rows], bias_diff[rows]
    lnf_w = weights.lnf_w.double().cpu()
    heads, resid = heads.double().cpu(), resid.double().cpu()
    if cfg.normalization == "RMS":
        scale = torch.sqrt(resid.pow(2).mean(-1, keepdim=True) + cfg.eps)  # [m, Q, 1]
        centred_heads, centred_resid = heads, resid
    else:
        centred_resid = resid - resid.mean(-1, keepdim=True)
        scale = torch.sqrt(centred_resid.pow(2).mean(-1, keepdim=True) + cfg.eps)
        centred_heads = heads - heads.mean(-1, keepdim=True)
    direction = raw * lnf_w / scale  # [m, Q, d]
    head_dla = torch.einsum("mqlhd,mqd->mqlh", centred_heads, direction)
    total = (centred_resid * direction).sum(-1) + bias_diff
    if weights.lnf_b is not None:
        total = total + (raw * weights.lnf_b.double().cpu()).sum(-1)
    return head_dla, total - head_dla.sum(dim=(-1, -2))


def patterns_and_dla(model: Any, weights: ModelWeights, task: Task, chunk: int,
                     bar: Bar) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Attention patterns [L, N, H, P, P], heads' direct contributions [N, Q, L, H] and the model's
    (correct - wrong) logit difference at the scored positions [N, Q] (heads' parts plus the rest; one forward
    per chunk, one `bar` unit each)."""
    patterns, dla, diff = [], [], []
    for start in range(0, task.n_prompts, chunk):
        rows = slice(start, start + chunk)
        pat, heads, resid = patterns_and_head_results(model, task.clean[rows], task.positions[rows])
        patterns.append(pat.double().cpu())
        head_dla, rest = _direct_contributions(weights, task, heads, resid, rows)
        dla.append(head_dla)
        diff.append(head_dla.sum(dim=(-1, -2)) + rest)
        bar.update(1)
    return torch.cat(patterns, dim=1), torch.cat(dla), torch.cat(diff)


@torch.no_grad()
def direct_head_contributions(model: Any, task: Task, chunk: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Each head's direct contribution to the (correct - wrong) logit at each scored position, the final
    norm's scale frozen from the clean run: [N, Q, L, H], and the rest (embedding, MLPs, biases) [N, Q].

    The two parts sum to the model's logit difference (the final norm is linear once its scale is frozen,
    and LayerNorm's centring is linear too); the rest includes the norm and unembedding biases."""
    weights = extract_weights(model)
    heads_out, rest_out = [], []
    for start in range(0, task.n_prompts, chunk):
        rows = slice(start, start + chunk)
        _, heads, resid = patterns_and_head_results(model, task.clean[rows], task.positions[rows])
        h, r = _direct_contributions(weights, task, heads, resid, rows)
        heads_out.append(h)
        rest_out.append(r)
    return torch.cat(heads_out), torch.cat(rest_out)

"""S-inhibition scores: how much ablating an earlier head moves the movers' attention to the subject, along
the head's path into the movers' queries ("query", `query_patched_attention`) or through the whole model
("total")."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch

from acdc_compare import forward
from acdc_compare.backends.hooks import attention_under_head_ablations, attention_z, residual_pre
from acdc_compare.roles.mover_score import answer_mask, attention_from
from acdc_compare.tasks.base import Task
from acdc_compare.weights import ModelWeights

AblationKind = Literal["corrupted", "mean"]


def query_patched_attention(weights: ModelWeights, resid: torch.Tensor, layer: int, heads: list[int],
                            deltas: torch.Tensor, query_positions: torch.Tensor) -> torch.Tensor:
    """Attention rows of heads `heads` of block `layer` from query_positions[n] when deltas[a] [n, d] is
    added to those heads' query input only (keys, values and every other head unchanged).

    resid [n, P, d]: the clean residual entering the block. Computed from the weights (norm, W_Q/W_K, q/k
    norms, rotary, window, soft-cap): no forward. Returns [A, n, len(heads), P] (zero beyond the query position)."""
    cfg = weights.config
    dev = weights.device
    resid = resid.to(dev, torch.float64)
    n, p, d = resid.shape
    qpos = query_positions.to(dev).long().reshape(n)
    at = torch.arange(n, device=dev)

    def norm(x: torch.Tensor) -> torch.Tensor:
        if weights.ln1_w is None:
            return x
        ln_b = None if weights.ln1_b is None else weights.ln1_b[layer].double()
        return forward.norm(x, weights.ln1_w[layer].double(), ln_b, cfg.normalization, cfg.eps)

    def qk_norm(x: torch.Tensor, weight: torch.Tensor | None, head_dim: int) -> torch.Tensor:
        return x if weight is None else forward.qk_norm(x, weight[layer].double(), cfg.eps, head_dim)

    group = cfg.n_heads // cfg.kv_heads
    # every head is projected: a q/k norm over all heads (OLMo-2) needs them all
    keys = torch.einsum("npd,gde->gnpe", norm(resid), weights.W_K[layer].double()) \
        + weights.b_K[layer].double()[:, None, None]  # [G, n, P, dh]
    keys = qk_norm(keys, weights.k_norm_w, 0)
    x_q = resid[at, qpos][None] + deltas.to(dev, torch.float64)  # [A, n, d]
    queries = torch.einsum("and,hde->ahne", norm(resid[at, qpos][None]), weights.W_Q[layer].double())
    queries = queries.expand(len(deltas), -1, -1, -1).clone()  # [A, H, n, dh]: the other heads unpatched
    queries[:, heads] = torch.einsum("and,hde->ahne", norm(x_q), weights.W_Q[layer, heads].double())
    queries = queries + weights.b_Q[layer].double()[None, :, None]
    queries = qk_norm(queries, weights.q_norm_w, 1)[:, heads]
    if cfg.positional == "rotary":
        base, scaling = cfg.rotary_of(layer)
        cos, sin = forward.rotary_tables(cfg.rotary_dim or cfg.d_head, base, p, dev, torch.float64, scaling)
        keys = forward.apply_rotary(keys, cos, sin)
        queries = forward.apply_rotary(queries, cos[qpos], sin[qpos])
    k_of = torch.stack([keys[h // group] for h in heads])  # [h, n, P, dh]
    rows = forward.causal_attention_rows(queries, k_of[None], qpos, cfg.d_head, scale=cfg.attention_scale(layer),
                                         sliding_window=cfg.window(layer), cap=cfg.attn_softcap)  # [A, h, n, P]
    return rows.transpose(1, 2)  # [A, n, h, P]


def s_inhibition_scores(model: Any, weights: ModelWeights, task: Task, movers: list[tuple[int, int]],
                        patterns: torch.Tensor, ablation: str, path: str, n_prompts: int, batch_size: int,
                        decode: Callable[[int], str] | None) -> torch.Tensor:
    """Change of the movers' attention to the subject when each earlier head is ablated: [L, H] (NaN where
    not measured). path 'query': only the head's direct path into the movers' queries; 'total': the whole
    head."""
    L, _, H = patterns.shape[:3]
    n = min(n_prompts, task.n_prompts)
    clean = task.clean[:n]
    qpos = task.positions[:n, 0]
    subject = answer_mask(clean, task.positions[:n, :1], task.wrong[:n, :1], decode)[:, 0].double()  # [n, P]
    last = max(layer for layer, _ in movers)
    candidates = [(layer, h) for layer in range(last) for h in range(H)]
    cand_layers = sorted({layer for layer, _ in candidates})
    if ablation == "corrupted":
        z_abl = attention_z(model, task.corrupted[:n], cand_layers)  # [Lc, n, P, H, dh]
    elif ablation == "mean":
        z_abl = None
    else:
        raise ValueError(f"unknown ablation {ablation!r}; choose 'corrupted' or 'mean'")
    mover_layers = sorted({layer for layer, _ in movers})
    base_rows = attention_from(patterns[:, :n], task.positions[:n, :1])[..., 0, :]  # [L, n, H, P]
    base = (base_rows * subject[None, :, None]).sum(-1)  # [L, n, H]
    ablated: dict[tuple[int, int, int], torch.Tensor] = {}  # (candidate index, mover layer, mover head) -> [n]
    if path == "total":
        if z_abl is None:
            z_abl = attention_z(model, clean, cand_layers).mean(dim=1, keepdim=True)
        replacement = {layer: z_abl[i] for i, layer in enumerate(cand_layers)}
        rows = attention_under_head_ablations(model, clean, candidates, replacement, mover_layers, qpos,
                                              batch_size=batch_size).double().cpu()  # [C, Lm, n, H, P]
        for c in range(len(candidates)):
            for ml, mh in movers:
                ablated[c, ml, mh] = (rows[c, mover_layers.index(ml), :, mh] * subject).sum(-1)
    elif path == "query":
        z_clean = attention_z(model, clean, cand_layers)
        z_abl = z_clean.mean(dim=1, keepdim=True) if z_abl is None else z_abl
        at = torch.arange(n, device=z_clean.device)
        qp = qpos.to(z_clean.device)
        dz = (z_abl.expand_as(z_clean) - z_clean)[:, at, qp]  # [Lc, n, H, dh] at the scored positions
        W_O = weights.W_O[cand_layers].to(dz.device)  # [Lc, H, dh, d]
        deltas = torch.einsum("lnhe,lhed->lhnd", dz.double(), W_O.double()).reshape(len(cand_layers) * H, n, -1)
        resid = residual_pre(model, clean, mover_layers)
        for i, ml in enumerate(mover_layers):
            heads_here = [mh for layer, mh in movers if layer == ml]
            cidx = [c for c, (layer, _) in enumerate(candidates) if layer < ml]
            rows = query_patched_attention(weights, resid[i], ml, heads_here, deltas[cidx], qpos).cpu()
            for j, c in enumerate(cidx):
                for k, mh in enumerate(heads_here):
                    ablated[c, ml, mh] = (rows[j, :, k] * subject).sum(-1)
    else:
        raise ValueError(f"unknown S-inhibition path {path!r}; choose 'query' or 'total'")
    out = torch.full((L, H), math.nan, dtype=torch.float64)
    for c, (layer, h) in enumerate(candidates):
        diffs = [ablated[c, ml, mh] - base[ml, :, mh] for ml, mh in movers if ml > layer]
        if diffs:
            out[layer, h] = torch.stack(diffs).mean()
    return out

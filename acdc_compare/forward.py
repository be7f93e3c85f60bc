"""The transformer forward's maths, written once: norms, rotary embeddings, activations, the MLP and causal
attention weights. The patching engine and the head-role scorer both compute with these."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from acdc_compare.types import Normalization, RopeScaling


class UnsupportedOperationError(ValueError):
    """The model uses an operation (activation, norm, ...) the engine does not implement."""


def norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kind: Normalization,
         eps: float) -> torch.Tensor:
    """LayerNorm or RMSNorm over the last dim. weight/bias [d] are fused into the kernel; a weight of
    another shape is broadcast against the normalised x. RMSNorm runs in fp32 for half-precision inputs,
    as transformers does."""
    d = x.shape[-1]
    fused = weight.dim() == 1
    if kind == "RMS":
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        if fused:
            return F.rms_norm(xf, (d,), weight.to(xf.dtype), eps).to(x.dtype)
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        return out.to(x.dtype) * weight
    if fused:
        return F.layer_norm(x, (d,), weight, bias, eps)
    out = F.layer_norm(x, (d,), eps=eps) * weight
    return out + bias if bias is not None else out


def rotary_inv_freq(dim: int, base: float, scaling: RopeScaling | None, device: torch.device | str
                    ) -> torch.Tensor:
    """Inverse frequencies [dim / 2] (float64), rescaled as transformers' rope initialisers do."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, device=device, dtype=torch.float64) / dim))
    if scaling is None:
        return inv_freq
    if scaling.kind == "linear":
        return inv_freq / scaling.factor
    if scaling.kind == "llama3":
        old = scaling.original_max_positions
        low_wavelen, high_wavelen = old / scaling.low_freq_factor, old / scaling.high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / scaling.factor, inv_freq)
        smooth = (old / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
        smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        return torch.where(medium, smoothed, scaled)
    raise UnsupportedOperationError(f"rope scaling {scaling.kind!r} is not supported by the patching engine")


def rotary_tables(dim: int, base: float, n_positions: int, device: torch.device | str,
                  dtype: torch.dtype, scaling: RopeScaling | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [n_positions, dim] in the rotate-half layout (computed in float64, returned in dtype)."""
    inv_freq = rotary_inv_freq(dim, base, scaling, device)
    freqs = torch.arange(n_positions, device=device, dtype=torch.float64)[:, None] * inv_freq[None]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first cos.shape[-1] features of x [..., P, dh] (rotate-half layout); the rest pass."""
    rd = cos.shape[-1]
    x_rot, x_pass = x[..., :rd], x[..., rd:]
    half = rd // 2
    rotated = torch.cat([-x_rot[..., half:], x_rot[..., :half]], dim=-1)
    out = x_rot * cos + rotated * sin
    return torch.cat([out, x_pass], dim=-1) if x_pass.shape[-1] else out


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The MLP's activation function by its TransformerLens name."""
    if name in ("gelu_new", "gelu_fast", "gelu_pytorch_tanh"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "gelu":
        return F.gelu
    if name in ("silu", "swish"):
        return F.silu
    if name == "relu":
        return F.relu
    raise UnsupportedOperationError(f"activation {name!r} is not supported by the patching engine")


def mlp(x: torch.Tensor, W_in: torch.Tensor, b_in: torch.Tensor, W_gate: torch.Tensor | None,
        W_out: torch.Tensor, b_out: torch.Tensor, act: Callable[[torch.Tensor], torch.Tensor],
        b_gate: torch.Tensor | None = None) -> torch.Tensor:
    """x [..., d] (already normalised) -> [..., d]; gated (act(x W_gate + b_gate) * (x W_in + b_in)) when
    W_gate is given."""
    pre = x @ W_in + b_in
    if W_gate is None:
        hidden = act(pre)
    else:
        gate = x @ W_gate if b_gate is None else x @ W_gate + b_gate
        hidden = act(gate) * pre
    return hidden @ W_out + b_out


def visible_keys(query_positions: torch.Tensor, n_keys: int, sliding_window: int | None) -> torch.Tensor:
    """Which keys each query sees: bool [n, n_keys], k <= q, and q - sliding_window < k with a window (the
    convention of transformers' `sliding_window_overlay`)."""
    k = torch.arange(n_keys, device=query_positions.device)[None, :]
    q = query_positions[:, None]
    visible = k <= q
    return visible & (k > q - sliding_window) if sliding_window is not None else visible


def causal_attention_rows(queries: torch.Tensor, keys: torch.Tensor, query_positions: torch.Tensor,
                          d_head: int, *, scale: float | None = None,
                          sliding_window: int | None = None, cap: float | None = None) -> torch.Tensor:
    """Attention weights of one query row per prompt: queries [..., n, dh] at query_positions [n], keys
    [..., n, P, dh] -> [..., n, P], softmax over the visible keys (zero elsewhere). `scale` defaults to
    1/sqrt(d_head); scores soft-capped with `cap`."""
    p = keys.shape[-2]
    scale = 1.0 / math.sqrt(d_head) if scale is None else scale
    scores = softcap(torch.einsum("...ne,...npe->...np", queries, keys) * scale, cap)
    causal = visible_keys(query_positions.to(keys.device), p, sliding_window)
    return torch.softmax(scores.masked_fill(~causal, -math.inf), dim=-1)


def softcap(x: torch.Tensor, cap: float | None) -> torch.Tensor:
    """cap * tanh(x / cap), Gemma 2's soft-capping of attention scores and logits (x unchanged without a cap)."""
    return x if cap is None else torch.tanh(x / cap) * cap


def qk_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, head_dim: int) -> torch.Tensor:
    """The RMSNorm on queries or keys x [..., h, N, P, dh] (heads on axis `head_dim`): over each head's
    d_head with weight [dh], or over all heads jointly (OLMo-2) with weight [h * dh]."""
    if weight.shape[-1] == x.shape[-1]:
        return norm(x, weight, None, "RMS", eps)
    moved = x.movedim(head_dim, -2)
    flat = norm(moved.flatten(-2), weight, None, "RMS", eps)
    return flat.view(moved.shape).movedim(-2, head_dim)


def post_norm_shares(parts: torch.Tensor, bias: torch.Tensor, weight: torch.Tensor, eps: float,
                     part_dim: int) -> torch.Tensor:
    """Each part's share of RMSNorm(sum of parts + bias): parts [..., n, ..., d] summed over `part_dim`.

    The norm's scale 1/rms is taken from the sum, so the shares (each part plus 1/n of the bias, times
    weight / rms) add up to the normed sum exactly. This is what one head contributes to the residual
    stream through Gemma's post-attention norm. RMS in fp32 for half precision, as transformers does."""
    total = parts.sum(part_dim) + bias
    tf = total.float() if total.dtype in (torch.float16, torch.bfloat16) else total
    inv_rms = torch.rsqrt(tf.pow(2).mean(-1, keepdim=True) + eps).unsqueeze(part_dim)
    pf = parts.to(tf.dtype) + bias.to(tf.dtype) / parts.shape[part_dim]
    return (pf * inv_rms).to(parts.dtype) * weight


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                     visible: torch.Tensor | None, cap: float | None) -> torch.Tensor:
    """z [..., H, P, dh] of queries [..., H, P, dh] over keys/values [..., G, P, dh] (G divides H), attending
    to keys k <= q, or to `visible` [P, P] (True: seen) when given; scores soft-capped with `cap`."""
    if cap is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=visible, is_causal=visible is None, scale=scale,
                                              enable_gqa=k.shape[-3] != q.shape[-3])
    group = q.shape[-3] // k.shape[-3]
    if group > 1:
        k, v = k.repeat_interleave(group, dim=-3), v.repeat_interleave(group, dim=-3)
    p = q.shape[-2]
    if visible is None:
        visible = visible_keys(torch.arange(p, device=q.device), p, None)
    scores = softcap(q @ k.transpose(-1, -2) * scale, cap)
    return torch.softmax(scores.masked_fill(~visible, -math.inf), dim=-1) @ v

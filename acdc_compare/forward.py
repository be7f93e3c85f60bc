"""The transformer forward's maths, written once: norms, rotary embeddings, activations, the MLP and causal
attention weights. The patching engine and the head-role scorer both compute with these."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from acdc_compare.types import Normalization


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


def rotary_tables(dim: int, base: float, n_positions: int, device: torch.device | str,
                  dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [n_positions, dim] in the rotate-half layout (computed in float64, returned in dtype)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, device=device, dtype=torch.float64) / dim))
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
        W_out: torch.Tensor, b_out: torch.Tensor, act: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """x [..., d] (already normalised) -> [..., d]; gated (act(x W_gate) * (x W_in + b_in)) when W_gate is
    given."""
    pre = x @ W_in + b_in
    hidden = act(x @ W_gate) * pre if W_gate is not None else act(pre)
    return hidden @ W_out + b_out


def causal_attention_rows(queries: torch.Tensor, keys: torch.Tensor, query_positions: torch.Tensor,
                          d_head: int) -> torch.Tensor:
    """Attention weights of one query row per prompt: queries [..., n, dh] at query_positions [n], keys
    [..., n, P, dh] -> [..., n, P], softmax over the keys up to each query's position (zero beyond it)."""
    p = keys.shape[-2]
    scores = torch.einsum("...ne,...npe->...np", queries, keys) / math.sqrt(d_head)
    causal = torch.arange(p, device=keys.device)[None, :] <= query_positions.to(keys.device)[:, None]
    return torch.softmax(scores.masked_fill(~causal, -math.inf), dim=-1)

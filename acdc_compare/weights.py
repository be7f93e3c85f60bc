"""`ModelWeights`: a transformer's parameters as plain tensors, the only thing the patching engine reads.

A backend (`acdc_compare.backends`) fills it from a loaded model; nothing below the backends knows where
the tensors came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, fields

import torch

from acdc_compare.types import ModelConfig


@dataclass(frozen=True)
class ModelWeights:
    """Plain tensors in TransformerLens layout, all on the model's device and dtype.

    Shapes: W_E [vocab, d]; W_pos [n_ctx, d] or None; W_Q [L, H, d, dh]; W_K, W_V [L, G, d, dh];
    W_O [L, H, dh, d]; b_Q [L, H, dh]; b_K, b_V [L, G, dh]; b_O [L, d]; ln1_w/ln2_w [L, d] (ln*_b or None
    for RMSNorm; ln1_w None without pre-norms); W_in, W_gate [L, d, d_mlp] (W_gate None without a gated
    MLP); b_in [L, d_mlp]; W_out [L, d_mlp, d]; b_out [L, d]; lnf_w, lnf_b [d]; W_U [d, vocab]; b_U [vocab].
    Optional: ln1_post_w / ln2_post_w [L, d], the RMSNorms on the attention / MLP outputs; q_norm_w [L, dh]
    or [L, H * dh] and k_norm_w [L, dh] or [L, G * dh], the q/k RMSNorms (`ModelConfig.qk_norm`). Norm
    weights are the multipliers actually applied (Gemma's 1 + w already added).
    """

    config: ModelConfig
    W_E: torch.Tensor
    W_pos: torch.Tensor | None
    W_Q: torch.Tensor
    W_K: torch.Tensor
    W_V: torch.Tensor
    W_O: torch.Tensor
    b_Q: torch.Tensor
    b_K: torch.Tensor
    b_V: torch.Tensor
    b_O: torch.Tensor
    ln1_w: torch.Tensor | None
    ln1_b: torch.Tensor | None
    ln2_w: torch.Tensor | None
    ln2_b: torch.Tensor | None
    W_in: torch.Tensor | None
    W_gate: torch.Tensor | None
    b_in: torch.Tensor | None
    W_out: torch.Tensor | None
    b_out: torch.Tensor | None
    lnf_w: torch.Tensor
    lnf_b: torch.Tensor | None
    W_U: torch.Tensor
    b_U: torch.Tensor
    b_gate: torch.Tensor | None = None  # [L, d_mlp]: the gate projection's bias (Llama with mlp_bias)
    ln1_post_w: torch.Tensor | None = None
    ln2_post_w: torch.Tensor | None = None
    q_norm_w: torch.Tensor | None = None
    k_norm_w: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        return self.W_E.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_E.dtype

    def digest(self) -> str:
        """`tensors_digest` of every tensor field: another set of weights gets another digest."""
        named = [(f.name, getattr(self, f.name)) for f in fields(self)]
        return tensors_digest([(n, t) for n, t in named if isinstance(t, torch.Tensor)])


def tensors_digest(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 (16 hex digits) over each tensor's name, shape, dtype and every byte of its values, in the
    given order: weights that differ in a single element get another digest."""
    h = hashlib.sha256()
    for name, t in named:
        h.update(f"{name}{tuple(t.shape)}{t.dtype}\0".encode())
        if t.numel():
            h.update(t.detach().reshape(-1).contiguous().view(torch.uint8).cpu().numpy().tobytes())
    return h.hexdigest()[:16]

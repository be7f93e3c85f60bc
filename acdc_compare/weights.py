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


def random_weights(cfg: ModelConfig, *, dtype: torch.dtype = torch.float32, seed: int = 0,
                   tied_embeddings: bool = False, n_ctx: int = 0, std: float = 0.02) -> ModelWeights:
    """Random weights of shape `cfg` (normal, `std`; norms 1, biases 0), made straight in `dtype` without
    any model library: what memory and time depend on, for shapes whose real weights are not at hand.
    `tied_embeddings` makes W_U a view of W_E (one copy, as tied models hold it); `n_ctx` > 0 adds a learned
    position table."""
    gen = torch.Generator().manual_seed(seed)
    L, H, G, d, dh, F, V = (cfg.n_layers, cfg.n_heads, cfg.kv_heads, cfg.d_model, cfg.d_head, cfg.d_mlp,
                            cfg.d_vocab)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=dtype).mul_(std)

    def const(value: float, *shape: int) -> torch.Tensor:
        return torch.full(shape, value, dtype=dtype)

    layer_norm = cfg.normalization == "LN"
    pre = cfg.pre_norms
    W_E = normal(V, d)
    q_width = H * dh if cfg.qk_norm == "full" else dh
    k_width = G * dh if cfg.qk_norm == "full" else dh
    return ModelWeights(
        config=cfg, W_E=W_E, W_pos=normal(n_ctx, d) if n_ctx else None,
        W_Q=normal(L, H, d, dh), W_K=normal(L, G, d, dh), W_V=normal(L, G, d, dh), W_O=normal(L, H, dh, d),
        b_Q=const(0, L, H, dh), b_K=const(0, L, G, dh), b_V=const(0, L, G, dh), b_O=const(0, L, d),
        ln1_w=const(1, L, d) if pre else None, ln1_b=const(0, L, d) if pre and layer_norm else None,
        ln2_w=const(1, L, d) if pre else None, ln2_b=const(0, L, d) if pre and layer_norm else None,
        W_in=normal(L, d, F), W_gate=normal(L, d, F) if cfg.gated_mlp else None, b_in=const(0, L, F),
        W_out=normal(L, F, d), b_out=const(0, L, d), lnf_w=const(1, d), lnf_b=const(0, d) if layer_norm else None,
        W_U=W_E.T if tied_embeddings else normal(d, V), b_U=const(0, V),
        ln1_post_w=const(1, L, d) if cfg.post_norms else None, ln2_post_w=const(1, L, d) if cfg.post_norms else None,
        q_norm_w=const(1, L, q_width) if cfg.qk_norm else None, k_norm_w=const(1, L, k_width) if cfg.qk_norm else None)

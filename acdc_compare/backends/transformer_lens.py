"""Reading a TransformerLens bridge into plain tensors and running it.

`extract_weights` reads a bridge's parameters into `ModelWeights` (with its `ModelConfig`,
`bridge_config.model_config`), which is all the patching engine uses; `run_logits` is the bridge's own
forward; `tokenizer` its tokenizer.
"""

from __future__ import annotations

from typing import Any

import torch

from acdc_compare.backends.bridge_config import model_config, model_name, norm_param
from acdc_compare.backends.bridge_loading import ModelLoadError
from acdc_compare.weights import ModelWeights


def extract_weights(model: Any) -> ModelWeights:
    """Read a bridge's weights into `ModelWeights` (views where possible, no copies of big matrices)."""
    cfg = model_config(model)
    L, H, G, dh, d = cfg.n_layers, cfg.n_heads, cfg.kv_heads, cfg.d_head, cfg.d_model
    W_E = model.W_E.detach()
    dev, dt = W_E.device, W_E.dtype

    def opt(attr: str, shape: tuple[int, ...]) -> torch.Tensor:
        try:
            value = getattr(model, attr)
        except AttributeError:
            value = None
        return torch.zeros(shape, device=dev, dtype=dt) if value is None else value.detach().reshape(shape)

    def stack_norm(which: str, part: str, module: str = "") -> torch.Tensor | None:
        tensors = []
        for block in model.blocks:
            owner = getattr(block, module) if module else block
            if not hasattr(owner, which):
                return None
            t = norm_param(getattr(owner, which), part)
            if t is None:
                return None
            tensors.append(_norm_offset(model, t) if part == "weight" else t)
        return torch.stack(tensors)

    W_pos = None
    if cfg.positional == "standard":
        W_pos = model.W_pos.detach()
    has_mlp = not cfg.attn_only
    return ModelWeights(
        config=cfg, W_E=W_E, W_pos=W_pos,
        W_Q=model.W_Q.detach().reshape(L, H, d, dh), W_K=model.W_K.detach().reshape(L, G, d, dh),
        W_V=model.W_V.detach().reshape(L, G, d, dh), W_O=model.W_O.detach().reshape(L, H, dh, d),
        b_Q=opt("b_Q", (L, H, dh)), b_K=opt("b_K", (L, G, dh)), b_V=opt("b_V", (L, G, dh)),
        b_O=opt("b_O", (L, d)),
        ln1_w=stack_norm("ln1", "weight"), ln1_b=stack_norm("ln1", "bias"),
        ln2_w=stack_norm("ln2", "weight") if has_mlp else None,
        ln2_b=stack_norm("ln2", "bias") if has_mlp else None,
        W_in=model.W_in.detach() if has_mlp else None,
        W_gate=model.W_gate.detach() if has_mlp and cfg.gated_mlp else None,
        b_in=opt("b_in", (L, cfg.d_mlp)) if has_mlp else None,
        W_out=model.W_out.detach() if has_mlp else None,
        b_out=opt("b_out", (L, d)) if has_mlp else None,
        lnf_w=_norm_offset(model, norm_param(model.ln_final, "weight")), lnf_b=norm_param(model.ln_final, "bias"),
        W_U=model.W_U.detach(), b_U=opt("b_U", (model.W_U.shape[1],)),
        b_gate=_gate_bias(model) if has_mlp and cfg.gated_mlp else None,
        ln1_post_w=stack_norm("ln1_post", "weight"), ln2_post_w=stack_norm("ln2_post", "weight") if has_mlp else None,
        q_norm_w=stack_norm("q_norm", "weight", "attn"), k_norm_w=stack_norm("k_norm", "weight", "attn"),
    )


def _norm_offset(model: Any, weight: torch.Tensor) -> torch.Tensor:
    """The multiplier a norm applies: Gemma's RMSNorm multiplies by 1 + weight (`rmsnorm_uses_offset`)."""
    return weight + 1 if getattr(model.cfg, "rmsnorm_uses_offset", False) else weight


def _gate_bias(model: Any) -> torch.Tensor | None:
    """The gate projection's bias [L, d_mlp] (Llama with mlp_bias), which the bridge has no attribute for."""
    biases = []
    for block in model.blocks:
        gate = getattr(block.mlp, "gate", None)
        module = getattr(gate, "original_component", None) or gate
        bias = getattr(module, "bias", None)
        if bias is None:
            return None
        biases.append(bias.detach())
    return torch.stack(biases)


def tokenizer(model: Any) -> Any:
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise ModelLoadError(f"model {model_name(model)!r} has no tokenizer; build tasks from token ids instead")
    return tok


@torch.no_grad()
def run_logits(model: Any, tokens: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Plain forward: logits [N, P, vocab] for token ids [N, P] (no BOS is added)."""
    device = model.W_E.device
    outs = [model(tokens[i:i + batch_size].to(device), return_type="logits") for i in range(0, len(tokens), batch_size)]
    return torch.cat(outs)

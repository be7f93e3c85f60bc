"""Tiny random TransformerLens bridges for tests: GPT-2, Llama (grouped-query attention), Mistral, GPT-NeoX,
Qwen3, Gemma 2 and 3, Phi-3 and OLMo-2, built offline and seeded."""

from __future__ import annotations

from typing import Any, Literal

import torch

from acdc_compare.backends.bridge_loading import prepare_bridge

TinyArch = Literal["gpt2", "llama", "mistral", "neox", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "olmo2"]

# (config class, model class) of the Llama-like architectures, and the extra config fields each gets
_LLAMA_LIKE = {
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
    "gemma": ("GemmaConfig", "GemmaForCausalLM"),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM"),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM"),
    "phi3": ("Phi3Config", "Phi3ForCausalLM"),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM"),
}


def tiny_model(arch: TinyArch = "gpt2", *, n_layers: int = 2, n_heads: int = 4, n_kv_heads: int | None = None,
               d_model: int = 32, d_mlp: int | None = None, vocab_size: int = 64, n_ctx: int = 64,
               seed: int = 0, init_range: float = 0.3, dtype: torch.dtype = torch.float32,
               config_overrides: dict[str, Any] | None = None) -> Any:
    """A tiny random model for tests, built offline and seeded: GPT-2, Llama (grouped-query attention with
    `n_kv_heads`), Mistral (Llama with a sliding window), GPT-NeoX (parallel attention/MLP, partial
    rotary), Qwen3 (q/k norms), Gemma ((1 + w) norms, embedding scale), Gemma 2 (pre/post norms,
    soft-capping, alternating sliding windows with a window of 3 so it bites on short prompts), Gemma 3 (q/k
    norms, local rotary), Phi-3 (fused projections) or OLMo-2 (post-norms only, q/k norms over all heads).
    `config_overrides` are extra transformers config fields (e.g. `{"mlp_bias": True}`), to build the
    settings the engine must get exact or refuse. `init_range` ~0.3 gives tasks with real effects; the
    transformers default (0.02) makes every model nearly uniform."""
    import transformers
    from transformer_lens.model_bridge.sources import build_bridge_from_module

    torch.manual_seed(seed)
    d_mlp = d_mlp or 4 * d_model
    extra = dict(config_overrides or {})
    if arch == "gpt2":
        cfg = transformers.GPT2Config(n_layer=n_layers, n_head=n_heads, n_embd=d_model, n_inner=d_mlp,
                                      vocab_size=vocab_size, n_positions=n_ctx, initializer_range=init_range,
                                      **extra)
        hf, arch_name = transformers.GPT2LMHeadModel(cfg), "GPT2LMHeadModel"
    elif arch in _LLAMA_LIKE:
        llama_like = dict(num_hidden_layers=n_layers, num_attention_heads=n_heads,
                          num_key_value_heads=n_kv_heads or n_heads, hidden_size=d_model, intermediate_size=d_mlp,
                          vocab_size=vocab_size, max_position_embeddings=n_ctx, initializer_range=init_range,
                          rope_theta=10000.0, tie_word_embeddings=False,
                          pad_token_id=None)  # no all-zero padding row in the embedding
        config_name, arch_name = _LLAMA_LIKE[arch]
        fields = {**llama_like, **_family_defaults(arch, n_ctx, d_model // n_heads), **extra}
        cfg = getattr(transformers, config_name)(**fields)
        hf = getattr(transformers, arch_name)(cfg)
    elif arch == "neox":
        cfg = transformers.GPTNeoXConfig(num_hidden_layers=n_layers, num_attention_heads=n_heads,
                                         hidden_size=d_model, intermediate_size=d_mlp, vocab_size=vocab_size,
                                         max_position_embeddings=n_ctx, initializer_range=init_range,
                                         **{"rotary_pct": 0.5, "use_parallel_residual": True,
                                            "tie_word_embeddings": False, **extra})
        hf, arch_name = transformers.GPTNeoXForCausalLM(cfg), "GPTNeoXForCausalLM"
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of gpt2, neox, {', '.join(_LLAMA_LIKE)}")
    _randomize_norms(hf, seed)
    hf = hf.to(dtype).eval()
    bridge = build_bridge_from_module(hf, arch_name, hf_config=cfg, dtype=dtype)
    bridge.cfg.model_name = f"tiny-{arch}-L{n_layers}H{n_heads}-s{seed}"
    return prepare_bridge(bridge)


def _family_defaults(arch: str, n_ctx: int, head_dim: int) -> dict[str, Any]:
    """Config fields that make a tiny model of the family exercise what sets the family apart."""
    if arch == "mistral":
        return {"sliding_window": n_ctx}
    if arch == "gemma2":
        return {"head_dim": head_dim, "sliding_window": 3, "query_pre_attn_scalar": 2 * head_dim,
                "attn_logit_softcapping": 5.0, "final_logit_softcapping": 3.0}
    if arch == "gemma3":
        return {"head_dim": head_dim, "sliding_window": 3, "query_pre_attn_scalar": 2 * head_dim,
                "sliding_window_pattern": 2, "rope_theta": 1000.0, "rope_local_base_freq": 10.0}
    if arch in ("qwen3", "gemma"):
        return {"head_dim": head_dim}
    return {}


def _randomize_norms(hf: torch.nn.Module, seed: int) -> None:
    """Norm weights of 1 and biases of 0 would hide layer-norm mistakes; make them random but positive."""
    gen = torch.Generator().manual_seed(seed + 1)
    for name, p in hf.named_parameters():
        if p.dim() == 1 and ("norm" in name or ".ln" in name or "ln_f" in name or "layernorm" in name):
            with torch.no_grad():
                if name.endswith("weight"):
                    p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=gen))
        elif p.dim() == 1 and name.endswith("bias"):
            with torch.no_grad():
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))

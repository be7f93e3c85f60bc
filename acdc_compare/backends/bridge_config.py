"""Reading a bridge's shape into a `ModelConfig`, and refusing, before any forward, the model families and
transformers config settings the patching engine does not implement (`UnsupportedModelError`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from acdc_compare.types import ModelConfig, QKNorm, RopeScaling

_ARCHITECTURES = {
    "GPT2LMHeadModel": "gpt2",
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "llama",
    "Qwen3ForCausalLM": "llama",
    "Phi3ForCausalLM": "llama",
    "Olmo2ForCausalLM": "llama",
    "GemmaForCausalLM": "llama",
    "Gemma2ForCausalLM": "llama",
    "Gemma3ForCausalLM": "llama",
    "GPTNeoXForCausalLM": "neox",
}


class UnsupportedModelError(ValueError):
    """The model's architecture, or a setting in its config, is not one the patching engine implements."""


def architecture(model: Any) -> str:
    arch = getattr(model.cfg, "architecture", None)
    if arch not in _ARCHITECTURES:
        raise UnsupportedModelError(
            f"architecture {arch!r} is not supported by the patching engine; supported: "
            f"{', '.join(sorted(_ARCHITECTURES))}"
        )
    return _ARCHITECTURES[arch]


def model_name(model: Any) -> str:
    return str(getattr(model.cfg, "model_name", None) or "unnamed")


def model_config(model: Any) -> ModelConfig:
    """The model's shape as a ModelConfig (a Graph is built from this alone)."""
    cfg = model.cfg
    family = architecture(model)
    rotary = cfg.positional_embedding_type == "rotary" or family == "neox"
    rotary_dim = int(cfg.rotary_dim or round(cfg.d_head * _rotary_pct(model))) if rotary else None
    check_supported(model)
    hf_cfg = model.original_model.config
    neox_parallel = family == "neox" and bool(getattr(hf_cfg, "use_parallel_residual", True))
    block, attn = model.blocks[0], model.blocks[0].attn
    family_field = _family_field(model)
    query_pre_attn_scalar = family_field("query_pre_attn_scalar")
    return ModelConfig(
        n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_model=cfg.d_model, d_head=cfg.d_head,
        d_mlp=cfg.d_mlp, d_vocab=cfg.d_vocab_out if cfg.d_vocab_out and cfg.d_vocab_out > 0 else cfg.d_vocab,
        n_kv_heads=cfg.n_key_value_heads or cfg.n_heads, attn_only=bool(cfg.attn_only),
        parallel_attn_mlp=bool(cfg.parallel_attn_mlp) or neox_parallel,
        normalization="RMS" if cfg.normalization_type in ("RMS", "RMSPre") else "LN",
        positional="rotary" if rotary else "standard",
        rotary_dim=rotary_dim, rotary_base=float(_rotary_base(model)), act_fn=str(cfg.act_fn),
        gated_mlp=bool(cfg.gated_mlp), eps=float(cfg.eps), name=model_name(model),
        rope_scaling=_rope_scaling(model) if rotary else None,
        sliding_window=_sliding_window(model),
        scale_attn_by_inverse_layer=bool(getattr(hf_cfg, "scale_attn_by_inverse_layer_idx", False)),
        sliding_layers=_sliding_layers(model), local_rotary_base=_local_rotary_base(model),
        pre_norms=hasattr(block, "ln1"), post_norms=hasattr(block, "ln1_post"),
        qk_norm=_qk_norm_kind(attn, cfg.d_head), embedding_scale=_embedding_scale(model),
        query_scale=None if query_pre_attn_scalar is None else float(query_pre_attn_scalar) ** -0.5,
        attn_softcap=family_field("attn_logit_softcapping"), final_softcap=family_field("final_logit_softcapping"),
    )


def _family_field(model: Any) -> Callable[[str], float | None]:
    """Reads a float config field that the model's family applies (`_FAMILY_FIELDS`), None when unset."""
    implemented = _FAMILY_FIELDS.get(model.cfg.architecture, frozenset())
    hf_cfg = model.original_model.config

    def read(field: str) -> float | None:
        value = getattr(hf_cfg, field, None) if field in implemented else None
        return None if value is None else float(value)
    return read


def _qk_norm_kind(attn: Any, d_head: int) -> QKNorm | None:
    """'head' (RMS over each head's d_head: Qwen3, Gemma 3) or 'full' (over all heads: OLMo-2) for an
    attention with q/k norms, None without."""
    if not hasattr(attn, "q_norm"):
        return None
    return "head" if norm_param(attn.q_norm, "weight").shape[-1] == d_head else "full"


def _embedding_scale(model: Any) -> float:
    """The factor the embedding module multiplies its output by (Gemma's sqrt(d_model)), 1 for others."""
    embed = getattr(model.embed, "original_component", None) or model.embed
    scale = getattr(embed, "scalar_embed_scale", None)
    if scale is None and isinstance(getattr(embed, "embed_scale", None), (torch.Tensor, float)):
        scale = embed.embed_scale
    return 1.0 if scale is None else float(scale)


# config fields a family's own modules apply (and the engine implements); on any other family they are refused
_GEMMA_FIELDS = frozenset({"attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar"})
_FAMILY_FIELDS = {"Gemma2ForCausalLM": _GEMMA_FIELDS, "Gemma3ForCausalLM": _GEMMA_FIELDS}

_REFUSED_IF_SET = {
    "attn_logit_softcapping": "attention-score soft-capping",
    "final_logit_softcapping": "final-logit soft-capping",
    "query_pre_attn_scalar": "a custom attention-score scale",
    "attention_multiplier": "an attention-score multiplier",
    "embedding_multiplier": "an embedding multiplier",
    "residual_multiplier": "a residual multiplier",
    "logits_scaling": "logit scaling",
}
_REFUSED_IF_TRUE = {
    "qk_layernorm": "layer norms on queries and keys",
    "use_qk_norm": "layer norms on queries and keys",
    "sandwich_norm": "sandwich norms",
}
_ROPE_TYPES = ("default", "linear", "llama3")


def check_supported(model: Any) -> None:
    """Refuse, before any forward, transformers config settings the engine does not implement (it would
    otherwise compute something else than the model): `UnsupportedModelError` naming the field."""
    hf_cfg = model.original_model.config
    implemented = _FAMILY_FIELDS.get(model.cfg.architecture, frozenset())
    for field, what in _REFUSED_IF_SET.items():
        value = getattr(hf_cfg, field, None)
        if value is not None and field not in implemented:
            _refuse(model, field, value, what)
    for field, what in _REFUSED_IF_TRUE.items():
        if getattr(hf_cfg, field, False):
            _refuse(model, field, getattr(hf_cfg, field), what)
    if getattr(hf_cfg, "scale_attn_weights", True) is False:
        _refuse(model, "scale_attn_weights", False, "attention scores without the 1/sqrt(d_head) scale")
    for layer_type in ("full_attention", "sliding_attention"):
        rope = _rope_parameters(hf_cfg, layer_type)
        rope_type = _rope_type(rope)
        allowed = _ROPE_TYPES if layer_type == "full_attention" or not _nested_rope(hf_cfg) else ("default",)
        if rope_type not in allowed:
            _refuse(model, "rope_parameters['rope_type']", rope_type,
                    f"rotary scaling of this type on {layer_type} layers (implemented: {', '.join(allowed)})")
        if float(rope.get("attention_factor") or 1.0) != 1.0:
            _refuse(model, "rope_parameters['attention_factor']", rope["attention_factor"],
                    "a rotary attention factor")
    kinds = set(getattr(hf_cfg, "layer_types", None) or ())
    if kinds - {"full_attention", "sliding_attention"}:
        _refuse(model, "layer_types", sorted(kinds), "attention kinds other than full and sliding")
    if hasattr(model.blocks[0], "ln1_post") and model.cfg.normalization_type not in ("RMS", "RMSPre"):
        _refuse(model, "normalization_type", model.cfg.normalization_type, "post-norms that are not RMSNorms")


def _refuse(model: Any, field: str, value: Any, what: str) -> None:
    raise UnsupportedModelError(
        f"model {model_name(model)!r} sets {field}={value!r} ({what}), which the patching engine does not "
        "implement: its circuits would be wrong. Use a model without this setting, or measure circuits with "
        "the bridge's own hooks (acdc_compare.backends.hook_oracle), which is exact but slow."
    )


def _rope_parameters(hf_cfg: Any, layer_type: str = "full_attention") -> dict[str, Any]:
    """The rope parameters of one layer type: Gemma 3 nests them per type, others have one set."""
    params = getattr(hf_cfg, "rope_parameters", None) or getattr(hf_cfg, "rope_scaling", None) or {}
    if not isinstance(params, dict):
        return {}
    if _nested_rope(hf_cfg):
        return dict(params.get(layer_type) or {})
    return dict(params)


def _nested_rope(hf_cfg: Any) -> bool:
    params = getattr(hf_cfg, "rope_parameters", None)
    return isinstance(params, dict) and isinstance(params.get("full_attention"), dict)


def _rope_type(rope: dict[str, Any]) -> str:
    """The rotary scaling kind of a config's rope parameters ('default' when none is set)."""
    return rope.get("rope_type", rope.get("type", "default")) or "default"


def _rope_scaling(model: Any) -> RopeScaling | None:
    hf_cfg = model.original_model.config
    rope = _rope_parameters(hf_cfg)
    kind = _rope_type(rope)
    if kind == "default":
        return None
    if kind == "linear":
        return RopeScaling("linear", float(rope["factor"]))
    return RopeScaling("llama3", float(rope["factor"]), float(rope["low_freq_factor"]),
                       float(rope["high_freq_factor"]), int(rope["original_max_position_embeddings"]))


def _sliding_window(model: Any) -> int | None:
    """The attention window transformers applies: every layer sliding (`layer_types`), or, without
    `layer_types`, `sliding_window` unless `use_sliding_window` is off (Qwen2)."""
    hf_cfg = model.original_model.config
    window = getattr(hf_cfg, "sliding_window", None)
    if window is None:
        return None
    kinds = set(getattr(hf_cfg, "layer_types", None) or ())
    if kinds:
        return int(window) if "sliding_attention" in kinds else None
    return int(window) if getattr(hf_cfg, "use_sliding_window", True) else None


def _sliding_layers(model: Any) -> tuple[bool, ...] | None:
    """Which layers slide, from mixed `layer_types` (Gemma 2/3); None when all layers are alike."""
    kinds = list(getattr(model.original_model.config, "layer_types", None) or ())
    if len(set(kinds)) < 2:
        return None
    return tuple(kind == "sliding_attention" for kind in kinds)


def _local_rotary_base(model: Any) -> float | None:
    """Gemma 3's rotary base on sliding layers, when it has its own."""
    hf_cfg = model.original_model.config
    if not _nested_rope(hf_cfg):
        return None
    local = _rope_parameters(hf_cfg, "sliding_attention")
    return float(local["rope_theta"]) if "rope_theta" in local else None


def _rotary_pct(model: Any) -> float:
    hf_cfg = model.original_model.config
    params = _rope_parameters(hf_cfg)
    default = getattr(hf_cfg, "partial_rotary_factor", None) or getattr(hf_cfg, "rotary_pct", None) or 1.0
    return float(params.get("partial_rotary_factor", default))


def _rotary_base(model: Any) -> float:
    hf_cfg = model.original_model.config
    params = _rope_parameters(hf_cfg)
    if "rope_theta" in params:
        return float(params["rope_theta"])
    return float(getattr(hf_cfg, "rope_theta", None) or model.cfg.rotary_base or 10000.0)


def norm_param(norm_bridge: Any, part: str) -> torch.Tensor | None:
    """A norm's `weight` or `bias`, detached, read from the module the bridge wraps; None when it has none."""
    module = getattr(norm_bridge, "original_component", None) or norm_bridge
    value = getattr(module, part, None)
    return None if value is None else value.detach()

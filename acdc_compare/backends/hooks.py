"""Reading activations out of a TransformerLens bridge with its own hooks: attention patterns, head outputs,
residual streams, and attention rows under head ablations (used by head-role scoring)."""

from __future__ import annotations

from typing import Any

import torch


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

"""The patcher of a loaded bridge: the fast patching engine on its weights, checked against the bridge's
own forward, or, where the engine refuses the model, the exact but slower hook-based fallback."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from acdc_compare.backends.bridge_config import UnsupportedModelError, model_name
from acdc_compare.backends.hook_patcher import FallbackError, HookPatcher
from acdc_compare.backends.transformer_lens import extract_weights, run_logits
from acdc_compare.patching import Patcher


class EngineMismatchError(UnsupportedModelError):
    """The engine's all-kept forward differs from the bridge's own forward on the preparation probe."""


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

"""Small tensor helpers of the patching engine's stages: optional parameters, direct edges, all-one masks."""

from __future__ import annotations

import torch


def opt(t: torch.Tensor | None, index: tuple) -> torch.Tensor | None:
    """An optional parameter indexed (one index) or reshaped (several); None stays None."""
    if t is None:
        return None
    if len(index) == 1:
        return t[index[0]]
    return t.reshape(index)


def direct(corr: torch.Tensor, x: torch.Tensor, m: torch.Tensor, ref_diff: torch.Tensor | None) -> torch.Tensor:
    """A direct edge: lerp(ablated q/k/v, this run's, mask). Skipped when every mask is 1 unless gradients
    are wanted; with a reference difference the mask gradient multiplies it instead of x - corr."""
    if not m.requires_grad:
        return x if all_one(m) else torch.lerp(corr.expand_as(x), x, m)
    if ref_diff is None:
        return torch.lerp(corr.expand_as(x), x, m)
    return torch.lerp(corr.expand_as(x), x, m.detach()) + (m - m.detach()) * ref_diff


def all_one(mask: torch.Tensor) -> bool:
    """Whether every entry of `mask` is 1."""
    return bool((mask == 1).all())

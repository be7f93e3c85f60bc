"""The uncertainty of a proportion measured on n prompts: the one place the project's interval maths lives.

`Proportion(value, n)` carries a Wilson score interval (95% by default): unlike value +- 1.96 standard errors it
stays inside [0, 1] and keeps a sensible width at 0% or 100%, which small prompt sets (n = 20) often give.

`bootstrap_interval(values)` gives a mean over prompts (per-head mover scores, say) its percentile-bootstrap
interval: the prompts are resampled with replacement, the same draws for every column, from a fixed seed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile: a two-sided 95% interval


def wilson_interval(value: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `value` observed on `n` trials; (0, 1) when n is 0, NaNs for
    a NaN value."""
    if math.isnan(value):
        return math.nan, math.nan
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a proportion lies in [0, 1], got {value!r}")
    if n <= 0:
        return 0.0, 1.0
    z2 = z * z
    centre = (value + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(value * (1 - value) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_indices(n: int, n_resamples: int = 1000, seed: int = 0) -> torch.Tensor:
    """[n_resamples, n] indices drawn uniformly with replacement from range(n), from a generator seeded with
    `seed` (the same draws every call)."""
    if n < 1 or n_resamples < 1:
        raise ValueError(f"need n >= 1 and n_resamples >= 1, got n={n}, n_resamples={n_resamples}")
    return torch.randint(0, n, (n_resamples, n), generator=torch.Generator().manual_seed(seed))


def bootstrap_interval(values: Any, weights: Any = None, *, level: float = 0.95, n_resamples: int = 1000,
                       seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The percentile-bootstrap `level` interval of the (weighted) mean over the first axis of `values`.

    values: [n, ...] (one row per prompt); weights: [n] or None (a row's weight, e.g. how many scored positions
    its value averages: the statistic is then sum(w x v) / sum(w), which on the full sample is the mean over
    all scored positions). Each of `n_resamples` resamples draws n rows with replacement
    (`bootstrap_indices(n, n_resamples, seed)`, the same rows for every column); the interval is the
    (1 - level) / 2 and (1 + level) / 2 quantiles (linear interpolation) of the resampled statistics.
    Returns (low, high) shaped values.shape[1:], float64. Rows of zero weight are dropped first; with no row
    left, or NaN values, the bounds are NaN."""
    v = torch.as_tensor(values, dtype=torch.float64).cpu()
    if v.ndim == 0:
        raise ValueError("values needs a first axis (one row per prompt)")
    w = torch.ones(v.shape[0], dtype=torch.float64) if weights is None else torch.as_tensor(
        weights, dtype=torch.float64).cpu().reshape(-1)
    if w.shape[0] != v.shape[0]:
        raise ValueError(f"{w.shape[0]} weights for {v.shape[0]} rows")
    if (w < 0).any():
        raise ValueError("weights must be >= 0")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    keep = w > 0
    v, w = v[keep], w[keep]
    rest = v.shape[1:]
    if v.shape[0] == 0:
        nan = torch.full(rest, math.nan, dtype=torch.float64)
        return nan, nan.clone()
    n = v.shape[0]
    flat = v.reshape(n, -1)
    idx = bootstrap_indices(n, n_resamples, seed)
    counts = torch.zeros(n_resamples, n, dtype=torch.float64).scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    stats = (counts @ (flat * w[:, None])) / (counts @ w)[:, None]  # [B, K]
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = torch.quantile(stats, q, dim=0)  # NaN where a column holds NaN
    return low.reshape(rest), high.reshape(rest)


@dataclass(frozen=True)
class Proportion:
    """A proportion observed on `n` trials with its Wilson interval (`low`, `high`)."""

    value: float
    n: int
    z: float = Z_95

    @property
    def low(self) -> float:
        return wilson_interval(self.value, self.n, self.z)[0]

    @property
    def high(self) -> float:
        return wilson_interval(self.value, self.n, self.z)[1]

    def above(self, level: float) -> bool:
        """The whole interval lies above `level`."""
        return self.low > level

    def below(self, level: float) -> bool:
        """The whole interval lies below `level`."""
        return self.high < level

    def overlaps(self, other: Proportion) -> bool:
        """The two intervals share a point: the data do not tell the two proportions apart."""
        return self.low <= other.high and other.low <= self.high

    def interval(self) -> str:
        """'43-82%': the interval in whole percents."""
        return f"{100 * self.low:.0f}-{100 * self.high:.0f}%"

    def short(self) -> str:
        """'65% [43-82%]': the value and its interval, for table cells."""
        return f"{100 * self.value:.0f}% [{self.interval()}]"

    def describe(self) -> str:
        """'65% (95% CI 43-82%, n=20)'."""
        return f"{100 * self.value:.0f}% (95% CI {self.interval()}, n={self.n})"


__all__ = ["Proportion", "Z_95", "bootstrap_indices", "bootstrap_interval", "wilson_interval"]

"""The uncertainty of a proportion measured on n prompts: the one place the project's interval maths lives.

`Proportion(value, n)` carries a Wilson score interval (95% by default): unlike value +- 1.96 standard errors it
stays inside [0, 1] and keeps a sensible width at 0% or 100%, which small prompt sets (n = 20) often give."""

from __future__ import annotations

import math
from dataclasses import dataclass

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


__all__ = ["Proportion", "Z_95", "wilson_interval"]

"""Numbers as people read them: one formatter for every number the tools print, so a metric that is zero up
to rounding shows as 0 (not 7.772e-13) and nothing shows as "-0" or "-0.000"."""

from __future__ import annotations

import math

ZERO_TOL = 1e-9  # |x| below ZERO_TOL x scale prints as 0


def num(x: float | None, digits: int = 4, *, fixed: int | None = None, scale: float = 1.0) -> str:
    """`x` with `digits` significant digits ("g"), or `fixed` decimals when given; "0" when |x| is below
    ZERO_TOL x |scale| (the size of the quantities it is compared with) or rounds to zero; never "-0";
    "n/a" for None and NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if abs(x) < ZERO_TOL * max(abs(scale), ZERO_TOL):
        x = 0.0
    text = f"{x:.{fixed}f}" if fixed is not None else f"{x:.{digits}g}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    if fixed is None and float(text) == 0:
        return "0"
    return text


def duration(seconds: float) -> str:
    """A wall time as people read it: "12 min", "5 h 3 min"."""
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:.0f} min"

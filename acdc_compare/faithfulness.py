"""Faithfulness (MIB, Mueller et al. 2025): how much of the full model's behaviour a circuit keeps, and MIB's
curves over circuit sizes (CPR, CMD). Pure functions on numbers and `Circuit`s."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from acdc_compare.circuit import Circuit
from acdc_compare.graph import Graph


def normalized_faithfulness(m_circuit: float, m_full: float, m_empty: float) -> float:
    """f = (m(C) - m(empty)) / (m(full) - m(empty)) (MIB, Mueller et al. 2025): 1 = the circuit performs like
    the full model, 0 = like the empty circuit (never -0.0, which KL's m(full) < m(empty) would give it).
    Undefined (ValueError) when m(full) == m(empty)."""
    if m_full == m_empty:
        raise ValueError(f"m(full) == m(empty) == {m_full}: normalised faithfulness is undefined")
    return (m_circuit - m_empty) / (m_full - m_empty) + 0.0


def log_spaced_fractions(n: int = 16, smallest: float = 1e-3) -> tuple[float, ...]:
    """n edge fractions evenly spaced in log scale from `smallest` to 1."""
    if n < 2 or not 0 < smallest < 1:
        raise ValueError(f"need n >= 2 and 0 < smallest < 1, got n={n}, smallest={smallest}")
    lo = math.log10(smallest)
    return tuple(10 ** (lo + (0 - lo) * i / (n - 1)) for i in range(n - 1)) + (1.0,)


DEFAULT_FRACTIONS: tuple[float, ...] = log_spaced_fractions()


def circuit_faithfulness(c: Circuit) -> float:
    """Normalised faithfulness of a discovered circuit from its stored metric values (NaN where they are
    missing or the task's effect is nil)."""
    m = c.metrics
    try:
        return normalized_faithfulness(m["circuit"], m["full"], m["empty"])
    except (KeyError, ValueError, ZeroDivisionError):
        return math.nan


@dataclass(frozen=True)
class FaithfulnessCurve:
    """Top-k-by-score circuits at several edge fractions and their faithfulness.

    `cpr` (higher is better) is the area under f and `cmd` (lower is better) the area under |1 - f|, both by
    the trapezoid rule over the fraction axis rescaled to width 1: x = (fraction - fractions[0]) /
    (fractions[-1] - fractions[0]) (or the same on log10(fraction) when `log_x`). A perfect circuit at every
    size (f = 1) gives cpr 1, cmd 0.
    """

    fractions: tuple[float, ...]
    sizes: tuple[int, ...]  # edges kept at each fraction
    metrics: tuple[float, ...]  # m(C) at each fraction
    faithfulness: tuple[float, ...]
    m_full: float
    m_empty: float
    cpr: float
    cmd: float


def _normalized_area(xs: Sequence[float], ys: Sequence[float]) -> float:
    width = xs[-1] - xs[0]
    if width <= 0:
        return float(ys[0])  # one point: its value stands for the whole (degenerate) axis
    area = sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]))
    return area / width


def faithfulness_curve(
    scores: torch.Tensor,
    graph: Graph,
    evaluate: Callable[[Circuit], float],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    *,
    m_full: float | None = None,
    m_empty: float | None = None,
    log_x: bool = False,
) -> FaithfulnessCurve:
    """Evaluate the circuits keeping the top ceil(fraction * n_edges) edges by score (ties broken by edge
    order, NaN last) at each fraction in (0, 1], normalise by the full and empty circuits (evaluated here
    unless given), and integrate CPR / CMD (see `FaithfulnessCurve`)."""
    fr = sorted(float(f) for f in fractions)
    if not fr or fr[0] <= 0 or fr[-1] > 1:
        raise ValueError(f"fractions must be non-empty and lie in (0, 1], got {list(fractions)}")
    n = graph.n_edges
    sizes = [min(n, math.ceil(f * n - 1e-9)) for f in fr]
    full = evaluate(Circuit.full(graph)) if m_full is None else m_full
    empty = evaluate(Circuit.empty(graph)) if m_empty is None else m_empty
    metrics = [float(evaluate(Circuit.from_scores(graph, scores, top_n=k))) for k in sizes]
    faith = [normalized_faithfulness(m, full, empty) for m in metrics]
    xs = [math.log10(f) for f in fr] if log_x else fr
    return FaithfulnessCurve(
        fractions=tuple(fr),
        sizes=tuple(sizes),
        metrics=tuple(metrics),
        faithfulness=tuple(faith),
        m_full=float(full),
        m_empty=float(empty),
        cpr=_normalized_area(xs, faith),
        cmd=_normalized_area(xs, [abs(1 - f) for f in faith]),
    )

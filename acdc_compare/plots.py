"""Small inline-SVG line plots for the report (faithfulness curves, threshold sweeps): generated here as
text, no matplotlib, no scripts; every label is escaped. `faithfulness_plot` and `sweep_plot` return
`report.Html` sections."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

from acdc_compare.fmt import ZERO_TOL
from acdc_compare.report import Html

PALETTE = ("#0072b2", "#e08a00", "#2a9d3a", "#d0312d", "#8155b8", "#444444", "#8fd3cc")
W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 340, 62, 150, 28, 48


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    start = math.ceil(lo / step - 1e-9) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _label(x: float, digits: int = 3) -> str:
    """`x` with up to `digits` significant digits: 0 as "0", very large or small values as 2e-04."""
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.') if '.' in mantissa else mantissa}e{exponent}"
    if x == int(x):
        return str(int(x))
    return f"{x:.{digits}g}"


def _tick_labels(ticks: Sequence[float]) -> list[str]:
    """The ticks' labels with the fewest digits (at least 1) that tell every tick apart: 0.99991 and 0.99992
    are not both "1", nor 1.5e-4 and 2e-4 both "2e-04"."""
    span = max((abs(t) for t in ticks), default=0.0)
    ticks = [0.0 if abs(t) < ZERO_TOL * span else t for t in ticks]  # 5.55e-17 from adding steps is 0
    for digits in range(3, 16):
        labels = [_label(t, digits) for t in ticks]
        if len(set(labels)) == len(labels):
            return labels
    return [repr(t) for t in ticks]


def line_plot(series: Mapping[str, Sequence[tuple[float, float]]], *, x_label: str, y_label: str,
              log_x: bool = False, title: str = "", y_range: tuple[float, float] | None = None) -> str:
    """An SVG line plot, one line with markers per series (non-finite points skipped), legend at the right."""
    points = {k: [(x, y) for x, y in v if math.isfinite(x) and math.isfinite(y) and (x > 0 or not log_x)]
              for k, v in series.items()}
    xs = [x for v in points.values() for x, _ in v]
    ys = [y for v in points.values() for _, y in v]
    if not xs:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="40"><text x="4" y="24">no data</text></svg>'
    fx = (lambda x: math.log10(x)) if log_x else (lambda x: x)
    x0, x1 = fx(min(xs)), fx(max(xs))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    y0, y1 = y_range or (min(ys), max(ys))
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (fx(x) - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * ph

    e = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="Helvetica, Arial, sans-serif" font-size="11">',
           f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fcfcfc" stroke="#bbb"/>']
    if title:
        out.append(f'<text x="{LEFT}" y="16" font-size="12" font-weight="bold">{e(title)}</text>')
    y_ticks = _ticks(y0, y1)
    for t, label in zip(y_ticks, _tick_labels(y_ticks)):
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>'
                   f'<text x="{LEFT - 5}" y="{py(t) + 4:.1f}" text-anchor="end">{e(label)}</text>')
    x_ticks = [10 ** k for k in range(math.ceil(x0 - 1e-9), math.floor(x1 + 1e-9) + 1)] if log_x \
        else _ticks(x0, x1)
    for t, label in zip(x_ticks, _tick_labels(x_ticks)):
        out.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#eee"/>'
                   f'<text x="{px(t):.1f}" y="{TOP + ph + 15}" text-anchor="middle">{e(label)}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 10}" text-anchor="middle">{e(x_label)}'
               f'{" (log scale)" if log_x else ""}</text>')
    out.append(f'<text transform="translate(14,{TOP + ph / 2}) rotate(-90)" text-anchor="middle">{e(y_label)}</text>')
    for i, (name, pts) in enumerate(points.items()):
        colour = PALETTE[i % len(PALETTE)]
        if pts:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(pts))
            out.append(f'<polyline class="series" data-series="{e(name)}" points="{path}" fill="none" '
                       f'stroke="{colour}" stroke-width="2"/>')
            out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"><title>{e(name)}: '
                    f'{e(_label(x))}, {e(_label(y))}</title></circle>' for x, y in pts]
        ly = TOP + 14 + 16 * i
        out.append(f'<line x1="{W - RIGHT + 10}" x2="{W - RIGHT + 30}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" '
                   f'stroke-width="2"/><text x="{W - RIGHT + 35}" y="{ly}">{e(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def faithfulness_plot(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], title: str) -> Html:
    """Normalised faithfulness against edges kept (log scale), one line per task: {task: (sizes, f)}."""
    svg = line_plot({k: list(zip(map(float, s), f)) for k, (s, f) in curves.items()}, x_label="edges kept",
                    y_label="normalised faithfulness", log_x=True)
    return Html(title, svg, caption="Faithfulness (MIB: (m(C) - m(empty)) / (m(full) - m(empty))) of the top-n "
                                    "edges by EAP-IG score; 1 = the circuit does what the full model does.")


def sweep_plot(rows: Sequence[Mapping[str, float]], title: str) -> Html:
    """A threshold sweep: edges kept and normalised faithfulness against the threshold (two plots side by side)."""
    edges = line_plot({"edges kept": [(r["threshold"], r["edges"]) for r in rows]}, x_label="threshold",
                      y_label="edges kept", log_x=all(r["threshold"] > 0 for r in rows))
    faith = line_plot({"faithfulness": [(r["threshold"], r["faithfulness"]) for r in rows]}, x_label="threshold",
                      y_label="normalised faithfulness", log_x=all(r["threshold"] > 0 for r in rows))
    return Html(title, f'<div style="display:flex;flex-wrap:wrap;gap:1em">{edges}{faith}</div>')


__all__ = ["faithfulness_plot", "line_plot", "sweep_plot"]

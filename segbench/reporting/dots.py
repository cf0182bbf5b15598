"""Per-seed dot strips: small inline SVGs, one per table cell, on an axis shared by a whole column.

A comparison page (:mod:`segbench.reporting.compare_page`) draws each row's per-seed values of a metric on
the same axis as every other row's, and each comparison's per-seed gaps with their interval and zero, so
that the seeds' spread and overlap are seen, not only their mean. Numbers only: the labels are in the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 150, 18, 5.0
DOT = "#2563eb"
METHOD_DOT = "#c2410c"
LOG_SPAN = 20.0  # a column spanning more than this ratio (all values positive) is drawn on a log axis


def finite(values: list[float | None]) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]


@dataclass(frozen=True)
class Axis:
    """The x range of one column's strips (``log``: log10 of the values)."""

    low: float
    high: float
    log: bool = False

    @classmethod
    def spanning(cls, values: list[float | None], *, allow_log: bool = True) -> Axis | None:
        """The axis that holds every finite value (``None`` when there is none); log when every value is
        positive and they span more than :data:`LOG_SPAN`."""
        xs = finite(values)
        if not xs:
            return None
        low, high = min(xs), max(xs)
        log = allow_log and low > 0 and high / low > LOG_SPAN
        if log:
            low, high = math.log10(low), math.log10(high)
        if high == low:  # one value (or all equal): centre it
            half = abs(low) * 0.05 or 1.0
            low, high = low - half, high + half
        return cls(low, high, log)

    def x(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return PAD + (v - self.low) / (self.high - self.low) * (WIDTH - 2 * PAD)


def dots_svg(
    values: list[float | None],
    axis: Axis | None,
    title: str,
    *,
    method: bool = False,
    interval: tuple[float, float] | None = None,
    zero: bool = False,
) -> Markup | None:
    """One strip: a dot per finite value, a tick at their mean, optionally an interval bar and the zero line
    (for gaps). ``title`` (escaped) is the accessible text; ``None`` when there is nothing to draw."""
    xs = finite(values)
    if axis is None or not xs:
        return None
    mid = HEIGHT / 2
    parts = []
    if zero and axis.low <= 0 <= axis.high and not axis.log:
        z = axis.x(0.0)
        parts.append(f'<line x1="{z:.1f}" y1="1" x2="{z:.1f}" y2="{HEIGHT - 1}" stroke="#9ca3af"/>')
    if interval is not None:
        lo, hi = (axis.x(v) for v in interval)
        parts.append(
            f'<line x1="{lo:.1f}" y1="{mid:.1f}" x2="{hi:.1f}" y2="{mid:.1f}" stroke="#6b7280" stroke-width="3" '
            'stroke-opacity="0.5"/>'
        )
    colour = METHOD_DOT if method else DOT
    mean = axis.x(sum(xs) / len(xs))
    parts.append(
        f'<line x1="{mean:.1f}" y1="3" x2="{mean:.1f}" y2="{HEIGHT - 3}" stroke="{colour}" stroke-width="1.5"/>'
    )
    parts += [
        f'<circle cx="{axis.x(v):.1f}" cy="{mid:.1f}" r="3" fill="{colour}" fill-opacity="0.6"/>' for v in xs
    ]
    scale_note = " (log axis)" if axis.log else ""
    text = escape(title + scale_note)
    return Markup(  # coordinates we computed; the title is escaped
        f'<svg class="dots" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{text}"><title>{text}</title>{"".join(parts)}</svg>'
    )


def curves_svg(
    series: list[tuple[list[tuple[float, float]], str]], title: str, *, width: int = 220, height: int = 60
) -> Markup | None:
    """Several curves ``[(points, colour)]`` on one pair of axes (log y when every value is positive, as
    :func:`segbench.reporting.zoo.sparkline` draws one): a method run's loss over its baseline run's."""
    drawn = [(pts, colour) for pts, colour in series if len(pts) >= 2]
    if not drawn:
        return None
    use_log = all(v > 0 for pts, _ in drawn for _, v in pts)

    def y_of(v: float) -> float:
        return math.log10(v) if use_log else v

    xs = [x for pts, _ in drawn for x, _ in pts]
    ys = [y_of(v) for pts, _ in drawn for _, v in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = 2.0
    lines = []
    for pts, colour in drawn:
        step = max(1, len(pts) // 120)
        kept = pts[::step] + ([pts[-1]] if (len(pts) - 1) % step else [])
        coords = " ".join(
            f"{pad + (x - x0) / ((x1 - x0) or 1.0) * (width - 2 * pad):.1f},"
            f"{height - pad - (y_of(v) - y0) / ((y1 - y0) or 1.0) * (height - 2 * pad):.1f}"
            for x, v in kept
        )
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.2" points="{coords}"/>')
    text = escape(title + (" (log scale)" if use_log else ""))
    return Markup(  # coordinates we computed; the title is escaped
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{text}"><title>{text}</title>{"".join(lines)}</svg>'
    )

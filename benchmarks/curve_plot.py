"""Tables, ASCII plots and slopes for the cost curves (`curves.py`); a PNG too when matplotlib is installed.

Pure functions over lists of numbers, so a unit test can check them (`tests/unit/benchmarks/test_curve_plot.py`).
A plot has a log x axis (the curves' points are 1, 10, 100, 1000 ...) and a linear y axis from 0, so a flat curve
stays flat and a linear one bends upwards by a factor 10 per step.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MARKERS = "*o+x#@%&"


@dataclass(frozen=True)
class Series:
    """One line of a plot: `ys[i]` measured at `xs[i]` (NaN: not measured)."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]


def fmt(value: float) -> str:
    """A figure with about 3 significant digits: 0.512, 12.3, 1,234."""
    if math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if magnitude >= 1 else f"{value:.3f}"


def table(x_label: str, xs: Sequence[float], columns: dict[str, Sequence[float]]) -> list[str]:
    """A text table: one row per x, one column per series, right-aligned, the header ruled below."""
    rows = [[x_label, *columns]]
    rows += [[f"{x:g}", *(fmt(values[i]) for values in columns.values())] for i, x in enumerate(xs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return lines


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least squares `y = a + b x` over the measured points: (a, b)."""
    points = [(x, y) for x, y in zip(xs, ys, strict=True) if not math.isnan(y)]
    if len(points) < 2:
        return (points[0][1] if points else math.nan), math.nan
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else math.nan
    return mean_y - slope * mean_x, slope


def growth_exponent(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The exponent k of `y - y0 ~ x^k` between the two largest x (y0: the value at the smallest x).

    About 1 for linear growth, 2 for quadratic. NaN when it cannot be told: fewer than 3 points, or the curve is flat
    (it moves by less than 10 % of its top value), does not rise above y0 (by 1 % of its top value) before
    the largest x, or falls at the largest x."""
    points = sorted((x, y) for x, y in zip(xs, ys, strict=True) if not math.isnan(y))
    if len(points) < 3:
        return math.nan
    top = max(abs(y) for _, y in points)
    base = points[0][1]
    (x1, y1), (x2, y2) = points[-2], points[-1]
    if max(y for _, y in points) - min(y for _, y in points) < 0.1 * top:
        return math.nan
    if y1 - base <= 0.01 * top or y2 <= y1 or x1 <= 0 or x2 <= x1:
        return math.nan
    return math.log((y2 - base) / (y1 - base)) / math.log(x2 / x1)


def shape(xs: Sequence[float], ys: Sequence[float]) -> str:
    """`flat`, `~x^k` (`superlinear` beyond 1.3) or `no clear growth`, as `growth_exponent` reads it."""
    points = [y for y in ys if not math.isnan(y)]
    if len(points) >= 2 and max(points) - min(points) < 0.1 * max(abs(y) for y in points):
        return "flat (within 10 %)"
    exponent = growth_exponent(xs, ys)
    if math.isnan(exponent):
        return "no clear growth"
    return f"~x^{exponent:.1f}" + (" (superlinear)" if exponent > 1.3 else "")


def slope_line(what: str, xs: Sequence[float], ys: Sequence[float], unit: str, per: float, per_label: str) -> str:
    """One line: the linear fit's slope as `unit` per `per` of x, the fit's intercept, and the curve's shape."""
    intercept, slope = linear_fit(xs, ys)
    sign = "+" if slope >= 0 else ""
    return f"{what}: {sign}{fmt(slope * per)} {unit} per {per_label} ({fmt(intercept)} {unit} at 0; {shape(xs, ys)})"


def ascii_plot(series: Sequence[Series], y_unit: str, width: int = 56, height: int = 12) -> list[str]:
    """A plot in text: log x axis (ticks at the measured xs), linear y axis from 0, one marker per series."""
    xs = sorted({x for s in series for x in s.xs if x > 0})
    values = [y for s in series for y in s.ys if not math.isnan(y)]
    if not xs or not values:
        return ["(nothing to plot)"]
    low, high = math.log10(xs[0]), math.log10(xs[-1])
    top = max(values) or 1.0

    def column(x: float) -> int:
        return 0 if high == low else round((math.log10(x) - low) / (high - low) * (width - 1))

    grid = [[" "] * width for _ in range(height)]
    for marker, s in zip(MARKERS, series, strict=False):
        for x, y in zip(s.xs, s.ys, strict=True):
            if x > 0 and not math.isnan(y):
                row = height - 1 - round(max(0.0, y) / top * (height - 1))
                cell = grid[row][column(x)]
                grid[row][column(x)] = marker if cell in (" ", marker) else "="  # "=": two series on one spot
    labelled = {index: fmt(top * (height - 1 - index) / (height - 1)) for index in (0, (height - 1) // 2, height - 1)}
    label_width = max(len(label) for label in labelled.values())
    lines = [f"{labelled.get(index, '').rjust(label_width)} |{''.join(cells)}" for index, cells in enumerate(grid)]
    lines.append(" " * label_width + " +" + "-" * width)
    ticks = [" "] * (width + 12)
    for x in xs:
        text, start = f"{x:g}", column(x)
        if all(c == " " for c in ticks[max(0, start - 1) : start + len(text) + 1]):
            ticks[start : start + len(text)] = text
    lines.append(" " * (label_width + 2) + "".join(ticks).rstrip() + "  (log x)")
    legend = ", ".join(f"{m} {s.label}" for m, s in zip(MARKERS, series, strict=False))
    lines.append(" " * (label_width + 2) + f"y: {y_unit}; {legend}")
    return lines


def write_png(path: Path, title: str, series: Sequence[Series], x_label: str, y_label: str) -> str:
    """Save the plot as a PNG (log x); returns the path, or why it could not (matplotlib missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no PNG: matplotlib is not installed (pip install matplotlib)"
    figure, axes = plt.subplots(figsize=(6, 4))
    for s in series:
        points = [(x, y) for x, y in zip(s.xs, s.ys, strict=True) if not math.isnan(y)]
        axes.plot([x for x, _ in points], [y for _, y in points], marker="o", label=s.label)
    axes.set_xscale("log")
    axes.set_ylim(bottom=0)
    axes.set_title(textwrap.fill(title, 60), fontsize=10)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return str(path)

"""The cost curves' printing (`benchmarks/curve_plot.py`): a reader sees each measured point, and a slope line that
names linear growth as such and flags quadratic growth."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

# benchmarks/ is not a package; load the one module by its path, leaving sys.path alone (benchmarks/ has a `run.py`
# and a `common.py` that must not shadow anything in the test session)
_path = Path(__file__).resolve().parents[3] / "benchmarks" / "curve_plot.py"
_spec = importlib.util.spec_from_file_location("curve_plot", _path)
assert _spec is not None
assert _spec.loader is not None
curve_plot = importlib.util.module_from_spec(_spec)
sys.modules["curve_plot"] = curve_plot  # dataclasses look their module up
_spec.loader.exec_module(curve_plot)
Series, ascii_plot, growth_exponent = curve_plot.Series, curve_plot.ascii_plot, curve_plot.growth_exponent
linear_fit, slope_line, table = curve_plot.linear_fit, curve_plot.slope_line, curve_plot.table

XS = [10.0, 100.0, 1000.0, 5000.0]


def test_the_table_has_a_row_per_point_and_a_column_per_series() -> None:
    lines = table("tools", XS, {"direct ms": [0.5, 0.6, 2.0, 9.5], "gateway ms": [0.9, 1.0, 4.25, 20.0]})
    assert [cell.strip() for cell in lines[0].split("|")] == ["tools", "direct ms", "gateway ms"]
    assert set(lines[1]) <= {"-", "+"}
    assert [cell.strip() for cell in lines[4].split("|")] == ["1000", "2.00", "4.25"]
    assert [cell.strip() for cell in lines[5].split("|")] == ["5000", "9.50", "20.0"]
    assert len({len(line) for line in lines}) == 1  # aligned


def test_an_unmeasured_point_reads_n_a() -> None:
    assert "n/a" in table("n", [1.0, 2.0], {"y": [1.0, math.nan]})[3]


def test_linear_growth_has_its_slope_and_exponent_one() -> None:
    ys = [3.0 + 0.002 * x for x in XS]
    intercept, slope = linear_fit(XS, ys)
    assert intercept == pytest.approx(3.0)
    assert slope == pytest.approx(0.002)
    assert growth_exponent(XS, ys) == pytest.approx(1.0, abs=0.05)
    assert slope_line("p50", XS, ys, "ms", 1000, "1000 tools") == "p50: +2.00 ms per 1000 tools (3.00 ms at 0; ~x^1.0)"


def test_quadratic_growth_is_called_superlinear() -> None:
    ys = [1.0 + 1e-6 * x * x for x in XS]
    assert growth_exponent(XS, ys) == pytest.approx(2.0, abs=0.05)
    assert "(superlinear)" in slope_line("p50", XS, ys, "ms", 1000, "1000 tools")


def test_a_curve_within_noise_is_flat() -> None:
    assert "flat (within 10 %)" in slope_line("cpu", XS, [211.0, 205.0, 214.0, 209.0], "us", 1000, "1000 policies")
    assert math.isnan(growth_exponent(XS, [211.0, 205.0, 214.0, 209.0]))


def test_a_curve_that_falls_at_its_end_has_no_exponent() -> None:
    assert math.isnan(growth_exponent(XS, [228.0, 262.0, 311.0, 259.0]))
    assert "no clear growth" in slope_line("cpu", XS, [228.0, 262.0, 311.0, 259.0], "us", 1000, "1000 policies")


def test_the_plot_puts_each_point_on_a_log_x_axis_with_a_legend() -> None:
    lines = ascii_plot([Series("direct", XS, [2.0, 2.5, 3.0, 4.0]), Series("gateway", XS, [2.0, 2.0, 6.0, 8.0])],
                       "ms", width=40, height=9)  # fmt: skip
    grid = [line.split("|", 1)[1] for line in lines[:9]]
    assert lines[0].split("|")[0].strip() == "8.00"  # the top of the y axis is the largest value
    assert lines[8].split("|")[0].strip() == "0.000"
    assert grid[0][39] == "o"  # gateway's 8.0 at x = 5000, the right edge
    assert grid[4][39] == "*"  # direct's 4.0 halfway up
    assert grid[6][0] == "="  # both at 2.0 for x = 10: one spot, two series
    ticks = lines[10]
    assert ticks.index("10") < ticks.index("100") < ticks.index("1000") < ticks.index("5000")
    assert ticks.endswith("(log x)")
    assert lines[11].endswith("y: ms; * direct, o gateway")


def test_nothing_measured_plots_nothing() -> None:
    assert ascii_plot([Series("x", [1.0], [math.nan])], "ms") == ["(nothing to plot)"]

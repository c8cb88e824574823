"""What the benchmark scripts share besides their processes (``harness.py``): the settings every load benchmark has,
the report, how it is printed, and how a run begins and ends (load averages, the JSON file, the exit status)."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, astuple, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

RowT = TypeVar("RowT")


@dataclass
class LoadSettings:
    """What ``--quick`` (and ``--duration``) decide: seconds per measured load run, of unmeasured load before it, and
    of sequential latency measurement per target (over all its blocks). A script's options extend it."""

    quick: bool
    duration: float
    warmup: float
    latency_seconds: float


@dataclass
class Report(Generic[RowT]):
    """The table's rows, the notes and errors printed under it, and every figure raw (for ``--json``)."""

    rows: list[RowT] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def machine_line(loadavg_start: float, loadavg_end: float) -> str:
    """The machine and how busy it was: the figures' context."""
    return (
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, 1-min load average {loadavg_start:.1f} "
        f"before / {loadavg_end:.1f} after (anything above ~0.5 before means other work skews the figures)"
    )


def print_grid(rows: Sequence[Sequence[str]]) -> None:
    """A text table: the first row is the header (ruled below), the first column left-aligned, the rest right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print(
            " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if index == 0:
            print("-+-".join("-" * w for w in widths))


def print_footer(notes: Iterable[str], errors: Iterable[str], elapsed: float) -> None:
    for note in notes:
        print(f"  note: {note}")
    for error in errors:
        print(f"  ERROR: {error}")
    print(f"  (total {elapsed:.0f} s)")


def print_report(
    title: str, context: Iterable[str], header: Sequence[str], report: Any, elapsed: float, checks: Iterable[str] = ()
) -> None:
    """The table and its frame: a blank line, the title, the machine line (the load averages in ``report.raw``), the
    context lines, ``header`` and ``report.rows`` (dataclasses or lists of cells), the checks, the notes and errors,
    and the run's total time."""
    print()
    print(title)
    print(machine_line(report.raw.get("loadavg_start", 0.0), report.raw.get("loadavg_end", 0.0)))
    for line in context:
        print(line)
    print_grid([header, *(astuple(row) if is_dataclass(row) else row for row in report.rows)])
    for check in checks:
        print(f"  check: {check}")
    print_footer(report.notes, report.errors, elapsed)


def exit_status(errors: Sequence[str], verdicts: Iterable[str], strict: bool) -> int:
    """1 when a benchmark failed to run; with `strict`, 2 when a target was missed; else 0."""
    if errors:
        return 1
    if strict and any(v == "MISS" for v in verdicts):
        return 2
    return 0


def begin(report: Any) -> float:
    """Before the run: note the 1-min load average in ``report.raw``; the start time to give ``finish``."""
    report.raw["loadavg_start"] = os.getloadavg()[0]
    return time.perf_counter()


def finish(
    print_table: Callable[[Any, Any, float], None],
    settings: Any,
    report: Any,
    started: float,
    *,
    json_path: Path | None,
    settings_key: str = "options",
    strict: bool = False,
) -> int:
    """After the run: note the 1-min load average in ``report.raw``, print the table (``print_table(settings, report,
    seconds since started)``), write ``{settings_key: settings, **report}`` to ``json_path`` if given, and return the
    exit status (the rows' verdicts count only with ``strict``).

    ``settings`` and ``report`` are the script's dataclasses; ``report`` has ``rows``, ``errors`` and ``raw``."""
    report.raw["loadavg_end"] = os.getloadavg()[0]
    print_table(settings, report, time.perf_counter() - started)
    if json_path:
        json_path.write_text(json.dumps({settings_key: asdict(settings), **asdict(report)}, indent=2, default=str))
    return exit_status(report.errors, [row.verdict for row in report.rows] if strict else [], strict)

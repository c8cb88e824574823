"""Parsing of human-friendly values given on the command line or in config files: durations and sizes."""

from __future__ import annotations

import re

__all__ = ["parse_duration", "parse_size"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}


def parse_duration(text: str) -> float:
    """`90s`, `30m`, `2h`, `1h30m`, `500ms` → seconds; `0` alone needs no unit (as Go's `time.ParseDuration`, which
    ToolHive's configs are written for). Raises ValueError naming the value."""
    value = text.strip()
    if value == "0":
        return 0.0
    try:
        float(value)
    except ValueError:
        pass
    else:
        raise ValueError(f"invalid duration {text!r}: give a unit (e.g. {value}s, {value}m)")
    pos, total = 0, 0.0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise ValueError(f"invalid duration {text!r} (use e.g. 90s, 30m, 2h)")
    return total


def parse_size(text: str) -> int:
    """`4194304`, `4MiB`, `512kb` → bytes. Raises ValueError naming the value."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid size {text!r} (use e.g. 4MiB, 512KiB, 1048576)")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]

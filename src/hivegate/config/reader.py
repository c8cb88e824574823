"""Strict, typed reading of one mapping of a config file: every error names the field's path.

A `Reader` hands out a mapping's values by kind (`text`, `flag`, `integer`, `duration`, `section`, `items`, …) and
remembers the keys it handed out; `done()` then rejects any key nobody read as `<path>.<key>: unknown field`, with
the nearest key that was read as a suggestion (`(did you mean 'issuerUrl'?)`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hivegate.config.durations import parse_duration
from hivegate.errors import ConfigError

__all__ = ["Reader", "as_list", "as_mapping", "did_you_mean"]


def did_you_mean(key: str, valid: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the valid key a misspelt `key` most likely meant: the same but for case, or at
    most two edits away (a transposition is one); nothing when none is that close."""
    folded = key.lower()
    best: tuple[int, str] | None = None
    for choice in sorted(valid):
        distance = 0 if choice.lower() == folded else _edits(folded, choice.lower())
        if distance <= min(2, len(key) // 3) and (best is None or distance < best[0]):
            best = (distance, choice)
    return f" (did you mean {best[1]!r}?)" if best else ""


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and adjacent transpositions."""
    if abs(len(a) - len(b)) > 2:
        return 3
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, previous2[j - 2] + 1)
            row.append(cost)
        previous2, previous = previous, row
    return previous[-1]


def as_mapping(value: Any, where: str) -> Mapping[str, Any]:
    """`value` as a mapping (None: empty), or a ConfigError naming `where`."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be a mapping")
    return value


def as_list(value: Any, where: str) -> list[Any]:
    """`value` as a list (None: empty), or a ConfigError naming `where`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list")
    return value


class Reader:
    """Typed access to one mapping of the config; `done()` rejects the keys nobody read, naming their path.

    `where` is the mapping's path (empty at the top of a document). `known` lists the keys up front, so that a
    misspelt key is reported before the "required" error it would otherwise cause. With `sort_unknown`, `done()`
    names the alphabetically first unknown key rather than the first one written.
    """

    def __init__(self, data: Any, where: str, *, known: Sequence[str] = (), sort_unknown: bool = False) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where or 'config'}: must be a mapping")
        self.where = where
        self._data = data
        self._seen: set[str] = set()
        self._sort_unknown = sort_unknown
        if known:
            self._seen.update(known)
            self.done()
            self._seen.clear()

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def keys(self) -> list[str]:
        return [str(k) for k in self._data]

    def has(self, key: str) -> bool:
        return key in self._data

    def get(self, key: str) -> Any:
        self._seen.add(key)
        return self._data.get(key)

    def spelling(self, *keys: str) -> str:
        """The one of `keys` (spellings of one field, e.g. ToolHive's `insecureAllowHTTP` in manifests and
        `insecureAllowHttp` in vMCP configs) that the mapping uses, else the first; `ConfigError` if it has two."""
        present = [key for key in keys if key in self._data]
        if len(present) > 1:
            raise ConfigError(f"{self.at(present[0])}: also given as {present[1]}; give it once")
        return present[0] if present else keys[0]

    def text(self, key: str, *, required: bool = False) -> str:
        value = self.get(key)
        if value is None or value == "":
            if required:
                raise ConfigError(f"{self.at(key)}: required")
            return ""
        if not isinstance(value, str):
            raise ConfigError(f"{self.at(key)}: must be a string")
        return value

    def choice(self, key: str, options: Sequence[str], *, required: bool = False) -> str:
        value = self.text(key, required=required)
        if value and value not in options:
            raise ConfigError(f"{self.at(key)}: must be one of {', '.join(options)}, got {value!r}")
        return value

    def flag(self, key: str, *, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"{self.at(key)}: must be true or false")
        return value

    def integer(self, key: str, *, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{self.at(key)}: must be a whole number")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ConfigError(f"{self.at(key)}: must be {bounds}, got {value}")
        return value

    def duration(self, key: str, *, default: float, positive: bool = False) -> float:
        """A Go-style duration string ("30s", "1h30m"); a bare number other than 0 is an error asking for a unit."""
        value = self.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{self.at(key)}: must be a duration such as 30s")
        try:
            seconds = parse_duration(str(value))
        except ValueError as exc:
            raise ConfigError(f"{self.at(key)}: {exc}") from None
        if positive and seconds <= 0:
            raise ConfigError(f"{self.at(key)}: must be positive")
        return seconds

    def section(self, key: str, *, required: bool = False) -> Mapping[str, Any]:
        value = self.get(key)
        if value is None:
            if required:
                raise ConfigError(f"{self.at(key)}: required")
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self.at(key)}: must be a mapping")
        return value

    def items(self, key: str, *, required: bool = False, max_items: int | None = None) -> Sequence[Any]:
        value = self.get(key)
        if value is None or value == []:
            if required:
                raise ConfigError(f"{self.at(key)}: at least one entry is required")
            return []
        if not isinstance(value, list):
            raise ConfigError(f"{self.at(key)}: must be a list")
        if max_items is not None and len(value) > max_items:
            raise ConfigError(f"{self.at(key)}: at most {max_items} entries")
        return value

    def strings(self, key: str, *, required: bool = False) -> list[str]:
        values = self.items(key, required=required)
        for i, value in enumerate(values):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{self.at(key)}[{i}]: must be a non-empty string")
        return list(values)

    def string_map(self, key: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.section(key).items():
            if not isinstance(value, str):
                raise ConfigError(f"{self.at(key)}.{name}: must be a string (quote numbers and booleans)")
            out[str(name)] = value
        return out

    def done(self) -> None:
        unknown = [str(k) for k in self._data if k not in self._seen]
        if self._sort_unknown:
            unknown.sort()
        if unknown:
            raise ConfigError(f"{self.at(unknown[0])}: unknown field{did_you_mean(unknown[0], self._seen)}")

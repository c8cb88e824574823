"""A configuration file that does not parse, said as a compiler says it: `FILE:LINE:COL: not valid YAML: problem`.

PyYAML's `MarkedYAMLError` knows where it stopped (`problem_mark`, 0-based) and what it was reading (`context`,
`context_mark`); `json.JSONDecodeError` knows `lineno` and `colno`. `syntax_error` turns either into the one-line
`ConfigError` every loader raises, so a syntax error points where an editor jumps to, whichever file it is in.
"""

from __future__ import annotations

import json

import yaml

from hivegate.errors import ConfigError

__all__ = ["syntax_error"]


def syntax_error(source: object, exc: Exception) -> ConfigError:
    """One line for a YAML, JSON or encoding error in `source` (a path, or a name such as `ConfigMap x key y`)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or "not valid"
        context = exc.context_mark
        reading = ""
        if exc.context and context is not None and (context.line, context.column) != (mark.line, mark.column):
            reading = f" ({exc.context} from line {context.line + 1}, column {context.column + 1})"
        elif exc.context:
            reading = f" ({exc.context})"
        return ConfigError(f"{source}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem}{reading}")
    if isinstance(exc, json.JSONDecodeError):
        return ConfigError(f"{source}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}")
    if isinstance(exc, UnicodeDecodeError):
        return ConfigError(f"{source}: not valid UTF-8 (byte {exc.start})")
    kind = "YAML" if isinstance(exc, yaml.YAMLError) else "JSON" if isinstance(exc, ValueError) else "a config"
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ConfigError(f"{source}: not valid {kind}: {first}")

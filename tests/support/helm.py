"""A renderer for the subset of Helm's Go templates the chart in deploy/helm uses (helm is not packaged here).

Supported: text with `{{ … }}` actions and their `{{-`/`-}}` whitespace trimming; field paths (`.Values.a.b`,
`.Release.Name`, `.Chart.AppVersion`, `.`); string and number literals; parenthesised sub-pipelines; pipelines
(`x | f a` is `f a x`); the functions `default`, `quote`, `toYaml`, `nindent`, `indent`, `printf` (`%s`, `%d`),
`not`; the actions `if`/`else`/`end`, `range` (over a list, `.` each item) and `with` (`.` the value, skipped when
empty). Anything else raises, so the chart cannot drift beyond what this renderer checks without a test noticing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["render_chart"]

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\(|\)|\||[^\s()|]+')


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and not (isinstance(value, (list, dict)) and not value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _nindent(n: int, s: Any) -> str:
    return "\n" + "\n".join(" " * n + line if line else line for line in str(s).splitlines())


_FUNCS: dict[str, Any] = {
    "default": lambda d, v=None: v if _truthy(v) else d,
    "quote": lambda v: json.dumps(_text(v)),
    "toYaml": lambda v: yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n"),
    "nindent": _nindent,
    "indent": lambda n, s: _nindent(n, s)[1:],
    "printf": lambda fmt, *a: fmt.replace("%d", "%s") % a,
    "not": lambda v: not _truthy(v),
}


class _Expr:
    def __init__(self, source: str) -> None:
        self.tokens = _TOKEN.findall(source)
        self.pos = 0

    def pipeline(self, dot: Any, root: Mapping[str, Any]) -> Any:
        value = self.command(dot, root, None, first=True)
        while self.pos < len(self.tokens) and self.tokens[self.pos] == "|":
            self.pos += 1
            value = self.command(dot, root, value, first=False)
        return value

    def command(self, dot: Any, root: Mapping[str, Any], piped: Any, *, first: bool) -> Any:
        terms: list[tuple[str, Any]] = []
        while self.pos < len(self.tokens) and self.tokens[self.pos] not in ("|", ")"):
            token = self.tokens[self.pos]
            self.pos += 1
            if token == "(":
                terms.append(("value", self.pipeline(dot, root)))
                assert self.tokens[self.pos] == ")", "unbalanced parentheses"
                self.pos += 1
            elif token.startswith('"'):
                terms.append(("value", json.loads(token)))
            elif re.fullmatch(r"-?\d+", token):
                terms.append(("value", int(token)))
            elif token.startswith(".") or token == "$":
                terms.append(("value", _field(token, dot, root)))
            elif token in _FUNCS:
                terms.append(("func", token))
            else:
                raise ValueError(f"unsupported template token {token!r}")
        args = [v for kind, v in terms[1:]]
        if not first:
            args.append(piped)
        if terms and terms[0][0] == "func":
            return _FUNCS[terms[0][1]](*args)
        if len(terms) != 1 or not first:
            raise ValueError(f"not a function: {terms}")
        return terms[0][1]


def _field(path: str, dot: Any, root: Mapping[str, Any]) -> Any:
    value = root if path.startswith("$") else dot
    for part in path.lstrip("$").split(".")[1:] if path not in (".", "$") else []:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _evaluate(source: str, dot: Any, root: Mapping[str, Any]) -> Any:
    expr = _Expr(source)
    value = expr.pipeline(dot, root)
    assert expr.pos == len(expr.tokens), f"unparsed: {source}"
    return value


def _parse(template: str) -> list[Any]:
    """Text and actions as a tree: ("text", s), ("expr", e), ("if"|"range"|"with", e, body, else_body)."""
    parts: list[Any] = []
    pos = 0
    for match in _ACTION.finditer(template):
        text = template[pos : match.start()]
        if match.group(1):
            text = text.rstrip()
        parts.append(("text", text))
        parts.append(("action", match.group(2).strip(), bool(match.group(3))))
        pos = match.end()
    parts.append(("text", template[pos:]))
    for i, part in enumerate(parts):  # `-}}` trims the whitespace after it
        if part[0] == "action" and part[2] and i + 1 < len(parts):
            parts[i + 1] = ("text", parts[i + 1][1].lstrip())
    tree, rest = _block(parts, 0)
    assert rest == len(parts), "unbalanced end"
    return tree


def _block(parts: list[Any], i: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    while i < len(parts):
        part = parts[i]
        if part[0] == "text":
            out.append(part)
            i += 1
            continue
        action = part[1]
        word = action.split()[0] if action else ""
        if word in ("end", "else"):
            return out, i
        if word in ("if", "range", "with"):
            body, i = _block(parts, i + 1)
            other: list[Any] = []
            if parts[i][1] == "else":
                other, i = _block(parts, i + 1)
            assert parts[i][1] == "end", f"{word} without end"
            out.append((word, action[len(word) :].strip(), body, other))
            i += 1
            continue
        if word.startswith("/*"):
            i += 1
            continue
        out.append(("expr", action))
        i += 1
    return out, i


def _run(tree: list[Any], dot: Any, root: Mapping[str, Any]) -> str:
    out = []
    for node in tree:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "expr":
            out.append(_text(_evaluate(node[1], dot, root)))
        else:
            kind, source, body, other = node
            value = _evaluate(source, dot, root)
            if kind == "range":
                out.extend(_run(body, item, root) for item in value or [])
            elif _truthy(value):
                out.append(_run(body, value if kind == "with" else dot, root))
            else:
                out.append(_run(other, dot, root))
    return "".join(out)


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in over.items()}}
    return over


def render_chart(chart: Path, *, values: Mapping[str, Any] | None = None, name: str = "hivegate",
                 namespace: str = "hivegate-system") -> list[dict[str, Any]]:  # fmt: skip
    """The objects `helm template NAME CHART -n NAMESPACE --set …` would print (templates only, not crds/)."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    root = {
        "Values": _merge(yaml.safe_load((chart / "values.yaml").read_text()), dict(values or {})),
        "Release": {"Name": name, "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta.get("appVersion")},
    }
    objects = []
    for template in sorted((chart / "templates").glob("*.yaml")):
        text = _run(_parse(template.read_text()), root, root)
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects

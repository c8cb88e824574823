"""What a virtual MCP server advertises: every backend's tools, prompts, resources and templates under one namespace.

`build_catalog` is pure: the backends' own lists plus the `aggregation` settings in, the advertised lists and the
routes back to each backend out. Per backend, tools are first selected (`excludeAll`, global `excludeAllTools`,
`filter` — an allow-list matching the backend's name or the overridden one) and renamed (`overrides`); then names are
made unique across backends:

- `prefix` (default): every tool and prompt is advertised as `prefixFormat` (default `{workload}_`) + its name;
- `priority`: a name offered by several backends goes, bare, to the first of them in `priorityOrder`; the others
  listed there lose it; backends not listed keep it under their prefix. Unclashing names stay bare;
- `manual`: names stay bare; a tool clash left unresolved by `overrides` or `filter` is an error naming the
  backends. Prompts have no overrides or filter, so a prompt offered by several backends is advertised under each
  backend's prefix instead (two instances of one server can then share a gateway) — decided when the catalog is
  first built: at run time a prompt that starts to clash with one already advertised bare is refused like a tool
  clash (a rename would move a prompt out from under policies naming it), as is a prefixed prompt name equal to
  another bare name.

Resources keep their URIs (a URI is global): a URI offered twice goes to the first backend in priority (or
configuration) order, as do identical URI templates. Routes map an advertised name back to the backend's own name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hivegate.errors import ConfigError
from hivegate.vmcp.config import Aggregation, WorkloadTools

__all__ = ["BackendLists", "Catalog", "ConflictError", "Route", "build_catalog"]

logger = logging.getLogger("hivegate.vmcp")

Item = Mapping[str, Any]


class ConflictError(ConfigError):
    """Tool or prompt names clash under `conflictResolution: manual`."""


@dataclass(frozen=True, slots=True)
class BackendLists:
    """What one backend offers, as its list answers gave it."""

    tools: tuple[Item, ...] = ()
    prompts: tuple[Item, ...] = ()
    resources: tuple[Item, ...] = ()
    templates: tuple[Item, ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    backend: str
    name: str  # the backend's own tool or prompt name


@dataclass(frozen=True, slots=True)
class Catalog:
    tools: tuple[Item, ...] = ()
    prompts: tuple[Item, ...] = ()
    resources: tuple[Item, ...] = ()
    templates: tuple[Item, ...] = ()
    tool_routes: Mapping[str, Route] = field(default_factory=dict)
    prompt_routes: Mapping[str, Route] = field(default_factory=dict)
    resource_routes: Mapping[str, str] = field(default_factory=dict)  # uri → backend
    template_routes: tuple[tuple[re.Pattern[str], str], ...] = ()  # (matcher, backend), in priority order

    def resource_backend(self, uri: str) -> str | None:
        """The backend serving `uri`: an exact resource first, then the first matching template."""
        backend = self.resource_routes.get(uri)
        if backend is not None:
            return backend
        return next((b for pattern, b in self.template_routes if pattern.fullmatch(uri)), None)


def build_catalog(
    lists: Mapping[str, BackendLists],
    aggregation: Aggregation,
    order: Sequence[str],
    previous: Catalog | None = None,
) -> Catalog:
    """Merge `lists` (backend → what it offers; absent backends offer nothing) in configuration `order`.

    `previous` is the catalog being served, when this one replaces it: under `manual`, a prompt it advertises bare
    stays bare or the new catalog is refused (`ConflictError`)."""
    ranked = _ranked(order, aggregation)
    tools = {b: _selected_tools(lists[b].tools, aggregation, b) for b in ranked if b in lists}
    prompts = {b: [(str(p.get("name", "")), p) for p in lists[b].prompts] for b in ranked if b in lists}
    advertised_tools, tool_routes = _named(tools, aggregation, ranked, "tool")
    bare = frozenset(previous.prompt_routes) if previous is not None else frozenset()
    advertised_prompts, prompt_routes = _named(prompts, aggregation, ranked, "prompt", keep_bare=bare)
    resources, resource_routes = _by_key([(b, r, "uri") for b in ranked if b in lists for r in lists[b].resources])
    templates, template_backends = _by_key(
        [(b, t, "uriTemplate") for b in ranked if b in lists for t in lists[b].templates]
    )
    return Catalog(
        tools=tuple(advertised_tools),
        prompts=tuple(advertised_prompts),
        resources=tuple(resources),
        templates=tuple(templates),
        tool_routes=tool_routes,
        prompt_routes=prompt_routes,
        resource_routes=resource_routes,
        template_routes=tuple((template_matcher(t), b) for t, b in template_backends.items()),
    )


def _ranked(order: Sequence[str], aggregation: Aggregation) -> list[str]:
    """Backends in priority order (priorityOrder first, then the rest in configuration order)."""
    first = [b for b in aggregation.priority_order if b in order]
    return first + [b for b in order if b not in first]


def _selected_tools(tools: Sequence[Item], aggregation: Aggregation, backend: str) -> list[tuple[str, Item]]:
    """(original name, tool as advertised before name resolution) for the tools this backend shows."""
    rules: WorkloadTools = aggregation.tools_for(backend)
    if aggregation.exclude_all_tools or rules.exclude_all:
        return []
    allowed = set(rules.filter)
    chosen: list[tuple[str, Item]] = []
    for tool in tools:
        original = str(tool.get("name", ""))
        override = rules.overrides.get(original)
        shown = (override.name if override is not None else None) or original
        if allowed and original not in allowed and shown not in allowed:
            continue
        item = dict(tool)
        item["name"] = shown
        if override is not None and override.description is not None:
            item["description"] = override.description
        chosen.append((original, item))
    return chosen


_HINTS = {
    "tool": "resolve it with aggregation.tools[].overrides or filter, or use conflictResolution prefix/priority",
    "prompt": "prompts have no overrides and a served prompt keeps its name; use conflictResolution prefix/priority",
}


def _named(
    offered: Mapping[str, list[tuple[str, Item]]],
    aggregation: Aggregation,
    ranked: Sequence[str],
    kind: str,
    keep_bare: frozenset[str] = frozenset(),
) -> tuple[list[Item], dict[str, Route]]:
    """Resolve clashes between backends; returns the advertised items and their routes."""
    holders: dict[str, list[str]] = {}
    for backend, items in offered.items():
        for _, item in items:
            holders.setdefault(str(item["name"]), []).append(backend)
    strategy = aggregation.conflict_resolution
    if strategy == "manual":
        clashes = {
            name: owners
            for name, owners in holders.items()
            if len(set(owners)) > 1 and (kind == "tool" or name in keep_bare)
        }
        if clashes:
            name, owners = sorted(clashes.items())[0]
            more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
            raise ConflictError(
                f"aggregation: {kind} {name!r} is offered by backends {', '.join(sorted(set(owners)))}{more}; "
                + _HINTS[kind]
            )
    listed = set(aggregation.priority_order)
    advertised: list[Item] = []
    routes: dict[str, Route] = {}
    for backend in ranked:
        prefix = aggregation.prefix_format.replace("{workload}", backend)
        for original, item in offered.get(backend, []):
            shown = str(item["name"])
            if strategy == "prefix":
                name = prefix + shown
            elif strategy == "manual" and len(set(holders[shown])) > 1:
                name = prefix + shown  # a prompt: tools clashing under manual were refused above
            elif strategy == "priority" and len(set(holders[shown])) > 1:
                winner = next((b for b in ranked if b in listed and b in holders[shown]), None)
                if backend == winner:
                    name = shown
                elif backend in listed:
                    continue  # a listed backend that lost the name to a higher-priority one
                else:
                    name = prefix + shown
            else:
                name = shown
            if name in routes and strategy == "manual":
                raise ConflictError(
                    f"aggregation: {kind} {name!r} of backend {backend!r} is also the name of backend "
                    f"{routes[name].backend!r}'s {kind}; " + _HINTS[kind]
                )
            if name in routes:  # e.g. a prefixed name equal to another backend's bare name
                logger.warning("aggregation: %s %r of backend %r hidden: the name is taken", kind, name, backend)
                continue
            routes[name] = Route(backend, original)
            advertised.append({**item, "name": name})
    return advertised, routes


def _by_key(items: Sequence[tuple[str, Item, str]]) -> tuple[list[Item], dict[str, str]]:
    """Items unique by `key` (first backend wins), and key → backend."""
    out: list[Item] = []
    owners: dict[str, str] = {}
    for backend, item, key in items:
        value = item.get(key)
        if not isinstance(value, str) or value in owners:
            continue
        owners[value] = backend
        out.append(item)
    return out, owners


_EXPRESSION = re.compile(r"\{([+#./;?&]?)([^}]*)\}")


def template_matcher(template: str) -> re.Pattern[str]:
    """A regex matching the URIs an RFC 6570 template can expand to (simple and reserved expansion are told apart:
    `{x}` matches no `/`, `{+x}` anything)."""
    parts: list[str] = []
    last = 0
    for match in _EXPRESSION.finditer(template):
        parts.append(re.escape(template[last : match.start()]))
        operator = match.group(1)
        parts.append(".*" if operator in ("+", "#") else "[^/]*" if operator == "" else r"[^/]*?(?:[/.;?&].*)?")
        last = match.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts), re.DOTALL)

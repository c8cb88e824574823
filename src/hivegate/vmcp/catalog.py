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

Names are part of authorization (policies name them, calls route by them):

- a tool or prompt name a backend offers, or the name it would be advertised under, that breaks the MCP naming rule
  (1 to 128 of A-Z, a-z, 0-9, `_`, `-`, `.`) is not advertised: no newlines, look-alikes or 100,000 characters;
- two backends that would be advertised under one name (a prefixed name equal to another backend's name) are a
  conflict: neither is advertised, and the log says so (under `manual`, the catalog is refused) — never a silent
  winner that calls and permits for that name would reach;
- a name, once advertised, never moves to another backend while the gateway runs (`Owners`);
- backends whose prefixes begin one another (`github_` and `github_enterprise_`) are refused when the configuration
  is loaded (`vmcp.spec.check_prefixes`).

Resources keep their URIs (a URI is global): a URI offered twice goes to the first backend in priority (or
configuration) order, as do identical URI templates. Routes map an advertised name back to the backend's own name;
`Catalog.route_of` does so for what Cedar decides on (a tool, a prompt, a resource URI or URI template), so each is
a child of `MCP::"<backend>"` in the policies' entity hierarchy.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hivegate.errors import ConfigError
from hivegate.vmcp.spec import Aggregation, WorkloadTools

__all__ = ["BackendLists", "Catalog", "ConflictError", "Owners", "Route", "build_catalog", "name_problem"]

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
    template_owners: Mapping[str, str] = field(default_factory=dict)  # advertised uriTemplate → backend

    def route_of(self, action: str, name: str) -> Route | None:
        """Where what `action` (`call_tool`, `get_prompt`, `read_resource`) names comes from: the backend and its
        own name (a URI, or an advertised URI template, is the backend's own); None when nothing here has it."""
        if action == "call_tool":
            return self.tool_routes.get(name)
        if action == "get_prompt":
            return self.prompt_routes.get(name)
        if action == "read_resource":
            backend = self.template_owners.get(name) or self.resource_backend(name)
            return Route(backend, name) if backend is not None else None
        return None

    def names(self) -> dict[str, frozenset[str]]:
        """The advertised names by Cedar entity type (`Tool`, `Prompt`, `Resource`: URIs and URI templates)."""
        return {
            "Tool": frozenset(self.tool_routes),
            "Prompt": frozenset(self.prompt_routes),
            "Resource": frozenset(self.resource_routes) | frozenset(self.template_owners),
        }

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
    owners: Owners | None = None,
) -> Catalog:
    """Merge `lists` (backend → what it offers; absent backends offer nothing) in configuration `order`.

    `previous` is the catalog being served, when this one replaces it: under `manual`, a prompt it advertises bare
    stays bare or the new catalog is refused (`ConflictError`). `owners`: the backend each name was ever advertised
    for; such a name goes to that backend or to none."""
    ranked = _ranked(order, aggregation)
    owned = owners or Owners()
    tools = {b: _selected_tools(lists[b].tools, aggregation, b) for b in ranked if b in lists}
    prompts = {b: [(str(p.get("name", "")), p) for p in lists[b].prompts] for b in ranked if b in lists}
    advertised_tools, tool_routes = _named(tools, aggregation, ranked, "tool", owners=owned.tools, log=owned)
    bare = frozenset(previous.prompt_routes) if previous is not None else frozenset()
    advertised_prompts, prompt_routes = _named(
        prompts, aggregation, ranked, "prompt", keep_bare=bare, owners=owned.prompts, log=owned
    )
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
        template_owners=template_backends,
    )


@dataclass
class Owners:
    """The backend each tool and prompt name was first advertised for, kept for the life of the gateway: a backend
    that starts to offer another's name later (a `list_changed`, a new version) can never take it over, with the
    calls, arguments and permits that go with it."""

    tools: dict[str, str] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)
    logged: dict[str, None] = field(default_factory=dict, repr=False)  # what was said already (bounded)

    def warn_once(self, message: str, *, level: int = logging.WARNING) -> None:
        """Log `message` the first time it comes (a pool rebuilds its catalog at every health check)."""
        if message in self.logged:
            return
        if len(self.logged) >= 1024:
            self.logged.pop(next(iter(self.logged)))
        self.logged[message] = None
        logger.log(level, "%s", message)

    def record(self, catalog: Catalog) -> None:
        for name, route in catalog.tool_routes.items():
            self.tools.setdefault(name, route.backend)
        for name, route in catalog.prompt_routes.items():
            self.prompts.setdefault(name, route.backend)


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
    owners: Mapping[str, str] | None = None,
    log: Owners | None = None,
) -> tuple[list[Item], dict[str, Route]]:
    """Resolve clashes between backends; returns the advertised items and their routes."""
    holders: dict[str, list[str]] = {}
    for backend, items in offered.items():
        for _, item in items:
            holders.setdefault(str(item["name"]), []).append(backend)
    strategy = aggregation.conflict_resolution
    if strategy == "manual":
        clashes = {
            name: owners_
            for name, owners_ in holders.items()
            if len(set(owners_)) > 1 and (kind == "tool" or name in keep_bare)
        }
        if clashes:
            name, clashing = sorted(clashes.items())[0]
            more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
            raise ConflictError(
                f"aggregation: {kind} {name!r} is offered by backends {', '.join(sorted(set(clashing)))}{more}; "
                + _HINTS[kind]
            )
    listed = set(aggregation.priority_order)
    say = (log or Owners()).warn_once
    claims: dict[str, list[tuple[str, str, Item]]] = {}  # advertised name → (backend, its own name, item)
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
            problem = name_problem(original) or name_problem(name)
            if problem is not None:
                say(f"aggregation: {kind} {name[:80]!r} of backend {backend!r} is not advertised: {problem}")
                continue
            claims.setdefault(name, []).append((backend, original, item))
    advertised: list[Item] = []
    routes: dict[str, Route] = {}
    for name, claimed in claims.items():
        owner = (owners or {}).get(name)
        if owner is not None and any(backend != owner for backend, _, _ in claimed):
            others = sorted({backend for backend, _, _ in claimed if backend != owner})
            say(
                f"aggregation: {kind} {name!r} of backend {', '.join(others)} is not advertised: the name was "
                f"advertised for backend {owner!r} and never moves to another"
            )
            claimed = [claim for claim in claimed if claim[0] == owner]
            if not claimed:
                continue
        if len(claimed) > 1:
            backends = ", ".join(backend for backend, _, _ in claimed)
            if strategy == "manual":
                raise ConflictError(
                    f"aggregation: {kind} {name!r} of backend {claimed[1][0]!r} is also the name of backend "
                    f"{claimed[0][0]!r}'s {kind}; " + _HINTS[kind]
                )
            say(
                f"aggregation: {kind} {name!r} is the name of backends {backends}: a conflict, so none of them is "
                f"advertised (calls and policies naming it could reach either); rename one with overrides or change "
                f"prefixFormat",
                level=logging.ERROR,
            )
            continue
        backend, original, item = claimed[0]
        routes[name] = Route(backend, original)
        advertised.append({**item, "name": name})
    return advertised, routes


_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")  # MCP 2025-11-25, "Tools": tool names


def name_problem(name: str) -> str | None:
    """Why `name` cannot be advertised (the MCP naming rule for tools, applied to prompts too: 1 to 128 ASCII
    letters, digits, `_`, `-` and `.`), or None. Names are what policies and clients decide on: no control
    characters, look-alike letters or unbounded lengths."""
    if _NAME.fullmatch(name):
        return None
    if not name:
        return "an empty name"
    if len(name) > 128:
        return f"a name of {len(name)} characters (at most 128)"
    return "a name with characters other than A-Z, a-z, 0-9, '_', '-' and '.'"


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

"""Warn when the virtual MCP server's policies name what its backends do not advertise (`authz.names`).

Checked once the catalog is known (when the gateway starts serving) and again whenever it changes (`list_changed`, a
health check that lists something new): each policy that names a tool, prompt or resource no backend advertises, or
an `MCP::"<server>"` that is neither a backend nor the virtual server, is one warning on the `hivegate.authz` log
with the nearest advertised name; each name is warned about at most once while the gateway runs. Backends the pool
cannot list with its own credential (caller-scoped) and backends not listed yet are named in the warning: what they
offer is not known here. Policies reloaded on SIGHUP are checked at the next catalog change.

`configured_problems` is the offline check of `hivegate authz validate --config VMCP.yaml`, which starts and connects
to no backend: it knows the backends' names (so `MCP::"<server>"` is checked exactly) and, under `prefix`, that every
tool and prompt is advertised as `<backend>_<name>` (a name without a backend's prefix can never match; the
prefixed forms are suggested). Under `priority` and `manual` bare names are possible, so tool and prompt names are
left to the start-up check.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from hivegate.authz.cedar import CompiledPolicy
from hivegate.authz.gate import McpGate
from hivegate.authz.names import NameProblem, named_in, unknown_names
from hivegate.vmcp.pool import BackendPool
from hivegate.vmcp.spec import VMCPConfig

__all__ = ["PolicyNames", "configured_problems"]

logger = logging.getLogger("hivegate.authz")


class PolicyNames:
    def __init__(self, gate: McpGate, pool: BackendPool, server: str) -> None:
        self._gate = gate
        self._pool = pool
        self._server = server
        self._warned: set[tuple[str, str]] = set()

    def problems(self) -> list[NameProblem]:
        """What the policies in force name that the catalog (with the backends `bestEffort` hides) does not have."""
        catalog = self._pool.with_hidden()
        known: dict[str, frozenset[str]] = {
            **catalog.names(),
            "MCP": frozenset([*self._pool.names, self._server]),
            "backendName": frozenset(
                [r.name for r in (*catalog.tool_routes.values(), *catalog.prompt_routes.values())]
                + list(catalog.names()["Resource"])
            ),
        }
        unknown = [n for n in self._pool.names if n in self._pool.caller_scoped or self._pool.statuses[n].lists is None]
        note = (
            f" (not known here: what {', '.join(unknown)} offer{'s' if len(unknown) == 1 else ''})" if unknown else ""
        )
        notes = {kind: f"no backend advertises this {word}{note}" for kind, word in
                 (("Tool", "tool"), ("Prompt", "prompt"), ("Resource", "resource"), ("name", "name"),
                  ("backendName", "backend's own name"))}  # fmt: skip
        notes["MCP"] = f"not a backend of this virtual MCP server ({', '.join(self._pool.names)})"
        return unknown_names(
            self._gate.authorizer.policies,
            known,
            exists=lambda kind, name: kind == "Resource" and catalog.resource_backend(name) is not None,
            notes=notes,
        )

    async def started(self) -> None:
        """The start-up hook: the backends were discovered."""
        self.check()

    def check(self) -> None:
        """Log each problem not logged before."""
        try:
            found = self.problems()
        except Exception:  # a warning must never stop the gateway
            logger.exception("authz: cannot check the policies' names against the catalog")
            return
        for problem in found:
            if (problem.kind, problem.name) not in self._warned:
                self._warned.add((problem.kind, problem.name))
                logger.warning("authz: incomingAuth.authz.policies[%d] (%s): %s", problem.index, problem.policy_id,
                               problem.message)  # fmt: skip


def configured_problems(cfg: VMCPConfig, policies: Sequence[CompiledPolicy]) -> list[NameProblem]:
    """What `policies` name that the configuration `cfg` alone shows cannot exist (see the module docstring)."""
    backends = [b.name for b in cfg.backends]
    notes = {"MCP": f"not a backend of this virtual MCP server ({', '.join(backends)})"}
    known: dict[str, set[str]] = {"MCP": {*backends, cfg.name}}
    exists = None
    aggregation = cfg.aggregation
    if aggregation.conflict_resolution == "prefix" and backends:
        prefixes = [aggregation.prefix_format.replace("{workload}", b) for b in backends]
        named = {
            (kind, name)
            for p in policies
            for kind, name in named_in(p.est)
            if kind in ("Tool", "Prompt") and not name.startswith(tuple(prefixes))
        }  # suggested with each backend's prefix
        for kind, word in (("Tool", "tool"), ("Prompt", "prompt")):
            known[kind] = {prefix + name for k, name in named if k == kind for prefix in prefixes}
            notes[kind] = (
                f"under conflictResolution prefix every {word} is advertised as {aggregation.prefix_format}<name>"
            )

        def exists(kind: str, name: str) -> bool:
            if kind in ("Tool", "Prompt"):
                return name.startswith(tuple(prefixes))
            return kind != "MCP"  # names compared with resource.name are not known offline

    return unknown_names(policies, known, exists=exists, notes=notes)

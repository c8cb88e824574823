"""The Cedar policy file of benchmark (d): N policies in the seeds' style (ToolHive docs), deterministic.

The benchmark's token carries ``groups: ["bench-users", "team-3"]``. One policy lets ``bench-users`` call ``echo``
(the measured call); ``team-3`` gets only its share of the random per-tool permits, so a filtered ``tools/list``
keeps a handful of the 200 ``tool_N`` tools. No rule grants ``team-3`` (or everyone) every tool, so filtering is
visible; one forbid denies ``bench-users`` ``tool_199``.

    python benchmarks/authz_policies.py 500 > authz.json   # the file the benchmark writes, for a look
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

BENCH_GROUPS = ["bench-users", "team-3"]  # the groups claim of the benchmark's token
BENCH_GROUP_TEAM = "team-3"
TOOL_COUNT = 200
TEAMS = [f"team-{i}" for i in range(20)]
CALL = 'action == Action::"call_tool"'


def policies(n: int, seed: int = 7) -> list[str]:
    """``n`` policies: mostly per-tool group permits and forbids, argument conditions, a few per user or group."""
    rng = random.Random(seed)
    out = [
        f'permit(principal in THVGroup::"bench-users", {CALL}, resource == Tool::"echo");',
        f'forbid(principal in THVGroup::"bench-users", {CALL}, resource == Tool::"tool_{TOOL_COUNT - 1}");',
        'permit(principal in THVGroup::"mcp-admin", action, resource);',
        f'permit(principal == Client::"alice123", {CALL}, resource == Tool::"admin_tool");',
        f'forbid(principal in THVGroup::"mcp-developers", {CALL}, resource == Tool::"delete_namespace");',
    ][:n]
    others = [team for team in TEAMS if team != BENCH_GROUP_TEAM]  # for the rules that grant every tool
    while len(out) < n:
        tool, team = f"tool_{rng.randrange(TOOL_COUNT)}", rng.choice(TEAMS)
        kind = rng.random()
        if kind < 0.68:
            out.append(f'permit(principal in THVGroup::"{team}", {CALL}, resource == Tool::"{tool}");')
        elif kind < 0.78:
            out.append(f'forbid(principal in THVGroup::"{team}", {CALL}, resource == Tool::"{tool}");')
        elif kind < 0.86:
            out.append(
                f'permit(principal in THVGroup::"{team}", {CALL}, resource == Tool::"{tool}") '
                f'when {{ resource has arg_operation && resource.arg_operation == "add" }};'
            )
        elif kind < 0.89:  # unguarded: an error (policy skipped) when the call has no such argument
            out.append(f'permit(principal, {CALL}, resource == Tool::"{tool}") when {{ resource.arg_mode == "fast" }};')
        elif kind < 0.92:
            out.append(f'permit(principal, {CALL}, resource == Tool::"{tool}") when {{ resource.readOnlyHint }};')
        elif kind < 0.96:
            user = f"user{rng.randrange(1000)}@example.com"
            out.append(f'permit(principal == Client::"{user}", {CALL}, resource == Tool::"{tool}");')
        elif kind < 0.98:
            out.append(f'permit(principal in THVGroup::"{rng.choice(others)}", action, resource);')
        else:
            group = rng.choice(others)
            out.append(f'permit(principal, {CALL}, resource) when {{ principal.claim_groups.contains("{group}") }};')
    return out


def config(n: int, seed: int = 7) -> dict[str, Any]:
    """A whole authz config file (ToolHive's cedarv1 format) with ``n`` policies."""
    return {"version": "1.0", "type": "cedarv1", "cedar": {"policies": policies(n, seed), "entities_json": "[]"}}


if __name__ == "__main__":
    json.dump(config(int(sys.argv[1]) if len(sys.argv) > 1 else 500), sys.stdout, indent=2)
    print()

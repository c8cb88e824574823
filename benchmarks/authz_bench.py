"""Cedar decision cost: the sliced evaluator against the plain full policy set, at 5/50/500 policies.

Policies are in the seeds' style (ToolHive docs): mostly per-tool group permits and forbids, some argument checks,
a few rules for a group, a user or a claim on every tool. Slices are compiled on first use, so the sliced run is
warmed up over every tool first (the first decision of a new slice costs about a millisecond).
Run: `python benchmarks/authz_bench.py [--iterations N]`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from hivegate.authz import CedarAuthorizer, parse_authz_config
from hivegate.core.principal import Principal

TOOLS = [f"tool_{i}" for i in range(200)]
GROUPS = [f"mcp-team-{i}" for i in range(20)]


def policies(n: int, rng: random.Random) -> list[str]:
    """`n` policies shaped like the seeds' examples: mostly per-tool, a few per group/user, 2% claim conditions."""
    call = 'action == Action::"call_tool"'
    out = [
        f'permit(principal, {call}, resource == Tool::"weather");',
        'permit(principal in THVGroup::"mcp-admin", action, resource);',
        f'permit(principal, {call}, resource) when {{ principal.claim_roles.contains("premium") }};',
        f'permit(principal == Client::"alice123", {call}, resource == Tool::"admin_tool");',
        f'forbid(principal in THVGroup::"mcp-developers", {call}, resource == Tool::"delete_namespace");',
    ][:n]
    while len(out) < n:
        tool, group = rng.choice(TOOLS), rng.choice(GROUPS)
        kind = rng.random()
        if kind < 0.70:
            out.append(f'permit(principal in THVGroup::"{group}", {call}, resource == Tool::"{tool}");')
        elif kind < 0.80:
            out.append(f'forbid(principal in THVGroup::"{group}", {call}, resource == Tool::"{tool}");')
        elif kind < 0.91:
            out.append(
                f'permit(principal, {call}, resource == Tool::"{tool}") '
                f'when {{ resource has arg_operation && resource.arg_operation == "add" }};'
            )
        elif kind < 0.95:
            out.append(f'permit(principal in THVGroup::"{group}", action, resource);')
        elif kind < 0.98:
            out.append(f'permit(principal == Client::"user{rng.randrange(1000)}@example.com", {call}, resource);')
        else:
            out.append(f'permit(principal, {call}, resource) when {{ principal.claim_groups.contains("{group}") }};')
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def time_decisions(authz: CedarAuthorizer, who: Principal, names: list[str]) -> tuple[float, float]:
    samples = []
    for name in names:
        start = time.perf_counter_ns()
        authz.decide(who, "call_tool", name, arguments={"operation": "add", "a": 1, "b": 2})
        samples.append((time.perf_counter_ns() - start) / 1000)
    return percentiles(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=3000)
    iterations = parser.parse_args().iterations
    rng = random.Random(7)
    who = Principal(
        "00u1abcd",
        "https://example.okta.com/oauth2/default",
        "jwt",
        {
            "sub": "00u1abcd",
            "iss": "https://example.okta.com/oauth2/default",
            "aud": "api://hivegate",
            "exp": 1_900_000_000,
            "iat": 1_800_000_000,
            "scp": ["openid", "profile"],
            "email": "dev@example.com",
            "groups": ["mcp-developers", "mcp-team-3", "Everyone"],
        },
    )
    names = [rng.choice(TOOLS) for _ in range(iterations)]
    print(f"decide (call_tool, 3 args), {iterations} decisions, µs")
    print(f"{'policies':>8} {'sliced p50':>10} {'p99':>8} {'full p50':>9} {'p99':>8} {'full/sliced':>11}")
    full_authz: CedarAuthorizer | None = None
    sliced_authz: CedarAuthorizer | None = None
    for n in (5, 50, 500):
        cfg = parse_authz_config({"version": "1.0", "type": "cedarv1", "cedar": {"policies": policies(n, rng)}})
        start = time.perf_counter()
        sliced_authz = CedarAuthorizer.from_config(cfg, "bench")
        load_ms = (time.perf_counter() - start) * 1000
        full_authz = CedarAuthorizer.from_config(cfg, "bench", slicing=False)
        time_decisions(sliced_authz, who, TOOLS)  # warm up: compiles the slices this caller needs
        s50, s99 = time_decisions(sliced_authz, who, names)
        f50, f99 = time_decisions(full_authz, who, names)
        print(f"{n:>8} {s50:>10.1f} {s99:>8.1f} {f50:>9.1f} {f99:>8.1f} {f50 / s50:>10.1f}x   (load {load_ms:.0f} ms)")
    assert sliced_authz is not None
    assert full_authz is not None
    items = [(t, {"readOnlyHint": True}) for t in TOOLS]
    print("filter 200 tools against 500 policies, ms")
    for label, authz in (("sliced", sliced_authz), ("full", full_authz)):
        samples = []
        for _ in range(30):
            start = time.perf_counter_ns()
            authz.filter(who, "call_tool", items)
            samples.append((time.perf_counter_ns() - start) / 1e6)
        p50, p99 = percentiles(samples)
        print(f"  {label:>6}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()

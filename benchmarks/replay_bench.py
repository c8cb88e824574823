"""`hivegate authz replay` throughput: audit events re-decided per second, beside the cost of one Cedar decision.

The trail is written by the gateway's own path: each distinct call goes through `McpGate` and
`pipeline.authorize.admit`, and the real `Auditor` writes its line (claims of an Okta-like token, the arguments the
policies read). A real log repeats calls (a token is used for many calls), so the trail samples `--events` lines from
`--distinct` distinct calls; `--distinct` equal to `--events` is the worst case, every line a new decision. The
policies are benchmark (d)'s 500 (`authz_policies.py`); the replay decides under them and under a changed copy.

Run: `python benchmarks/replay_bench.py [--events 200000] [--distinct 2000] [--policies 500]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
from typing import Any

import orjson

from authz_policies import TEAMS, TOOL_COUNT, config
from hivegate.authz import CedarAuthorizer, parse_authz_config
from hivegate.authz.gate import McpGate
from hivegate.authz.replay import Replayer
from hivegate.core.principal import Principal
from hivegate.errors import InsufficientScope
from hivegate.observe.audit import AuditConfig, Auditor, event_type
from hivegate.observe.exchange import Exchange
from hivegate.pipeline.authorize import admit
from hivegate.pipeline.messages import Inbound


class _Fixed:
    def __init__(self, authorizer: CedarAuthorizer) -> None:
        self.current = authorizer


def principal(i: int) -> Principal:
    sub = f"00u{i:05d}"
    claims: dict[str, Any] = {
        "ver": 1, "jti": f"AT.{i}", "iss": "https://example.okta.com/oauth2/aus1", "aud": "api://tools",
        "iat": 1_763_000_000, "exp": 1_763_003_600, "cid": "0oa1client", "uid": sub,
        "scp": ["openid", "profile"], "sub": sub, "groups": ["bench-users", TEAMS[i % len(TEAMS)]],
        "email": f"user{i}@example.com",
    }  # fmt: skip
    return Principal(sub, claims["iss"], "jwt", claims)


async def distinct_lines(authorizer: CedarAuthorizer, n: int, rng: random.Random) -> list[bytes]:
    """`n` audit lines of distinct calls, each decided and written as the gateway does."""
    gate = McpGate(_Fixed(authorizer), listeners=(lambda _: None,))
    auditor = Auditor(AuditConfig(authorization_arguments="read"), component="bench", transport="streamable-http")
    users = [principal(i) for i in range(max(1, n // 10))]
    lines = []
    for i in range(n):
        who = rng.choice(users)
        arguments = {"operation": rng.choice(["add", "mul"]), "n": i}
        message = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                   "params": {"name": f"tool_{rng.randrange(TOOL_COUNT)}", "arguments": arguments}}  # fmt: skip
        exchange = Exchange.open("/mcp", "POST", "10.0.0.1", "bench/1")
        exchange.principal = who
        call = exchange.call(message)
        with contextlib.suppress(InsufficientScope):  # no requiredScopes here; kept for the gateway's shape
            await admit(gate, who, Inbound((message,), False, b""), {i: call})
        call.answered({"jsonrpc": "2.0", "id": i, "result": {}})
        lines.append(orjson.dumps(auditor.event(exchange, call, event_type("tools/call"))))
    return lines


def decision_cost(cfg: Any, rng: random.Random, samples: int) -> tuple[float, float]:
    """µs per decision: the full policy set with no caches, and sliced with its slices compiled but no memo."""
    users = [principal(i) for i in range(samples)]
    calls = [(users[i], f"tool_{rng.randrange(TOOL_COUNT)}", {"operation": "add", "n": i}) for i in range(samples)]
    full = CedarAuthorizer.from_config(cfg, "bench", slicing=False)
    start = time.perf_counter()
    for who, tool, args in calls:
        full.decide(who, "call_tool", tool, arguments=args)
    full_us = (time.perf_counter() - start) / samples * 1e6
    sliced = CedarAuthorizer.from_config(cfg, "bench")
    for who, tool, args in calls:  # compile every slice these calls need (a caller per call: no decision memo hit)
        sliced.decide(who, "call_tool", tool, arguments=args)
    fresh = [(principal(samples + i), tool, args) for i, (_, tool, args) in enumerate(calls)]
    start = time.perf_counter()
    for who, tool, args in fresh:
        sliced.decide(who, "call_tool", tool, arguments=args)
    return full_us, (time.perf_counter() - start) / samples * 1e6


def replay_rate(lines: list[bytes], new: Any, old: Any | None) -> tuple[float, int]:
    replayer = Replayer(new, old)
    start = time.perf_counter()
    report = replayer.feed(lines)
    elapsed = time.perf_counter() - start
    assert report.replayed == len(lines), report
    return len(lines) / elapsed, report.changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--distinct", type=int, default=2_000)
    parser.add_argument("--policies", type=int, default=500)
    args = parser.parse_args()
    rng = random.Random(11)
    raw = config(args.policies)
    cfg = parse_authz_config(raw)
    freeze = 'forbid(principal, action == Action::"call_tool", resource == Tool::"tool_7");'
    changed = [*raw["cedar"]["policies"], freeze]
    new = parse_authz_config({**raw, "cedar": {**raw["cedar"], "policies": changed}})
    pool = asyncio.run(distinct_lines(CedarAuthorizer.from_config(cfg, "bench"), args.distinct, rng))
    trail = [rng.choice(pool) for _ in range(args.events)]
    worst = asyncio.run(distinct_lines(CedarAuthorizer.from_config(cfg, "bench"), min(args.events, 20_000), rng))
    full_us, sliced_us = decision_cost(cfg, rng, 2_000)
    print(f"{args.policies} policies; one Cedar decision: {full_us:.1f} µs against the full set (no caches), "
          f"{sliced_us:.1f} µs sliced (no decision memo)")  # fmt: skip
    size = sum(len(line) for line in trail) / len(trail)
    for label, lines, old in (
        (f"{args.events} events, {args.distinct} distinct, vs recorded", trail, None),
        (f"{args.events} events, {args.distinct} distinct, vs old config", trail, cfg),
        (f"{len(worst)} events, all distinct, vs recorded", worst, None),
    ):
        rate, changes = replay_rate(lines, new, old)
        print(f"replay {label}: {rate:,.0f} events/s ({1e6 / rate:.1f} µs/event, {changes} changed; "
              f"lines ~{size:.0f} bytes)")  # fmt: skip


if __name__ == "__main__":
    main()

"""What hivegate promises while a part of a deployment fails, checked against what the load saw.

Each promise is checked on the operations whose start falls in a phase (see `faults.py`); `GRACE` is how long
HAProxy takes to see a replica is gone (two failed checks 0.5 s apart) or back, and how long a backend or Redis
that came back may take to be used again."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from faults import Phase, Schedule, phase_of
from load import Load, Op

__all__ = ["GRACE", "Verdict", "audit_gaps", "check", "percentile"]

GRACE = 2.0  # seconds
SLOWDOWN = 3.0  # p99 after a fault may be this many times the p99 before the faults ...
SLACK_MS = 100.0  # ... plus this much (the machine is shared: one slow scheduling round is not a regression)
STORE_TIMEOUT = 2.0  # hivegate.storage.redis: socket_timeout, how long a call waits for an answer from Redis
SLACK_S = 1.5


@dataclass(frozen=True)
class Verdict:
    promise: str
    measured: str
    ok: bool


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def in_phase(ops: Iterable[Op], phases: list[Phase], phase: Phase) -> list[Op]:
    """The operations that belong to `phase` (see `faults.phase_of`)."""
    return [op for op in ops if phase_of(phases, op.start, op.end) is phase]


def errors(ops: Iterable[Op]) -> list[Op]:
    return [op for op in ops if op.outcome != "ok"]


def audit_gaps(load: Load, audit_files: dict[str, list[Path]]) -> dict[str, tuple[int, int, int]]:
    """Per set: (tool calls answered, audit lines of tool calls written, answered calls with no audit line)."""
    found: dict[str, tuple[int, int, int]] = {}
    for target, files in audit_files.items():
        audited: set[str] = set()
        for path in files:
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("type") == "mcp_tool_call":
                    text = (((event.get("data") or {}).get("request") or {}).get("arguments") or {}).get("text")
                    if isinstance(text, str):
                        audited.add(text)
        answered = {op.call_id for op in load.ops if op.what.startswith(f"{target} call") and op.outcome == "ok"}
        found[target] = (len(answered), len(audited), len(answered - audited))
    return found


def _p99_ms(ops: list[Op]) -> float:
    return 1000 * percentile([op.end - op.start for op in ops if op.outcome == "ok"], 0.99)


def _calls(ops: Iterable[Op]) -> list[Op]:
    return [op for op in ops if op.what.startswith(("vmcp ", "run "))]


def check(load: Load, schedule: Schedule, sessions: int, audit: dict[str, tuple[int, int, int]]) -> list[Verdict]:
    phases = schedule.phases
    named = {phase.name: phase for phase in phases}
    verdicts: list[Verdict] = []
    calm = named.get("before faults")
    base_p99 = float("nan")
    if calm is not None:
        ops = in_phase(load.ops, phases, calm)
        bad = errors(ops)
        verdicts.append(Verdict("no fault: nothing fails", f"{len(bad)} errors in {len(ops)} operations", not bad))
        base_p99 = _p99_ms(ops)

    for fault in schedule.faults:
        during = named[f"during {fault.name}"]
        after = named.get(f"after {fault.name}")
        ops = in_phase(load.ops, phases, during)
        bad = errors(ops)
        until = after.end if after else during.end
        lost = [(t, opened) for t, _, opened in load.sessions_lost if during.start <= t < until]
        if fault.name == "replica":
            late = [op for op in bad if op.start >= fault.at + GRACE]
            verdicts.append(
                Verdict(
                    f"replica killed: only requests in flight at it fail (<= 1 per user and set; none started "
                    f"{GRACE:.0f} s after the kill)",
                    f"{len(bad)} errors (limit {2 * sessions}), {len(late)} later",
                    len(bad) <= 2 * sessions and not late,
                )
            )
            verdicts.append(Verdict("replica killed: no session lost", f"{len(lost)} lost", not lost))
        elif fault.name == "redis":
            calls = _calls(ops)
            other = [op for op in errors(calls) if op.outcome != "http 503"]
            verdicts.append(
                Verdict(
                    "Redis stopped: calls fail only with 503 + Retry-After (a session the replica does not hold yet)",
                    f"{len(errors(calls))} errors in {len(calls)}, {len(other)} of another kind",
                    not other,
                )
            )
            started = [op for op in calls if op.start >= fault.at]  # not the ones already slow before the stop
            slowest = max((op.end - op.start for op in started), default=0.0)
            verdicts.append(
                Verdict(
                    f"Redis stopped: no call waits longer than the store's timeout ({STORE_TIMEOUT:.0f} s) "
                    f"+ {SLACK_S:.1f} s",
                    f"slowest {slowest:.2f} s",
                    slowest <= STORE_TIMEOUT + SLACK_S,
                )
            )
            during_stop = [t for t, opened in lost if opened >= fault.at]
            verdicts.append(
                Verdict(
                    "Redis stopped: no session lost, not even one opened during the stop",
                    f"{len(lost)} lost ({len(during_stop)} opened during the stop)",
                    not lost,
                )
            )
        else:
            others = [op for op in bad if "remote" not in op.what and op.what != "run list"]
            local = [op for op in others if op.what == "vmcp call local"]
            verdicts.append(
                Verdict(
                    "backend killed: only calls to it fail (and at most 1 call of the user whose stdio process died)",
                    f"{len(bad)} errors, {len(others)} elsewhere",
                    len(others) == len(local) <= 1,
                )
            )
        if after is not None:
            recovered = [op for op in in_phase(load.ops, phases, after) if op.start >= after.start + GRACE]
            bad_after = errors(recovered)
            verdicts.append(
                Verdict(
                    f"{fault.name}: everything works {GRACE:.0f} s after the part is back",
                    f"{len(bad_after)} errors in {len(recovered)}",
                    not bad_after,
                )
            )
            p99 = _p99_ms(recovered)
            limit = SLOWDOWN * base_p99 + SLACK_MS
            verdicts.append(
                Verdict(
                    f"{fault.name}: latency recovers (p99 after <= {SLOWDOWN:.0f}x p99 before faults "
                    f"+ {SLACK_MS:.0f} ms)",
                    f"p99 {p99:.0f} ms (limit {limit:.0f})",
                    not p99 > limit,
                )
            )
    for target, (answered, written, missing) in audit.items():
        verdicts.append(
            Verdict(
                f"{target}: every answered tool call has an audit line",
                f"{answered} answered, {written} lines, {missing} missing",
                missing == 0,
            )
        )
    return verdicts

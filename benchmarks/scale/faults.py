"""The fault schedule of the scale bench and the phases it cuts the run into.

After a warm-up, each fault has a `during` phase (from the fault until the system is whole again: the killed process
restarted and serving, Redis resumed) and a calm `after` phase, which is also the one before the next fault. An
operation belongs to the phase its start falls in, except that one started in a calm phase and still running when
the next fault struck belongs to that fault (`phase_of`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from topology import Topology

__all__ = ["Fault", "Phase", "Schedule", "play"]


@dataclass
class Phase:
    name: str
    start: float
    end: float


@dataclass
class Fault:
    name: str  # "replica", "redis", "backend"
    length: float  # how long the part stays down
    restart: bool = True  # replica: start it again (the smoke run leaves it dead: a restart takes seconds)
    at: float = 0.0  # when it was injected (seconds after the load began)
    started: float = 0.0  # when it was complete (e.g. after the /proc walk that finds the stdio backends)
    whole: float = 0.0  # when every part was back


@dataclass
class Schedule:
    faults: list[Fault]
    settle: float  # the `after` window's length
    warmup: float  # not measured: the first pass of every session over every replica
    phases: list[Phase] = field(default_factory=list)
    rss: dict[str, int] = field(default_factory=dict)  # peak RSS (KiB) per replica (with its stdio children)
    notes: list[str] = field(default_factory=list)


async def _replica(topo: Topology, fault: Fault, now: Callable[[], float]) -> None:
    victims = [topo.vmcp[0], topo.run[0]]
    fault.at = now()
    for replica in victims:
        topo.kill9(replica)
    fault.started = now()
    await asyncio.sleep(fault.length)
    if not fault.restart:
        return
    for replica in victims:
        topo.restart(replica)
    for replica in victims:
        await asyncio.to_thread(topo.wait_serving, replica)
    await asyncio.sleep(1.0)  # HAProxy's health check (every 0.5 s, rise 1) puts it back


async def _redis(topo: Topology, fault: Fault, now: Callable[[], float]) -> None:
    fault.at = now()
    topo.stop_redis()
    fault.started = now()
    try:
        await asyncio.sleep(fault.length)
    finally:
        topo.resume_redis()


async def _backend(topo: Topology, fault: Fault, now: Callable[[], float], schedule: Schedule) -> None:
    stdio = topo.stdio_backends(topo.vmcp[-1])
    fault.at = now()
    topo.kill_http_backend()
    if stdio:
        import os
        import signal

        os.kill(stdio[0], signal.SIGKILL)
    schedule.notes.append(f"backend fault: killed the HTTP backend and 1 of {len(stdio)} stdio backends of vmcp-last")
    fault.started = now()
    await asyncio.sleep(fault.length)
    topo.restart_http_backend()
    from harness import wait_for_port

    port = int(topo.http_backend_argv[-1])
    await asyncio.to_thread(wait_for_port, port, 30, topo.http_backend)


async def _sample_rss(topo: Topology, schedule: Schedule, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for replica in [*topo.vmcp, *topo.run]:
            schedule.rss[replica.name] = max(schedule.rss.get(replica.name, 0), replica.own_rss_kib())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def play(
    topo: Topology, schedule: Schedule, t0: Callable[[], float], started: asyncio.Event, done: asyncio.Event
) -> None:
    """Once `started`: `settle` seconds of calm, then each fault followed by `settle` seconds of calm, recording each
    phase's bounds; then set `done`."""
    await started.wait()

    def now() -> float:
        return time.monotonic() - t0()

    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(topo, schedule, stop))
    try:
        await asyncio.sleep(schedule.warmup)  # every replica resumes every session once, starting its backends
        schedule.phases.append(Phase("warm-up", 0.0, now()))
        last, calm = now(), "before faults"
        for fault in schedule.faults:
            await asyncio.sleep(schedule.settle)
            if fault.name == "replica":
                await _replica(topo, fault, now)
            elif fault.name == "redis":
                await _redis(topo, fault, now)
            else:
                await _backend(topo, fault, now, schedule)
            fault.whole = now()
            schedule.phases.append(Phase(calm, last, fault.at))
            schedule.phases.append(Phase(f"during {fault.name}", fault.at, fault.whole))
            last, calm = fault.whole, f"after {fault.name}"
        await asyncio.sleep(schedule.settle)
        schedule.phases.append(Phase(calm, last, now()))
    finally:
        done.set()
        topo.resume_redis()
        stop.set()
        await sampler


def phase_of(phases: list[Phase], start: float, end: float) -> Phase | None:
    for index, phase in enumerate(phases):
        if phase.start <= start < phase.end:
            calm = not phase.name.startswith("during")
            if calm and end > phase.end and index + 1 < len(phases):
                return phases[index + 1]
            return phase
    return None

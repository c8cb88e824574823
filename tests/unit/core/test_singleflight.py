from __future__ import annotations

import asyncio
import gc

import pytest

from hivegate.core.singleflight import SingleFlight

pytestmark = pytest.mark.anyio


async def test_concurrent_callers_share_one_run_and_a_later_caller_runs_again() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    waiters = [asyncio.ensure_future(flight.run("k", work)) for _ in range(5)]
    await asyncio.sleep(0)
    assert "k" in flight
    release.set()
    assert await asyncio.gather(*waiters) == [1] * 5
    assert "k" not in flight
    assert await flight.run("k", work) == 2  # nothing is cached once the run ends


async def test_keys_run_independently() -> None:
    flight: SingleFlight[str, str] = SingleFlight()

    async def echo(value: str) -> str:
        await asyncio.sleep(0)
        return value

    assert await asyncio.gather(flight.run("a", lambda: echo("a")), flight.run("b", lambda: echo("b"))) == ["a", "b"]


async def test_every_waiter_gets_the_exception() -> None:
    flight: SingleFlight[str, int] = SingleFlight()

    async def fail() -> int:
        await asyncio.sleep(0)
        raise LookupError("no such thing")

    outcomes = await asyncio.gather(flight.run("k", fail), flight.run("k", fail), return_exceptions=True)
    assert [str(o) for o in outcomes] == ["no such thing", "no such thing"]
    assert all(isinstance(o, LookupError) for o in outcomes)


async def test_a_caller_that_gives_up_does_not_cancel_the_work_for_the_others() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "done"

    impatient = asyncio.ensure_future(flight.run("k", work))
    patient = asyncio.ensure_future(flight.run("k", work))
    await asyncio.sleep(0)
    impatient.cancel()
    release.set()
    assert await patient == "done"
    assert impatient.cancelled()


async def test_an_error_nobody_waits_for_is_not_reported_as_unhandled() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    reported: list[object] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    async def fail() -> int:
        raise LookupError("nobody listens")

    task = flight.start("k", fail)
    while "k" in flight:  # until the run has ended and its callbacks ran
        await asyncio.sleep(0)
    assert task.done()
    del task
    gc.collect()
    loop.set_exception_handler(None)
    assert reported == []

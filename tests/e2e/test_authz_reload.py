"""Policy reload in a running gateway: a changed file or SIGHUP swaps the policies, a broken file changes nothing.

No fixed sleeps: every wait polls a condition (a request's status, a line on stderr) against a deadline.
"""

from __future__ import annotations

import inspect
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client

from e2e.test_authz_gateway import AUDIENCE, RawClient, sdk_client, stdio_gateway, text_of, write_authz
from support.gateway import RunningGateway

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

WEATHER = 'permit(principal, action == Action::"call_tool", resource == Tool::"weather");'
GET_PODS = 'permit(principal, action == Action::"call_tool", resource == Tool::"get_pods");'
SLOW = 'permit(principal, action == Action::"call_tool", resource == Tool::"slow");'
ECHO = 'permit(principal, action == Action::"call_tool", resource == Tool::"echo");'
BROKEN = 'permit(principal, action == Action::"call_tool" resource);'
DEADLINE = 15.0  # the file is polled every 2 s


async def status_of(raw: RawClient, tool: str) -> int:
    """The HTTP status a call of `tool` gets (403 when refused; 200 when it reached the backend)."""
    _, resp = await raw.request("tools/call", {"name": tool, "arguments": {}})
    return resp.status_code


async def status_is(raw: RawClient, tool: str, status: int) -> bool:
    return await status_of(raw, tool) == status


async def until(condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Poll `condition` (sync or async) until it holds; fail naming `what` after DEADLINE seconds."""
    with anyio.move_on_after(DEADLINE):
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await anyio.sleep(0.05)
    raise AssertionError(f"after {DEADLINE} s: {what}")


def logged(gw: RunningGateway, text: str, after: int = 0) -> Callable[[], bool]:
    """Whether a stderr line from index `after` on contains `text`."""
    return lambda: any(text in line for line in gw.stderr[after:])


async def test_a_changed_file_applies_a_broken_one_is_ignored_and_sighup_reloads(tmp_path: Path) -> None:
    async with stdio_gateway(tmp_path, [WEATHER]) as (gw, issuer, log), httpx.AsyncClient(timeout=30) as http:
        config = tmp_path / "authz.json"
        raw = RawClient(http, gw.url, issuer.token(AUDIENCE, sub="bob"))
        await raw.initialize()
        assert await status_of(raw, "weather") == 200
        assert await status_of(raw, "get_pods") == 403

        # the file changes: the new policies apply within a poll interval, the old ones are gone
        mark = len(gw.stderr)
        write_authz(config, [GET_PODS])
        await until(lambda: status_is(raw, "get_pods", 200), "the changed file was not picked up")
        assert await status_of(raw, "weather") == 403
        await until(logged(gw, "authz: policy file changed; 1 policies loaded", mark), "no reload line")
        _, resp = await raw.request("tools/list")
        assert [t["name"] for t in resp.json()["result"]["tools"]] == ["get_pods"]

        # a broken file: logged, and the policies in force stay
        mark = len(gw.stderr)
        write_authz(config, [WEATHER, BROKEN])
        await until(logged(gw, "keeping the 1 policies in force", mark), "the broken file was not reported")
        error = next(line for line in gw.stderr[mark:] if "keeping the 1 policies in force" in line)
        assert "cedar.policies[1]" in error
        assert "authz:" in error
        assert await status_of(raw, "get_pods") == 200
        assert await status_of(raw, "weather") == 403
        # SIGHUP with the file still broken: the same
        mark = len(gw.stderr)
        gw.process.send_signal(signal.SIGHUP)
        await until(logged(gw, "keeping the 1 policies in force", mark), "SIGHUP did not try to reload")
        assert await status_of(raw, "get_pods") == 200

        # the file gone: the same
        mark = len(gw.stderr)
        config.unlink()
        gw.process.send_signal(signal.SIGHUP)
        await until(logged(gw, "cannot read", mark), "SIGHUP did not report the missing file")
        assert any("keeping the 1 policies in force" in line for line in gw.stderr[mark:])
        assert await status_of(raw, "get_pods") == 200

        # fixed, then SIGHUP: reloaded at once
        mark = len(gw.stderr)
        write_authz(config, [WEATHER, ECHO])
        gw.process.send_signal(signal.SIGHUP)
        await until(logged(gw, "authz: SIGHUP; 2 policies loaded", mark), "SIGHUP did not reload")
        assert await status_of(raw, "weather") == 200
        assert await status_of(raw, "get_pods") == 403
        assert not any("Traceback" in line for line in gw.stderr)

    assert log.tools() == ["get_pods", "get_pods", "get_pods", "get_pods", "weather", "weather"]


async def test_calls_keep_succeeding_while_policies_reload(tmp_path: Path) -> None:
    """50 concurrent callers, some with calls in flight across the swap, while the policies reload twice."""
    async with stdio_gateway(tmp_path, [WEATHER, SLOW], suffix=".yaml") as (gw, issuer, log):
        config = tmp_path / "authz.yaml"
        token = issuer.token(AUDIENCE, sub="bob")
        reloads_done = anyio.Event()
        answered: list[str] = []

        async def caller(client: Client, index: int) -> None:
            # every caller makes at least one call, and keeps calling until both reloads are through
            while True:
                if index % 5 == 0:
                    result = await client.call_tool("slow", {"seconds": 0.3})
                    assert text_of(result) == "slept 0.3"
                else:
                    result = await client.call_tool("weather", {"city": f"c{index}"})
                    assert text_of(result) == f"sunny in c{index}"
                answered.append(text_of(result))
                if reloads_done.is_set():
                    return

        async def reloader() -> None:
            # each reload happens with calls flowing before and after it; every policy set permits weather and slow
            await until(lambda: len(answered) >= 50, "calls did not start")
            for policies, reason in (([WEATHER, SLOW, GET_PODS], "SIGHUP"), ([SLOW, WEATHER], "policy file changed")):
                mark = len(gw.stderr)
                write_authz(config, policies)
                if reason == "SIGHUP":
                    gw.process.send_signal(signal.SIGHUP)
                await until(logged(gw, f"authz: {reason}; {len(policies)} policies loaded", mark), reason)
                count = len(answered)
                await until(lambda: len(answered) >= count + 50, f"calls stopped after the {reason} reload")  # noqa: B023
            reloads_done.set()

        async with sdk_client(gw.url, token) as one, sdk_client(gw.url, token) as two:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(reloader)
                    for index in range(50):
                        tasks.start_soon(caller, one if index % 2 else two, index)

        assert len(answered) >= 150
        assert len(log.tools()) == len(answered)
        assert not any(" ERROR " in line or "Traceback" in line for line in gw.stderr), "\n".join(gw.stderr)

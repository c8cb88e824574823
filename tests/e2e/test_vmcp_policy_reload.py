"""`hivegate vmcp serve` reloads its Cedar policies on SIGHUP, as `hivegate run` does: the configuration is loaded
again and its `incomingAuth.authz` swapped in; a configuration that does not load keeps the policies in force."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from e2e.test_authz_reload import logged, until
from e2e.test_vmcp_aggregation import connect, stdio_backend
from support.gateway import hivegate_vmcp
from support.issuer import local_issuer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

AUDIENCE = "vmcp-reload"
ECHO = 'permit(principal, action == Action::"call_tool", resource == Tool::"tools_echo");'
WEATHER = 'permit(principal, action == Action::"call_tool", resource == Tool::"tools_weather");'


def write(path: Path, issuer_url: str, jwks_url: str, policies: list[str]) -> None:
    config: dict[str, Any] = {
        "name": "reload",
        "backends": [stdio_backend("tools")],
        "incomingAuth": {
            "type": "oidc",
            "oidc": {"issuer": issuer_url, "audience": AUDIENCE, "jwksUrl": jwks_url, "insecureAllowHttp": True,
                     "protectedResourceAllowPrivateIp": True},
            "authz": {"type": "cedar", "policies": policies},
        },
    }  # fmt: skip
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config))
    tmp.replace(path)


async def test_sighup_reloads_the_policies_and_a_broken_configuration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "vmcp.yaml"
    async with local_issuer() as issuer:
        write(path, issuer.url, issuer.jwks_url, [ECHO])
        async with (
            hivegate_vmcp(["--config", str(path), "--port", "0"]) as gw,
            httpx.AsyncClient(timeout=30) as http,
        ):
            client = await connect(http, gw, issuer.token(AUDIENCE))

            async def status(tool: str) -> int:
                return (await client.call(tool, **({"text": "x"} if tool.endswith("echo") else {}))).status_code

            assert await status("tools_echo") == 200
            assert await status("tools_weather") == 403
            write(path, issuer.url, issuer.jwks_url, [ECHO, WEATHER])
            gw.process.send_signal(signal.SIGHUP)
            await until(lambda: status_is(status, "tools_weather", 200), "weather allowed after SIGHUP")
            mark = len(gw.stderr)
            path.write_text("backends: [")  # not YAML
            gw.process.send_signal(signal.SIGHUP)
            await until(logged(gw, "keeping the 2 policies in force", after=mark), "the broken reload logged")
            assert await status("tools_weather") == 200
            assert await status("tools_echo") == 200


async def status_is(status: Any, tool: str, expected: int) -> bool:
    return bool(await status(tool) == expected)

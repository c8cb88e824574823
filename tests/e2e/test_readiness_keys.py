"""`/readyz`'s `keys` check through the real CLI, for `hivegate run` and `hivegate vmcp serve`: not ready while the
JWKS cannot be fetched (a closed port), ready with a real issuer's JWKS (fetched once, however often probed), ready
with the embedded authorization server's own keys, and no such check where no JWT is verified."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from joserfc.jwk import ECKey
from prometheus_client.parser import text_string_to_metric_families

from support.backend import closed_port, free_port
from support.gateway import FIXTURE, fixture_command, hivegate_run, hivegate_vmcp
from support.issuer import local_issuer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

AUDIENCE = "readiness-test"


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Poll `check` until it holds (`/readyz` caches its checks for 2 s; the vMCP's backends start)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def readyz(http: httpx.AsyncClient, base: str) -> httpx.Response:
    answer = await http.get(f"{base}/readyz")
    assert answer.status_code in (200, 503), answer.text
    return answer


def run_oidc(issuer: str, jwks_url: str) -> list[str]:
    return ["--oidc-issuer", issuer, "--oidc-audience", AUDIENCE, "--oidc-jwks-url", jwks_url,
            "--oidc-insecure-allow-http", "--jwks-allow-private-ip"]  # fmt: skip


async def test_run_is_not_ready_while_the_jwks_cannot_be_fetched() -> None:
    closed = f"http://127.0.0.1:{closed_port()}"
    diag_port = free_port()
    args = [*run_oidc(closed, f"{closed}/jwks"), "--diagnostics-port", str(diag_port), *fixture_command()]
    async with hivegate_run(args) as gw, httpx.AsyncClient(timeout=30) as http:
        ready = await readyz(http, gw.base)
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "not ready"
        assert body["checks"]["backend"] == "ok"
        assert body["checks"]["keys"].startswith("JWKS unavailable: request to")
        assert "/jwks" in body["checks"]["keys"]
        assert (await http.get(f"{gw.base}/health")).status_code == 200  # alive all the same
        scraped = (await http.get(f"http://127.0.0.1:{diag_port}/metrics")).text
        assert metric(scraped, "hivegate_check_up", check="keys") == 0
        assert metric(scraped, "hivegate_check_up", check="backend") == 1


async def test_run_is_ready_once_the_issuers_keys_are_fetched_and_probes_reuse_them() -> None:
    async with local_issuer() as issuer:
        diag_port = free_port()
        args = [*run_oidc(issuer.url, issuer.jwks_url), "--diagnostics-port", str(diag_port), *fixture_command()]
        async with hivegate_run(args) as gw, httpx.AsyncClient(timeout=30) as http:
            for _ in range(3):
                ready = await readyz(http, gw.base)
                assert ready.status_code == 200, ready.text
                assert ready.json()["checks"] == {"backend": "ok", "keys": "ok"}
            await asyncio.sleep(2.1)  # past the readiness cache: the check runs again, the JWKS is not refetched
            assert (await readyz(http, gw.base)).status_code == 200
            scraped = (await http.get(f"http://127.0.0.1:{diag_port}/metrics")).text
            assert metric(scraped, "hivegate_check_up", check="keys") == 1
            token = issuer.token(AUDIENCE)
            init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "ready", "version": "1"}}}  # fmt: skip
            headers = {"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream"}
            assert (await http.post(gw.url, json=init, headers=headers)).status_code == 200
        assert issuer.jwks_requests == 1  # fetched once, for the probes and the token alike


async def test_run_without_tokens_has_no_keys_check() -> None:
    async with hivegate_run(fixture_command()) as gw, httpx.AsyncClient(timeout=30) as http:
        ready = await readyz(http, gw.base)
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"backend": "ok"}


async def test_run_with_the_embedded_authorization_server_checks_its_keys(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "signing.pem").write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
    config = {
        "issuer": f"http://127.0.0.1:{port}",
        "signingKeySecretRefs": [{"file": "signing.pem"}],
        "storage": {"type": "memory"},
        "upstreamProviders": [
            {"name": "corp", "type": "oidc",
             "oidcConfig": {"issuerUrl": f"http://127.0.0.1:{closed_port()}", "clientId": "hivegate-as"}},
        ],
    }  # fmt: skip
    document = {
        "apiVersion": "toolhive.stacklok.dev/v1alpha1",
        "kind": "MCPExternalAuthConfig",
        "metadata": {"name": "as"},
        "spec": {"type": "embeddedAuthServer", "embeddedAuthServer": config},
    }
    path = tmp_path / "auth-server.yaml"
    path.write_text(yaml.safe_dump(document))
    args = ["--port", str(port), "--auth-server-config", str(path), *fixture_command()]
    async with hivegate_run(args) as gw, httpx.AsyncClient(timeout=30) as http:
        ready = await readyz(http, gw.base)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"backend": "ok", "keys": "ok", "authserver storage": "ok"}


def vmcp_config(tmp_path: Path, incoming: dict[str, Any]) -> str:
    config = {
        "name": "ready",
        "backends": [{"name": "tools", "command": sys.executable, "args": [FIXTURE]}],
        "incomingAuth": incoming,
        "telemetry": {"enablePrometheusMetricsPath": True},
    }
    path = tmp_path / "vmcp.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def vmcp_oidc(issuer: str, jwks_url: str) -> dict[str, Any]:
    return {"type": "oidc", "oidc": {"issuer": issuer, "audience": AUDIENCE, "jwksUrl": jwks_url,
                                     "insecureAllowHttp": True, "protectedResourceAllowPrivateIp": True}}  # fmt: skip


async def test_vmcp_is_not_ready_while_the_jwks_cannot_be_fetched(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{closed_port()}"
    path = vmcp_config(tmp_path, vmcp_oidc(closed, f"{closed}/jwks"))
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gw, httpx.AsyncClient(timeout=30) as http:

        async def backends_up() -> bool:
            return (await readyz(http, gw.base)).json()["checks"]["backends"] == "ok"

        await eventually(backends_up)
        ready = await readyz(http, gw.base)
        assert ready.status_code == 503
        assert ready.json()["checks"]["keys"].startswith("JWKS unavailable: request to")
        scraped = (await http.get(f"{gw.base}/metrics")).text
        assert metric(scraped, "hivegate_check_up", check="keys") == 0
        assert metric(scraped, "hivegate_check_up", check="backends") == 1


async def test_vmcp_is_ready_with_the_issuers_keys(tmp_path: Path) -> None:
    async with local_issuer() as issuer:
        path = vmcp_config(tmp_path, vmcp_oidc(issuer.url, issuer.jwks_url))
        async with hivegate_vmcp(["--config", path, "--port", "0"]) as gw, httpx.AsyncClient(timeout=30) as http:

            async def ready() -> bool:
                return (await readyz(http, gw.base)).status_code == 200

            await eventually(ready)
            assert (await readyz(http, gw.base)).json()["checks"] == {"backends": "ok", "keys": "ok"}
            scraped = (await http.get(f"{gw.base}/metrics")).text
            assert metric(scraped, "hivegate_check_up", check="keys") == 1
        assert issuer.jwks_requests == 1


async def test_vmcp_without_tokens_has_no_keys_check(tmp_path: Path) -> None:
    path = vmcp_config(tmp_path, {"type": "anonymous"})
    async with hivegate_vmcp(["--config", path, "--port", "0"]) as gw, httpx.AsyncClient(timeout=30) as http:

        async def ready() -> bool:
            return (await readyz(http, gw.base)).status_code == 200

        await eventually(ready)
        assert (await readyz(http, gw.base)).json()["checks"] == {"backends": "ok"}

"""The diagnostics endpoints: `/metrics` (Prometheus), `/health` (alive), `/readyz` (ready for traffic).

Served on `--diagnostics-port`, a socket of its own, so metrics are never exposed on the MCP port; `/health` and
`/readyz` are also answered on the MCP port for probes that only know that one.
"""

from __future__ import annotations

from hivegate.asgi.http import send_bytes, send_json
from hivegate.asgi.types import ASGIApp, Receive, Scope, Send
from hivegate.observe.health import Readiness
from hivegate.observe.metrics import CONTENT_TYPE, Metrics

__all__ = ["DiagnosticsApp", "readiness_endpoint"]


def readiness_endpoint(readiness: Readiness) -> ASGIApp:
    async def readyz(scope: Scope, receive: Receive, send: Send) -> None:
        results = await readiness.results()
        ok = all(r.ok for r in results)
        body = {"status": "ready" if ok else "not ready", "checks": {r.name: r.detail for r in results}}
        await send_json(send, 200 if ok else 503, body, [(b"cache-control", b"no-store")])

    return readyz


class DiagnosticsApp:
    def __init__(self, metrics: Metrics | None, readiness: Readiness) -> None:
        self._metrics = metrics
        self._readiness = readiness
        self._readyz = readiness_endpoint(readiness)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            await send_bytes(send, 405, b"", [(b"allow", b"GET")])
        elif path == "/metrics" and self._metrics is not None:
            self._metrics.checked((r.name, r.ok) for r in await self._readiness.results())
            await send_bytes(send, 200, self._metrics.render(), [(b"content-type", CONTENT_TYPE.encode())])
        elif path == "/health":
            await send_json(send, 200, {"status": "ok"})
        elif path == "/readyz":
            await self._readyz(scope, receive, send)
        else:
            await send_json(send, 404, {"error": "not_found", "error_description": f"no route for {path}"})

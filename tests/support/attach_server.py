"""A stand-in for the Kubernetes API server's `pods/attach`: the WebSocket protocol (channel-prefixed binary frames,
`v5.channel.k8s.io`/`v4.channel.k8s.io`, bearer token) in front of a real stdio MCP server process (the repo's
fixture), as a container with `stdin: true` is: one process, its stdout read by every attached stream, stdin fed by
all of them, kept open when a stream goes. `GET …/pods/POD` answers the pod's phase (the gateway's readiness).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from support.gateway import FIXTURE

TOKEN = "attach-test-token"


@dataclass
class AttachServer:
    url: str
    process: asyncio.subprocess.Process
    attached: list[web.WebSocketResponse] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)  # the query of each attach


@asynccontextmanager
async def attach_server(namespace: str = "tools", pod: str = "server-0", container: str = "mcp") -> AsyncIterator[
    AttachServer
]:  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, FIXTURE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    server: AttachServer | None = None

    def authorized(request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def pod_status(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        return web.json_response({"kind": "Pod", "metadata": {"name": pod}, "status": {"phase": "Running"}})

    async def attach(request: web.Request) -> web.StreamResponse:
        assert server is not None
        if not authorized(request):
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        if request.query.get("container") != container:
            return web.json_response({"kind": "Status", "code": 400, "message": "no such container"}, status=400)
        server.requests.append(dict(request.query))
        ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
        await ws.prepare(request)
        await ws.send_bytes(b"\x01")  # each channel opened with an empty frame, as the kubelet does
        await ws.send_bytes(b"\x02")
        server.attached.append(ws)
        try:
            async for frame in ws:
                if frame.type == WSMsgType.BINARY and frame.data[:1] == b"\x00" and proc.stdin is not None:
                    proc.stdin.write(frame.data[1:])
                    await proc.stdin.drain()
        finally:
            server.attached.remove(ws)
        return ws

    async def pump(stream: asyncio.StreamReader | None, channel: int) -> None:
        assert stream is not None
        async for line in stream:
            for ws in list(server.attached if server else []):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_bytes(bytes([channel]) + line)

    app = web.Application()
    base = f"/api/v1/namespaces/{namespace}/pods/{pod}"
    app.router.add_get(base, pod_status)
    app.router.add_get(f"{base}/attach", attach)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server = AttachServer(f"http://127.0.0.1:{port}", proc)
    pumps = [asyncio.create_task(pump(proc.stdout, 1)), asyncio.create_task(pump(proc.stderr, 2))]
    try:
        yield server
    finally:
        for ws in list(server.attached):
            await ws.send_bytes(b"\x03" + json.dumps({"status": "Success"}).encode())
            await ws.close()
        await runner.cleanup()
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        for task in pumps:
            task.cancel()

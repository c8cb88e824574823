"""Session affinity between workers: a session id names its worker, and a request for another worker's session is
handed to that worker's private socket (the caller's headers, body and address kept; the answer streamed back)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from hivegate.asgi.affinity import AffinityRouter, owner_of, session_prefix
from hivegate.asgi.http import send_json
from hivegate.asgi.prefork import Worker
from hivegate.asgi.types import Receive, Scope, Send

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("session_id", "owner"),
    [("w0.abc", 0), ("w1.x-y_z", 1), ("w12.abc", 12), ("abc", None), ("wx.abc", None), ("w.abc", None),
     ("stateless-ab", None), ("", None)],
)  # fmt: skip
def test_a_session_id_names_its_worker(session_id: str, owner: int | None) -> None:
    assert owner_of(session_id) == owner


def test_a_worker_prefix_is_read_back() -> None:
    assert owner_of(session_prefix(3) + "token") == 3


def recorder(name: str) -> object:
    """An app answering who served the request, with the caller's address and headers it saw."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        await send_json(send, 200, {"worker": name, "client": list(scope["client"] or []), "headers": headers,
                                    "body": body.decode(), "server": list(scope["server"])})  # fmt: skip

    return app


@asynccontextmanager
async def peer(worker: Worker) -> AsyncIterator[None]:
    """Worker 1's router served on its private socket by a real uvicorn."""
    app = AffinityRouter(recorder("w1"), worker, ("127.0.0.1", 8000))  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, uds=worker.socket_path(1), lifespan="off", log_config=None))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(5):
        while not server.started:
            await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def test_another_workers_session_is_served_by_that_worker_with_the_callers_address() -> None:
    with tempfile.TemporaryDirectory() as peers:
        worker0, worker1 = Worker(0, 2, Path(peers)), Worker(1, 2, Path(peers))
        router = AffinityRouter(recorder("w0"), worker0, ("127.0.0.1", 8000))  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=router, client=("192.0.2.7", 4321))
        async with peer(worker1), httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            mine = (await http.post("/mcp", content=b"{}", headers={"mcp-session-id": "w0.a"})).json()
            assert mine["worker"] == "w0"
            forged = {"x-hivegate-worker-client": "6.6.6.6:1"}
            headers = {"mcp-session-id": "w1.b", "authorization": "Bearer t", **forged}
            theirs = await http.post("/mcp?x=1", content=b'{"jsonrpc":"2.0"}', headers=headers)
            seen = theirs.json()
            assert seen["worker"] == "w1"
            assert seen["client"] == ["192.0.2.7", 4321]  # not the forged one, not the private socket's
            assert seen["server"] == ["127.0.0.1", 8000]
            assert seen["headers"]["authorization"] == "Bearer t"
            assert "x-hivegate-worker-client" not in seen["headers"]
            assert seen["body"] == '{"jsonrpc":"2.0"}'
            legacy = (await http.post("/messages?session_id=w1.c", content=b"{}")).json()
            assert legacy["worker"] == "w1"
            await router(  # closes its clients to the peers
                {"type": "lifespan"}, _lifespan_receive(), _ignore
            )


async def test_a_session_of_a_worker_that_is_gone_is_served_here() -> None:
    with tempfile.TemporaryDirectory() as peers:
        router = AffinityRouter(recorder("w0"), Worker(0, 2, Path(peers)), ("127.0.0.1", 8000))  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            resp = await http.post("/mcp", content=b"{}", headers={"mcp-session-id": "w1.b"})
        assert resp.json()["worker"] == "w0"
        assert resp.json()["body"] == "{}"


def _lifespan_receive() -> Receive:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, str]:
        return next(messages)

    return receive  # type: ignore[return-value]


async def _ignore(message: object) -> None:
    return None


def test_an_event_id_sealed_by_one_worker_opens_at_another(monkeypatch: pytest.MonkeyPatch) -> None:
    from hivegate.pipeline import events

    monkeypatch.setattr(events, "_shared", None)
    assert events.EventIds().open("s", events.EventIds().seal("s", "7")) is None  # each process its own key
    events.share_key(b"k" * 32)  # what every worker does with the parent's secret
    sealed = events.EventIds().seal("s", "7")
    assert events.EventIds().open("s", sealed) == "7"
    assert events.EventIds().open("other", sealed) is None


def metrics_page(worker: str) -> object:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["server"][1] != 9090:  # only the diagnostics port serves metrics
            await send_json(send, 404, {"error": "not_found"})
            return
        page = f'# HELP up Up\n# TYPE up gauge\nup{{seen_by="{worker}"}} 1.0\n'.encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": page})

    return app


async def test_a_scrape_answers_for_every_worker() -> None:
    with tempfile.TemporaryDirectory() as peers:
        worker0, worker1 = Worker(0, 2, Path(peers)), Worker(1, 2, Path(peers))
        router = AffinityRouter(metrics_page("w0"), worker0, ("127.0.0.1", 8000))  # type: ignore[arg-type]
        peer_app = AffinityRouter(metrics_page("w1"), worker1, ("127.0.0.1", 8000))  # type: ignore[arg-type]
        server = uvicorn.Server(uvicorn.Config(peer_app, uds=worker1.socket_path(1), lifespan="off", log_config=None))
        task = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(5):
                while not server.started:
                    await asyncio.sleep(0.01)
            diagnostics = httpx.ASGITransport(app=router)
            async with httpx.AsyncClient(transport=diagnostics, base_url="http://gw:9090") as http:
                page = (await http.get("/metrics")).text
            assert 'up{seen_by="w0",worker="0"} 1.0' in page
            assert 'up{seen_by="w1",worker="1"} 1.0' in page  # the peer answered as the diagnostics port
            elsewhere = httpx.ASGITransport(app=router)
            async with httpx.AsyncClient(transport=elsewhere, base_url="http://gw:8000") as http:
                assert (await http.get("/metrics", headers={"x-hivegate-worker-scrape": "9090"})).status_code == 404
        finally:
            server.should_exit = True
            await task

"""Helpers of the client registry tests: a hand-moved clock, and an https server of metadata documents."""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from support.webserver import serve_on_loopback

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class DocumentServer:
    """An https server on 127.0.0.1: `routes` maps a path to its handler (404 otherwise); `hits` counts requests."""

    base: str = ""
    routes: dict[str, Handler] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="not found")
        return await handler(request)


@asynccontextmanager
async def serve_documents(cert: Path, key: Path) -> AsyncIterator[DocumentServer]:
    server = DocumentServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server._dispatch)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with serve_on_loopback(app, ssl_context=context) as base:
        server.base = base
        yield server

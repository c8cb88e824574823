"""Connections the gateway accepts: bounded in number and in how slowly a client may send (slowloris defence).

uvicorn bounds idle keep-alive connections but not a client that sends a request slowly: one byte of header every
few seconds holds a connection, a file descriptor and a slot forever. `GuardedHttpTools` (uvicorn's httptools
protocol with limits added) closes a connection that has not sent a complete request head within `header_timeout`
(answered `408`), or that sends nothing for `body_timeout` while its body is being read; and refuses a connection
beyond `max_connections` in all or `max_per_address` from one client address (answered `503`, then closed), so
neither a flood nor one client can exhaust the descriptors that every other caller needs.

`raise_open_files_limit` lifts the soft `RLIMIT_NOFILE` to the hard limit at start-up (often 1,024 → 1,048,576),
since each connection, backend connection and stdio child costs descriptors.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["ConnectionLimits", "guarded_protocol", "raise_open_files_limit"]

logger = logging.getLogger("hivegate.connections")

_REFUSED = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\nretry-after: 1\r\n\r\n"
_TOO_SLOW = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_SWEEP = 1.0  # seconds between deadline checks: a timeout is enforced within a second of passing
_LINGER = 2.0  # seconds a refused connection is drained before it is closed, so the answer is not lost to a reset


@dataclass
class ConnectionLimits:
    """Limits on accepted connections; 0 turns a cap off."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 0  # 0: derived from RLIMIT_NOFILE at start-up
    max_per_address: int = 512
    open: int = field(default=0, init=False)
    by_address: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    watched: set[GuardedHttpTools] = field(default_factory=set, init=False, repr=False)
    _sweeper: asyncio.TimerHandle | None = field(default=None, init=False, repr=False)

    def admit(self, address: str) -> bool:
        if self.max_connections and self.open >= self.max_connections:
            return False
        if self.max_per_address and self.by_address.get(address, 0) >= self.max_per_address:
            return False
        self.open += 1
        self.by_address[address] = self.by_address.get(address, 0) + 1
        return True

    def leave(self, address: str) -> None:
        self.open -= 1
        left = self.by_address.get(address, 0) - 1
        if left > 0:
            self.by_address[address] = left
        else:
            self.by_address.pop(address, None)

    def watch(self, connection: GuardedHttpTools, loop: asyncio.AbstractEventLoop) -> None:
        """Check `connection`'s deadline once a second from now on. One timer for all connections: a timer per
        request cost ~50 µs of CPU per call under uvloop; a deadline is one float."""
        self.watched.add(connection)
        if self._sweeper is None:
            self._sweeper = loop.call_later(_SWEEP, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection in [c for c in self.watched if 0 < c.deadline < now]:
            connection.too_slow()
        self._sweeper = loop.call_later(_SWEEP, self._sweep, loop) if self.watched else None


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the limits of `limits` (set on a subclass by `guarded_protocol`)."""

    limits: ConnectionLimits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address: str | None = None
        self.deadline = 0.0  # loop time by which the client must have sent more; 0: none
        self._reading_body = False
        self._head_started = False  # bytes of a request head arrived (a 408 then answers that request)
        self._draining = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else ""
        if not self.limits.admit(address):
            logger.warning("connection from %s refused: too many connections", address or "?")
            self._answer_and_close(_REFUSED)
            return
        self._address = address
        self._expect(self.limits.header_timeout)
        self.limits.watch(self, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadline = 0.0
        if self._address is not None:
            self.limits.leave(self._address)
            self.limits.watched.discard(self)
            self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return
        if self._reading_body:
            self._expect(self.limits.body_timeout)
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._head_started = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_started = False
        self._reading_body = True
        self._expect(self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_body = False
        self.deadline = 0.0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._expect(self.limits.header_timeout)  # the next request's head must come in time too

    def _expect(self, seconds: float) -> None:
        self.deadline = self.loop.time() + seconds if seconds > 0 else 0.0

    def too_slow(self) -> None:
        """The deadline passed: close the connection (`408` when no request is being read)."""
        self.deadline = 0.0
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # the application is not reading: not the client's fault
            self._expect(self.limits.body_timeout)
            return
        logger.info("connection from %s closed: request not received in time", self._address or "?")
        # never a 408 on an idle keep-alive connection: a client could take it as the answer to its next request
        self._answer_and_close(_TOO_SLOW if self._head_started else b"")

    def _answer_and_close(self, answer: bytes) -> None:
        """Send `answer` and close. Closing a socket with unread bytes makes the kernel send a reset, which can
        discard the answer at the client before it reads it; so the write side is shut first and what the client
        still sends is read and dropped until it closes or `_LINGER` passes (a lingering close)."""
        transport = self.transport
        if answer:
            transport.write(answer)
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._draining = True
        self.loop.call_later(_LINGER, transport.close)


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpTools]:
    """A protocol class (uvicorn instantiates it per connection) sharing `limits` between its connections."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpTools,), {"limits": limits})


def raise_open_files_limit() -> int:
    """Raise the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the open files limit from %d: %s", soft, exc)
    return soft

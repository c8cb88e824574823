"""A stdio MCP server in a Kubernetes pod, reached through the API server's `pods/attach` (as ToolHive's proxy does).

The protocol (Kubernetes' remote command streams over WebSocket): `GET /api/v1/namespaces/NS/pods/POD/attach?
container=C&stdin=true&stdout=true&stderr=true` upgraded with the subprotocol `v5.channel.k8s.io` (or
`v4.channel.k8s.io`); every binary message is one channel byte followed by data: 0 stdin (sent), 1 stdout,
2 stderr, 3 error (a `metav1.Status` in JSON: why the stream ended), 255 (v5) closes a channel. The server may
open each channel with an empty message. MCP's stdio framing (one JSON message per line) runs inside stdin/stdout.

The container has one stdin and one stdout, and every attached session reads all of its output. So each transport
tags the ids of the requests it sends (`hg-<random>-<n>`) and keeps only the responses to its own; what the server
sends unasked (notifications, its own requests) reaches every session. The server is shared by the sessions, as in
ToolHive; closing a transport closes its WebSocket only, never the container's stdin (that would end the server for
every session).

Where the API server is: inside a pod, `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` with the pod's
service-account token (read again on every connection: the kubelet rotates it) and CA; `HIVEGATE_KUBE_API_URL`,
`HIVEGATE_KUBE_TOKEN_FILE` and `HIVEGATE_KUBE_CA_FILE` say otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from hivegate.backends.transport import MessageHandler
from hivegate.core.jsonrpc import Message, RequestId
from hivegate.errors import BackendError, ConfigError
from hivegate.outgoing.caller import Caller

__all__ = ["PROTOCOLS", "ApiAccess", "AttachTarget", "AttachTransport", "pod_ready"]

logger = logging.getLogger("hivegate.backend.attach")
server_stderr = logging.getLogger("hivegate.server.stderr")
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR = 0, 1, 2, 3
_SA = "/var/run/secrets/kubernetes.io/serviceaccount"
_LINE_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class AttachTarget:
    namespace: str
    pod: str
    container: str

    @classmethod
    def parse(cls, value: str, where: str) -> AttachTarget:
        """`NAMESPACE/POD/CONTAINER` (`ConfigError` naming `where` otherwise)."""
        parts = value.split("/")
        if len(parts) != 3 or not all(parts):
            raise ConfigError(f"{where}: {value!r} must be NAMESPACE/POD/CONTAINER")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pod}/{self.container}"


@dataclass(frozen=True, slots=True)
class ApiAccess:
    url: str
    token_file: str | None = None
    ca_file: str | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> ApiAccess:
        env = os.environ if env is None else env
        url = env.get("HIVEGATE_KUBE_API_URL")
        if not url:
            host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise BackendError(
                    "pods/attach: not in a pod (no KUBERNETES_SERVICE_HOST) and no HIVEGATE_KUBE_API_URL"
                )
            url = f"https://{f'[{host}]' if ':' in host else host}:{port}"
        token = env.get("HIVEGATE_KUBE_TOKEN_FILE") or (f"{_SA}/token" if os.path.exists(f"{_SA}/token") else None)
        ca = env.get("HIVEGATE_KUBE_CA_FILE") or (f"{_SA}/ca.crt" if os.path.exists(f"{_SA}/ca.crt") else None)
        return cls(url.rstrip("/"), token, ca)

    def headers(self) -> dict[str, str]:
        if not self.token_file:
            return {}
        return {"Authorization": f"Bearer {Path(self.token_file).read_text().strip()}"}

    def ssl(self) -> ssl.SSLContext | bool:
        if not self.url.startswith("https:"):
            return False
        return ssl.create_default_context(cafile=self.ca_file)

    def pod_path(self, target: AttachTarget) -> str:
        return f"/api/v1/namespaces/{quote(target.namespace, safe='')}/pods/{quote(target.pod, safe='')}"


async def pod_ready(target: AttachTarget, access: ApiAccess) -> str | None:
    """None when the pod is running (the readiness check); else why not."""
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(access.url + access.pod_path(target), headers=access.headers(), ssl=access.ssl(),
                     timeout=aiohttp.ClientTimeout(total=5)) as resp,
        ):  # fmt: skip
            if resp.status != 200:
                return f"pod {target.namespace}/{target.pod}: HTTP {resp.status}"
            phase = ((await resp.json()).get("status") or {}).get("phase")
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        return f"pod {target.namespace}/{target.pod}: {exc or type(exc).__name__}"
    return None if phase == "Running" else f"pod {target.namespace}/{target.pod} is {phase or 'unknown'}"


class AttachTransport:
    """One attachment to the container's stdin/stdout; the `Transport` of a stdio server in another pod."""

    def __init__(self, target: AttachTarget, access: ApiAccess, *, name: str = "attach") -> None:
        self._target, self._access, self._name = target, access, name
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._reason = "not started"
        self._tag = f"hg-{secrets.token_hex(4)}-"
        self._counter = itertools.count(1)
        self._ids: dict[str, RequestId] = {}  # the tagged id → the id the session sent

    async def open(self, on_message: MessageHandler) -> None:
        query = urlencode({"container": self._target.container, "stdin": "true", "stdout": "true",
                           "stderr": "true", "tty": "false"})  # fmt: skip
        url = f"{self._access.url}{self._access.pod_path(self._target)}/attach?{query}"
        self._http = aiohttp.ClientSession()
        try:
            self._ws = await self._http.ws_connect(
                url, protocols=PROTOCOLS, headers=self._access.headers(), ssl=self._access.ssl(),
                max_msg_size=_LINE_LIMIT, heartbeat=30.0, timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            )  # fmt: skip
        except (aiohttp.ClientError, OSError) as exc:
            await self._http.close()
            self._reason = f"cannot attach to {self._target}: {exc}"
            self._closed.set()
            raise BackendError(self._reason) from exc
        if self._ws.protocol not in PROTOCOLS:
            await self.close()
            raise BackendError(f"cannot attach to {self._target}: the API server speaks {self._ws.protocol!r}")
        self._reader = asyncio.create_task(self._read(on_message))

    async def _read(self, on_message: MessageHandler) -> None:
        assert self._ws is not None
        buffer = b""
        reason = "the attach stream ended"
        try:
            async for frame in self._ws:
                if frame.type != aiohttp.WSMsgType.BINARY or not frame.data:
                    continue
                channel, data = frame.data[0], frame.data[1:]
                if channel == STDOUT:
                    buffer += data
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        self._line(line, on_message)
                    if len(buffer) > _LINE_LIMIT:
                        logger.warning("%s: dropped a line longer than %d bytes", self._name, _LINE_LIMIT)
                        buffer = b""
                elif channel == STDERR and data.strip():
                    for text in data.decode(errors="replace").splitlines():
                        server_stderr.info("%s: %s", self._name, text, extra={"stderr_line": text})
                elif channel == ERROR and data:
                    reason = _status_reason(data)
        except Exception:  # a bug in a handler must not leave the stream unattended
            logger.exception("%s: error while reading the attached container's output", self._name)
        finally:
            self._reason = reason
            self._closed.set()

    def _line(self, line: bytes, on_message: MessageHandler) -> None:
        if not line.strip():
            return
        try:
            decoded = orjson.loads(line)
        except orjson.JSONDecodeError:
            logger.warning("%s: ignored a non-JSON line on stdout", self._name)
            return
        for message in decoded if isinstance(decoded, list) else [decoded]:
            if isinstance(message, dict) and (message := self._own(message)) is not None:
                on_message(message)

    def _own(self, message: Message) -> Message | None:
        """The message with the session's id back, or None: the answer to another session's request."""
        if "method" in message or "id" not in message:
            return message  # the server's own request or notification: every session hears it
        request_id = message.get("id")
        if not isinstance(request_id, str) or not request_id.startswith(self._tag):
            return None
        original = self._ids.pop(request_id, None)
        return None if original is None else {**message, "id": original}

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        """Write one message to the container's stdin (`caller` does not matter: the server gets no credential)."""
        ws = self._ws
        if ws is None or ws.closed or self._closed.is_set():
            raise BackendError(f"backend {self._name!r} is not attached")
        if "method" in message and message.get("id") is not None:
            tagged = f"{self._tag}{next(self._counter)}"
            self._ids[tagged] = message["id"]
            message = {**message, "id": tagged}
        try:
            await ws.send_bytes(bytes([STDIN]) + orjson.dumps(message) + b"\n")
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise BackendError(f"backend {self._name!r} is not attached") from exc

    async def wait_closed(self) -> str:
        await self._closed.wait()
        return self._reason

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 2.0)
        if self._http is not None:
            await self._http.close()
        self._closed.set()


def _status_reason(data: bytes) -> str:
    try:
        status = json.loads(data)
    except ValueError:
        return data.decode(errors="replace")[:200]
    if status.get("status") == "Success":
        return "the container's stdout closed"
    return str(status.get("message") or status.get("reason") or "the attach stream failed")[:300]

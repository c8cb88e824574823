"""`hivegate demo`: the bundled demo MCP server behind JWT authentication, with a token and commands to try.

The demo is its own issuer: it makes an ephemeral ES256 key, publishes it at `/.well-known/jwks.json` and signs a
one-hour token for `demo-user`. The gateway verifies that token exactly as it would verify a real IdP's tokens.
"""

from __future__ import annotations

import argparse
import importlib.util
import secrets
import sys
import time

import orjson
from joserfc import jwt
from joserfc.jwk import ECKey

from hivegate.asgi.http import send_bytes
from hivegate.asgi.types import ASGIApp, Receive, Scope, Send
from hivegate.authn.oidc_config import OIDCConfig
from hivegate.config.run import RunConfig

__all__ = ["INSPECTOR_VERSION", "demo_command"]

INSPECTOR_VERSION = "2.12.0"  # the version tests/tools pins and the e2e tests run: a cached older one may fail


def demo_command(args: argparse.Namespace) -> int:
    from hivegate.asgi.server import bind
    from hivegate.cli.run import serve_config

    if importlib.util.find_spec("mcp") is None:
        print(
            "hivegate demo: error: the demo server needs the demo extra: pip install 'hivegate[demo]'", file=sys.stderr
        )
        return 2
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(
            f"hivegate demo: error: --port: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr
        )
        return 2
    host, port = sock.getsockname()[:2]
    issuer = f"http://{host}:{port}"
    resource = f"{issuer}/mcp"
    key = ECKey.generate_key("P-256", parameters={"kid": secrets.token_hex(8), "alg": "ES256", "use": "sig"})
    jwks = orjson.dumps({"keys": [key.as_dict(private=False)]})
    now = int(time.time())
    claims = {"iss": issuer, "aud": resource, "sub": "demo-user", "name": "Demo User", "iat": now, "exp": now + 3600}
    token = jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)

    async def jwks_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await send_bytes(send, 200, jwks, [(b"content-type", b"application/json")])

    auth = OIDCConfig(
        mode="oidc",
        issuer=issuer,
        audience=resource,
        jwks_url=f"{issuer}/.well-known/jwks.json",
        resource_url=resource,
        insecure_allow_http=True,
        jwks_allow_private_ip=True,
    )
    cfg = RunConfig(
        name="demo",
        transport="stdio",
        command=(sys.executable, "-m", "hivegate.demo.mcp_server"),
        host=args.host,
        port=port,
        auth=auth,
        log_level="warning",
    )
    banner = "\n".join(
        [
            "",
            "A demo MCP server (tools: echo, add, utc_now) is behind JWT authentication at {url}",
            "Token for demo-user (valid 1 h):",
            "",
            f"  export TOKEN={token}",
            "",
            "Try it with curl (no token: 401 with WWW-Authenticate):",
            "  curl -si {url}",
            "Open a session, keep its id, then list and call the tools:",
            *_curl_session("{url}"),
            "Or with the MCP Inspector (Node 22):",
            f"  npx -y @modelcontextprotocol/inspector@{INSPECTOR_VERSION} --cli {{url}} --transport http \\",
            '       --header "Authorization: Bearer $TOKEN" --method tools/list',
            "",
            "Press Ctrl+C to stop.",
        ]
    )
    metadata = orjson.dumps(
        {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "response_types_supported": [],  # no browser login: the demo's one token is printed at start-up
            "grant_types_supported": [],
            "id_token_signing_alg_values_supported": ["ES256"],
            "service_documentation": "hivegate demo: a one-hour token for demo-user is printed at start-up",
        }
    )

    async def metadata_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await send_bytes(send, 200, metadata, [(b"content-type", b"application/json")])

    public: dict[str, ASGIApp] = {
        "/.well-known/jwks.json": jwks_endpoint,
        # the issuer the protected-resource metadata names answers for itself (RFC 8414, OpenID Discovery)
        "/.well-known/oauth-authorization-server": metadata_endpoint,
        "/.well-known/openid-configuration": metadata_endpoint,
    }
    return serve_config(cfg, sock=sock, public=public, banner=banner)


def _curl_session(url: str) -> list[str]:
    """The curl commands of a whole session: initialize (its `Mcp-Session-Id` kept), initialized, list, call."""
    headers = (
        '-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" '
        "-H 'Accept: application/json, text/event-stream'"
    )
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}},
    }
    steps = [
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 2, "b": 40}}},
    ]
    lines = [
        f"  SESSION=$(curl -si {url} {headers} \\",
        f"       -d '{orjson.dumps(init).decode()}' | sed -n 's/^mcp-session-id: *//Ip' | tr -d '\\r')",
    ]
    for step in steps:
        lines.append(f'  curl -s {url} {headers} -H "Mcp-Session-Id: $SESSION" \\')
        lines.append(f"       -d '{orjson.dumps(step).decode()}'")
    return lines

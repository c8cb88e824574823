"""`hivegate demo`: the bundled demo MCP server behind JWT authentication, with a token and commands to try.

The demo is its own issuer: it makes an ephemeral ES256 key, publishes it at `/.well-known/jwks.json` and signs a
one-hour token for `demo-user`. The gateway verifies that token exactly as it would verify a real IdP's tokens.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time

import orjson
from joserfc import jwt
from joserfc.jwk import ECKey

from hivegate.asgi.http import send_bytes
from hivegate.asgi.types import Receive, Scope, Send
from hivegate.authn.config import OIDCConfig
from hivegate.config.run import RunConfig

__all__ = ["demo_command"]


def demo_command(args: argparse.Namespace) -> int:
    from hivegate.asgi.server import bind
    from hivegate.cli.run import serve_config

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
        command=(sys.executable, "-m", "hivegate.demo.server"),
        host=args.host,
        port=port,
        auth=auth,
        log_level="warning",
    )
    init = orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "curl", "version": "1"},
            },
        }
    ).decode()
    banner = "\n".join(
        [
            "",
            "A demo MCP server (tools: echo, add, utc_now) is behind JWT authentication at {url}",
            "Token for demo-user (valid 1 h):",
            "",
            f"  export TOKEN={token}",
            "",
            "Try it:",
            "  curl -si {url}    # no token: 401 with WWW-Authenticate",
            '  curl -si {url} -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\',
            f"       -H 'Accept: application/json, text/event-stream' -d '{init}'",
            "  npx @modelcontextprotocol/inspector --cli {url} --transport http \\",
            '       --header "Authorization: Bearer $TOKEN" --method tools/list',
            "",
            "Press Ctrl+C to stop.",
        ]
    )
    return serve_config(cfg, sock=sock, public={"/.well-known/jwks.json": jwks_endpoint}, banner=banner)

"""The two HTML pages the authorization server shows a person: consent and error. Everything is escaped; the pages
load nothing, run no script, and refuse to be framed (the ASGI layer adds the headers in `PAGE_HEADERS`)."""

from __future__ import annotations

from html import escape

__all__ = ["PAGE_HEADERS", "consent_page", "error_page"]

PAGE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/html; charset=utf-8"),
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}"
    "h1{font-size:1.4rem}code{background:#eef1f4;padding:.1rem .3rem;border-radius:.2rem}"
    "button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.6rem;border-radius:.3rem;border:1px solid #8a939c}"
    ".allow{background:#1f6feb;color:#fff;border-color:#1f6feb}"
)


def _page(title: str, body: str) -> bytes:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_STYLE}</style></head>'
        f"<body>{body}</body></html>"
    ).encode()


def consent_page(
    *,
    action: str,
    login: str,
    csrf: str,
    client_name: str,
    client_id: str,
    redirect_uri: str,
    upstream: str,
    scopes: tuple[str, ...] = (),
) -> bytes:
    """Ask whether `client` may sign in on the person's behalf, with `scopes`; posts `login`, `csrf` and `decision`
    to `action`."""
    shown = client_name or client_id
    asked = " ".join(f"<code>{escape(s)}</code>" for s in scopes) if scopes else "no particular scope"
    return _page(
        "Allow access?",
        f"<h1>Allow <code>{escape(shown)}</code> to access this MCP server as you?</h1>"
        f"<p>The application registered itself as <code>{escape(shown)}</code> (client id "
        f"<code>{escape(client_id)}</code>). After you sign in with <strong>{escape(upstream)}</strong>, it will be "
        f"sent to <code>{escape(redirect_uri)}</code> with access to this server.</p>"
        f"<p>It asks for: {asked}.</p>"
        "<p>Only continue if you started this sign-in yourself and recognise the application.</p>"
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="login" value="{escape(login)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        '<button class="allow" type="submit" name="decision" value="allow">Allow</button>'
        '<button type="submit" name="decision" value="deny">Deny</button></form>',
    )


def error_page(title: str, message: str) -> bytes:
    """An error that cannot be sent back to the client (unknown client, bad redirect URI, expired login)."""
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")

"""The two HTML pages the authorization server shows a person: consent and error. Everything is escaped; the pages
load nothing, run no script, and refuse to be framed (the ASGI layer adds the headers in `PAGE_HEADERS`).

The consent page names the application (its self-declared name and client id, and where it will be sent), this MCP
server (its name and URL: the resource the token is for), the upstream the person signs in with, and the scopes
asked for. An error page says what went wrong, what the person can do next (`ADVICE`), and a reference the
gateway also logs with the error.
"""

from __future__ import annotations

from html import escape
from typing import Final

from hivegate.authserver.messages import Advice, Consent, ErrorPage

__all__ = ["ADVICE", "PAGE_HEADERS", "consent_page", "error_page"]

ADVICE: Final[dict[Advice, str]] = {
    "restart": "Go back to the application and start the sign-in again.",
    "same-browser": "Finish the sign-in in the browser where you started it, or go back to the application and start "
    "again in this one. If you did not start a sign-in, close this page.",
    "report-app": "The application sent a request this server cannot accept. Go back to it and try again; if it "
    "happens again, tell the application's developer or the administrator of this MCP server.",
    "unknown-app": "Go back to the application and start again: it may need to register again. If it happens again, "
    "contact the administrator of this MCP server.",
}
_SCOPE_MEANINGS: Final = {
    "openid": "confirm who you are",
    "profile": "your name and profile",
    "email": "your email address",
    "offline_access": "keep access while you are away, until you revoke it",
}

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


def consent_page(consent: Consent, *, action: str) -> bytes:
    """Ask whether the client may sign in on the person's behalf to this MCP server (its name and URL), with the
    scopes it asked for; posts `login`, `csrf` and `decision` to `action`."""
    client = consent.client
    shown = escape(client.client_name or client.client_id)
    server = escape(consent.server_name)
    scopes = "".join(f"<li><code>{escape(s)}</code>{_described(s)}</li>" for s in consent.scopes)
    asked = (
        f"<p>It asks for these permissions (scopes):</p><ul>{scopes}</ul>"
        if scopes
        else "<p>It asks for no particular permission (scope): it gets what this server allows any signed-in user.</p>"
    )
    return _page(
        "Allow access?",
        f"<h1>Allow <code>{shown}</code> to access <strong>{server}</strong> as you?</h1>"
        f"<p>MCP server: <strong>{server}</strong> at <code>{escape(consent.resource)}</code></p>"
        f"{asked}"
        f"<p>The application registered itself as <code>{shown}</code> (client id "
        f"<code>{escape(client.client_id)}</code>). After you sign in with "
        f"<strong>{escape(consent.upstream)}</strong>, it will be sent to <code>{escape(consent.redirect_uri)}</code> "
        f"with access to <strong>{server}</strong>.</p>"
        "<p>Only continue if you started this sign-in yourself and recognise the application.</p>"
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="login" value="{escape(consent.login)}">'
        f'<input type="hidden" name="csrf" value="{escape(consent.csrf)}">'
        '<button class="allow" type="submit" name="decision" value="allow">Allow</button>'
        '<button type="submit" name="decision" value="deny">Deny</button></form>',
    )


def error_page(page: ErrorPage) -> bytes:
    """An error that cannot be sent back to the client (unknown client, bad redirect URI, expired login): what went
    wrong, what to do next, and the reference that is also in the gateway's log line for it."""
    return _page(
        page.title,
        f"<h1>{escape(page.title)}</h1><p>{escape(page.message)}</p>"
        f"<p><strong>What to do:</strong> {escape(ADVICE[page.advice])}</p>"
        f'<p class="ref">Reference: <code>{escape(page.reference)}</code> (quote it if you ask for help)</p>',
    )


def _described(scope: str) -> str:
    meaning = _SCOPE_MEANINGS.get(scope)
    return f" ({escape(meaning)})" if meaning else ""

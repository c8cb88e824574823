"""The pages a person sees at the embedded authorization server: the consent page names the application, this MCP
server (name and URL) and the scopes; error pages say what to do next and carry a reference that is in the log;
every value is escaped."""

from __future__ import annotations

import logging
from html import escape
from typing import Any

import httpx
import pytest
from authserver_fakes import APP, CHALLENGE, CLIENT, RESOURCE, StaticClients, form, query, server

from hivegate.asgi.authserver import AuthServerRoutes
from hivegate.asgi.types import Receive, Scope, Send
from hivegate.authserver.clients import Client
from hivegate.authserver.pages import ADVICE, consent_page, error_page
from hivegate.authserver.service import AuthorizationServer, Consent, ErrorPage, Redirect

pytestmark = pytest.mark.anyio

EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def registered(name: str = "Claude Desktop") -> StaticClients:
    return StaticClients(Client("dyn-1", (APP,), "dynamic", client_name=name))


def start(client_id: str = "dyn-1", scope: str = "openid email") -> Any:
    return form(response_type="code", client_id=client_id, redirect_uri=APP, code_challenge=CHALLENGE,
                code_challenge_method="S256", scope=scope, resource=RESOURCE)  # fmt: skip


async def test_the_consent_page_names_the_mcp_server_its_url_and_the_scopes() -> None:
    s = server(clients=registered(), name="github-tools")
    consent = await s.authorize(start(), "b-1")
    assert isinstance(consent, Consent)
    page = consent_page(consent, action="/oauth/consent").decode()
    assert "to access <strong>github-tools</strong> as you?" in page
    assert f"MCP server: <strong>github-tools</strong> at <code>{RESOURCE}</code>" in page
    assert "<li><code>openid</code> (confirm who you are)</li>" in page
    assert "<li><code>email</code> (your email address)</li>" in page
    assert "<code>Claude Desktop</code> (client id <code>dyn-1</code>)" in page
    assert "sign in with <strong>okta</strong>" in page
    assert f"sent to <code>{APP}</code>" in page


async def test_without_a_name_the_consent_page_names_the_resource_host_and_says_when_no_scope_is_asked() -> None:
    s = server(clients=registered())
    consent = await s.authorize(start(scope=""), "b-1")
    assert isinstance(consent, Consent)
    page = consent_page(consent, action="/oauth/consent").decode()
    assert "to access <strong>mcp.example.com</strong> as you?" in page
    assert "asks for no particular permission" in page


def test_every_value_on_the_pages_is_escaped() -> None:
    client = Client(EVIL, (APP,), "dynamic", client_name=EVIL)
    consent = Consent(EVIL, EVIL, client, f"{APP}?x={EVIL}", EVIL, EVIL, f"{RESOURCE}?{EVIL}", (EVIL, "openid"))
    error = ErrorPage(400, EVIL, EVIL, "restart", EVIL, reference=EVIL)
    for page in (consent_page(consent, action=EVIL).decode(), error_page(error).decode()):
        assert EVIL not in page
        assert "<script" not in page
        assert "<img" not in page
        assert escape(EVIL) in page  # shown as text, and no attribute value is broken out of


async def app_client(s: AuthorizationServer) -> httpx.AsyncClient:
    routes = AuthServerRoutes(s).routes()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await routes[scope["path"]](scope, receive, send)

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://mcp.example.com")


def reference_in(page: str) -> str:
    marker = "Reference: <code>"
    assert marker in page, page
    return page.split(marker, 1)[1].split("</code>", 1)[0]


async def test_an_error_page_says_what_to_do_and_its_reference_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "hivegate.authserver")
    s = server(clients=registered())
    async with await app_client(s) as http:
        unknown = await http.get("/oauth/authorize", params={"client_id": "nobody", "redirect_uri": APP})
        bad_redirect = await http.get(
            "/oauth/authorize", params={"client_id": "dyn-1", "redirect_uri": "https://x.example/cb"}
        )
        not_form = await http.post("/oauth/consent", json={"login": "x"})
    assert unknown.status_code == bad_redirect.status_code == not_form.status_code == 400
    assert unknown.headers["content-type"].startswith("text/html")
    assert escape(ADVICE["unknown-app"]) in unknown.text
    assert "contact the administrator of this MCP server" in unknown.text
    assert escape(ADVICE["report-app"]) in bad_redirect.text
    assert escape(ADVICE["report-app"]) in not_form.text
    logged = [r.getMessage() for r in caplog.records]
    for response, client_id in ((unknown, "'nobody'"), (bad_redirect, "'dyn-1'"), (not_form, "None")):
        reference = reference_in(response.text)
        assert len(reference) == 8
        lines = [line for line in logged if reference in line]
        assert len(lines) == 1, logged
        assert f"for client {client_id}" in lines[0]
    assert len({reference_in(r.text) for r in (unknown, bad_redirect, not_form)}) == 3  # one per occurrence


async def test_a_sign_in_finished_in_another_browser_says_to_finish_it_where_it_started() -> None:
    s = server(clients=registered())
    outcome = await s.authorize(start(CLIENT), "b-1")
    assert isinstance(outcome, Redirect)
    elsewhere = await s.callback(form(state=query(outcome.url)["state"], code="c"), "b-other")
    assert isinstance(elsewhere, ErrorPage)
    assert (elsewhere.status, elsewhere.advice, elsewhere.client_id) == (403, "same-browser", CLIENT)
    assert "in the browser where you started it" in error_page(elsewhere).decode()
    late = await s.consent(form(login="gone", csrf="x", decision="allow"), "b-1")
    assert isinstance(late, ErrorPage)
    assert late.advice == "restart"
    assert escape(ADVICE["restart"]) in error_page(late).decode()

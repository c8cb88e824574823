"""Per-tool scopes on every front (`support.fronts`: Streamable HTTP over stdio, the reverse proxy, legacy SSE,
vMCP): a call whose token lacks the scope the tool requires gets HTTP 403 with the `insufficient_scope` challenge and
never reaches the backend; the same call with the scope passes; the list still shows the tool."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from support.fronts import FRONTS, Front, FrontKind, checked_front, open_session

pytestmark = [pytest.mark.anyio, pytest.mark.e2e, pytest.mark.xdist_group("step_up_fronts")]

POLICIES = [
    'permit(principal, action == Action::"call_tool", resource == Tool::"delete_namespace");',
    'permit(principal, action == Action::"call_tool", resource == Tool::"echo");',
]
REQUIRED = {'Tool::"delete_namespace"': ["mcp:admin"]}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=FRONTS)
async def front(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Front]:
    kind: FrontKind = request.param
    async with checked_front(kind, tmp_path_factory.mktemp(kind), POLICIES, required_scopes=REQUIRED) as started:
        yield started


async def test_a_call_lacking_a_required_scope_is_challenged_on_every_front(front: Front) -> None:
    user = front.token("alice", scope="openid mcp:read")
    admin = front.token("alice", scope="openid mcp:admin")
    async with httpx.AsyncClient(timeout=30) as http, open_session(front, http, user) as session:
        listed = await session.request(session.rpc("tools/list"))
        assert "delete_namespace" in [t["name"] for t in listed.message["result"]["tools"]]

        call = session.rpc("tools/call", {"name": "delete_namespace", "arguments": {"namespace": "prod"}})
        refused = await session.post(call)
        assert refused.status_code == 403, refused.text
        challenge = refused.headers["www-authenticate"]
        assert challenge.startswith("Bearer ")
        assert 'scope="mcp:admin openid mcp:read"' in challenge
        assert 'error="insufficient_scope"' in challenge
        assert f'resource_metadata="{front.gateway.base}/.well-known/oauth-protected-resource' in challenge
        assert refused.json()["id"] == call["id"]
        assert refused.json()["error"]["code"] == 403
        assert ("tools/call", "delete_namespace") not in front.calls()

        again = session.rpc("tools/call", {"name": "delete_namespace", "arguments": {"namespace": "prod"}})
        allowed = await session.request(again, headers={"authorization": f"Bearer {admin}"})
        assert allowed.message["result"]["content"][0]["text"] == "deleted prod", allowed.message
        assert ("tools/call", "delete_namespace") in front.calls()

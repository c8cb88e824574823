"""The own proxy of an `MCPServer` behind a `VirtualMCPServer`: its `oidcConfig` and `authzConfig`, enforced inside
the vMCP as ToolHive's per-server proxy enforces them, on top of the vMCP's own checks.

In ToolHive each `MCPServer` runs behind a proxy of its own, which the vMCP calls with its outgoing credential for
that server. Here the vMCP reaches the server directly, so `OwnProxy` does that proxy's work first:

- authentication (RFC 6750): the credential the vMCP's outgoing auth gives the server for this caller (the
  `Authorization: Bearer` header of `tokenExchange`, `bearerToken`, `headerInjection` or `upstreamInject`) is verified
  with an authenticator built from the server's `oidcConfig` (`build_authenticator`, which caches verified tokens).
  Without `oidcConfig` the caller is `anonymous` there, as at a ToolHive proxy without OIDC; with one naming the
  vMCP's embedded authorization server (the seeds' "embedded authorization server" `MCPServer`) the tokens it
  checks are the callers', already verified by the vMCP, and the principal is the caller's. Loading refuses an
  `oidcConfig` whose outgoing auth sends no bearer token (`spec.check_own_auth`). A credential that config does not
  accept is refused with the JSON-RPC error a remote backend's 401 already gives (`CredentialRefused`, -32000);
- authorization: Cedar decides with the server's own policies under its own names (`Tool::"weather"`, whatever
  the vMCP advertises it as: `weather-server-with-authz_weather` under `prefix`), the principal being the one that
  credential names, and `MCP::"<server>"` the parent. A denial is ToolHive's and the vMCP's own JSON-RPC error
  (code 403, "denied by policy"); the decision is logged like the vMCP's own (`hivegate.authz`), and a refusal once
  more naming the server (`hivegate.vmcp`);
- lists: what the server contributes to a list is filtered with the same decision (`visible`), so a client never
  sees a tool it may not call; if the credential is refused, the server contributes nothing for that caller.

Requests the server's Cedar does not decide (`initialize`, `ping`, notifications) pass as at its proxy's Cedar.
Policies are read at start-up; a restart applies changed ones. Backends without their own settings pay nothing:
they have no `OwnProxy`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hivegate.authn.authenticators import AnonymousAuthenticator, build_authenticator
from hivegate.authz.gate import LIST_METHODS, McpGate, refusal
from hivegate.authz.policy_config import AuthzConfig
from hivegate.authz.store import PolicyStore
from hivegate.core.jsonrpc import Message
from hivegate.core.ports import Authenticator
from hivegate.core.principal import Principal
from hivegate.errors import AuthenticationError, CredentialRefused
from hivegate.outgoing.caller import Caller
from hivegate.outgoing.credentials import Credentials, OutgoingAuthError
from hivegate.vmcp.catalog import Catalog
from hivegate.vmcp.spec import ServerAuth

__all__ = ["OwnProxy", "visible"]

logger = logging.getLogger("hivegate.vmcp")

Item = Mapping[str, Any]


class _Policies:
    """The server's `authzConfig` as a policy source: fixed at start-up (not watched, not reloaded)."""

    def __init__(self, authz: AuthzConfig, where: str) -> None:
        self._authz = authz
        self.name = f"{where}.authzConfig"

    def read(self) -> bytes:
        return b""

    def load(self) -> tuple[bytes, AuthzConfig]:
        return repr(self._authz).encode(), self._authz


class OwnProxy:
    """The checks of backend `name`'s own proxy: `admit` one routed request, `principal` for one caller."""

    def __init__(self, name: str, auth: ServerAuth, credentials: Credentials, *, callers_own: bool = False) -> None:
        """`callers_own`: its `oidcConfig` names the vMCP's embedded authorization server (`verified_by_vmcp`): the
        principal is the caller's, verified by the vMCP."""
        self.name = name
        self._credentials = credentials
        self._callers_own = callers_own
        self._oidc = auth.oidc
        self.authenticator: Authenticator = (
            build_authenticator(auth.oidc) if auth.oidc is not None and not callers_own else AnonymousAuthenticator()
        )
        self.gate: McpGate | None = None
        if auth.authz is not None:
            store = PolicyStore(_Policies(auth.authz, auth.where), name)
            self.gate = McpGate(store)  # its decisions are logged as the vMCP's own are

    @property
    def summary(self) -> str:
        """One line for the start-up summary (no secrets)."""
        if self._oidc is None:
            authn = "no token (anonymous)"
        elif self._callers_own:
            authn = "the caller's token (the vMCP's embedded authorization server)"
        else:
            authn = f"OIDC issuer {self._oidc.issuer}, audience {self._oidc.audience}"
        policies = self.gate.policy_count if self.gate is not None else 0
        return f"backend {self.name}: its own proxy's checks: {authn}; {policies} Cedar policies"

    async def principal(self, caller: Caller | None) -> Principal:
        """Who the server's proxy sees: the principal of the credential the vMCP sends it for `caller`.

        `CredentialRefused` when its `oidcConfig` does not accept that credential; `OutgoingAuthError` (and
        `LoginRequired`, a 401 for the client) from the outgoing auth, as for any request to that server."""
        if self._callers_own and caller is not None:
            return caller.principal
        if not self.authenticator.requires_token:
            return await self.authenticator.authenticate(None)
        headers = await self._credentials.headers(caller)
        authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        try:
            return await self.authenticator.authenticate(authorization)
        except AuthenticationError as exc:
            who = caller.principal.subject if caller is not None else "-"
            logger.warning("backend %r: its oidcConfig refused the vMCP's credential for %r: %s", self.name, who,
                           exc.description)  # fmt: skip
            raise CredentialRefused(
                f"backend {self.name!r} refused the gateway's credential (HTTP 401: {exc.description})"
            ) from None

    async def admit(
        self, message: Message, caller: Caller | None, tools: Callable[[], Sequence[Item]]
    ) -> Message | None:
        """None when `message` (in the server's own names) may go on; else the JSON-RPC error its proxy answers.
        `tools`: the server's own tool list, read when its policies need tool annotations not learnt yet."""
        principal = await self.principal(caller)
        if self.gate is None:
            return None
        if self.gate.needs_tool_list(message):
            self.gate.learn_tool_list({"result": {"tools": list(tools())}})
        verdict = self.gate.check(principal, message)
        if verdict.allowed:
            return None
        logger.info("backend %r: its own authzConfig refused %s %r for %r", self.name, message.get("method"),
                    verdict.resource, principal.subject)  # fmt: skip
        return refusal(verdict, message.get("id"))[1]

    def allowed(self, principal: Principal, method: str, items: Sequence[tuple[Item, str]]) -> list[Item]:
        """The advertised `items` (each with its name on the server) the server's policies let `principal` see."""
        if self.gate is None:
            return [item for item, _ in items]
        _, key, name_key = LIST_METHODS[method]
        renamed = [{**item, name_key: own} for item, own in items]
        answer = self.gate.filter_answer(principal, {"jsonrpc": "2.0", "id": 0, "result": {key: renamed}})
        kept = {id(item) for item in answer["result"][key]}
        return [item for (item, _), copy in zip(items, renamed, strict=True) if id(copy) in kept]


async def visible(
    proxies: Mapping[str, OwnProxy], method: str, items: Sequence[Item], catalog: Catalog, caller: Caller | None
) -> list[Item]:
    """`items` (one list answer of the vMCP) without those a backend's own proxy would not show `caller`."""
    owned: dict[str, list[tuple[Item, str]]] = {}
    keep: dict[int, bool] = {}
    for item in items:
        backend, own = _owner(method, item, catalog)
        if backend is not None and own is not None and backend in proxies:
            owned.setdefault(backend, []).append((item, own))
            keep[id(item)] = False
    for backend, mine in owned.items():
        proxy = proxies[backend]
        try:
            principal = await proxy.principal(caller)
        except (CredentialRefused, OutgoingAuthError) as exc:
            logger.info("backend %r lists nothing for this caller: %s", backend, exc)
            continue
        for item in proxy.allowed(principal, method, mine):
            keep[id(item)] = True
    return [item for item in items if keep.get(id(item), True)]


def _owner(method: str, item: Item, catalog: Catalog) -> tuple[str | None, str | None]:
    """The backend an advertised list item comes from, and its name there."""
    if method in ("tools/list", "prompts/list"):
        routes = catalog.tool_routes if method == "tools/list" else catalog.prompt_routes
        route = routes.get(str(item.get("name")))
        return (route.backend, route.name) if route is not None else (None, None)
    key = "uri" if method == "resources/list" else "uriTemplate"
    value = item.get(key)
    if not isinstance(value, str):
        return None, None
    owners = catalog.resource_routes if method == "resources/list" else catalog.template_owners
    return owners.get(value), value

"""Policy test cases (`hivegate authz test`): a YAML file of requests and the decision each must get.

```yaml
config: authz.json          # the authz config tested, relative to this file (or `--config` on the command line)
server: weather             # the MCP::"<server>" every resource is in (the gateway's --name; default "mcp")
cases:
  - name: engineers may deploy
    principal:
      claims: {sub: alice, groups: [eng]}     # or `token: <JWT>`: its claims, read WITHOUT verifying it
    action: call_tool       # call_tool, get_prompt, read_resource, or tools/call, prompts/get, resources/read
    resource: deploy        # the tool or prompt name, or the resource URI
    arguments: {env: prod}  # optional; tools and prompts only
    annotations: {destructiveHint: true}    # optional; tools only
    expect: allow           # allow or deny
    reason: allow-eng-deploy                # optional: a policy id or @id annotation (or a list) that must decide it
  - name: behind a virtual MCP server, github's tools are the github team's
    principal: {claims: {sub: bob, groups: [github]}}
    action: call_tool
    resource: github_create_issue           # the name the vMCP advertises (resource.name)
    backend: github                         # optional: the backend it comes from (MCP::"github", in MCP::"<server>")
    backend_name: create_issue              # optional: the backend's own name (resource.backendName; default resource)
    expect: allow
```

Decoding is strict: an unknown key or a value of the wrong type is a `ConfigError` naming the file, the case (index
and name) and the field, with the nearest valid key when one was misspelt. A token is never echoed in an error.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml

from hivegate.authz.entities import ANNOTATION_HINTS, ActionName, Origin
from hivegate.config.reader import Reader
from hivegate.config.syntax import syntax_error
from hivegate.errors import ConfigError

__all__ = ["ACTIONS", "Case", "CaseFile", "claims_of_token", "load_case_file", "parse_case_file"]

DEFAULT_SERVER = "mcp"
# what `action` may say → the Cedar action
ACTIONS: Mapping[str, ActionName] = {
    **{name: name for name in get_args(ActionName)},
    "tools/call": "call_tool",
    "prompts/get": "get_prompt",
    "resources/read": "read_resource",
    "resources/subscribe": "read_resource",
}
_FILE_KEYS = ("config", "server", "cases")
_CASE_KEYS = (
    "name", "principal", "action", "resource", "backend", "backend_name", "arguments", "annotations", "expect", "reason"
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Case:
    """One request and the decision it must get. `label` names it in reports: `cases[i]` or `cases[i] (name)`."""

    index: int
    name: str
    claims: Mapping[str, Any]
    action: ActionName
    resource: str
    expect_allow: bool
    arguments: Mapping[str, Any] | None = None
    annotations: Mapping[str, bool] | None = None
    reasons: tuple[str, ...] = ()
    backend: str | None = None  # the MCP::"<backend>" parent (a virtual server's backend); None: the server
    backend_name: str | None = None  # resource.backendName; None: the resource's name

    def origin(self, server: str) -> Origin | None:
        """Where the case's resource comes from (None: `server`, under its own name, as `hivegate run` decides)."""
        if self.backend is None and self.backend_name is None:
            return None
        return Origin(self.backend or server, self.backend_name or self.resource)

    @property
    def label(self) -> str:
        return f"cases[{self.index}] ({self.name})" if self.name else f"cases[{self.index}]"


@dataclass(frozen=True, slots=True)
class CaseFile:
    """A decoded case file: the config it tests (None: given on the command line), the server, the cases."""

    path: Path
    config: Path | None
    server: str
    cases: tuple[Case, ...]


def load_case_file(path: str | Path) -> CaseFile:
    """Read and decode a case file; every problem is a one-line `ConfigError` starting with the file's name."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{p}: cannot read: {reason}") from None
    except yaml.YAMLError as exc:
        raise syntax_error(p, exc) from None
    return parse_case_file(data, p)


def parse_case_file(data: Any, path: Path) -> CaseFile:
    """Decode an already-parsed case file (`path` locates `config` and names the file in errors)."""
    try:
        top = Reader(data, "", known=_FILE_KEYS)
        config = top.text("config")
        server = top.text("server") or DEFAULT_SERVER
        items = top.items("cases", required=True)
        top.done()
        cases = tuple(_case(i, item) for i, item in enumerate(items))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return CaseFile(path, path.parent / config if config else None, server, cases)


def _case(index: int, item: Any) -> Case:
    name = item.get("name") if isinstance(item, Mapping) else None
    where = f"cases[{index}] ({name})" if isinstance(name, str) and name else f"cases[{index}]"
    r = Reader(item, where, known=_CASE_KEYS)
    name = r.text("name")
    claims = _principal(Reader(r.section("principal", required=True), r.at("principal"), known=("claims", "token")))
    said = r.text("action", required=True)
    action = ACTIONS.get(said)
    if action is None:
        raise ConfigError(f"{r.at('action')}: must be one of {', '.join(ACTIONS)}, got {said!r}")
    resource = r.text("resource", required=True)
    backend = r.text("backend") or None
    backend_name = r.text("backend_name") or None
    arguments = r.section("arguments") if r.has("arguments") else None
    if arguments is not None and action == "read_resource":
        raise ConfigError(f"{r.at('arguments')}: only tools and prompts take arguments")
    annotations = _annotations(r, action) if r.has("annotations") else None
    expect = r.choice("expect", ("allow", "deny"), required=True)
    reasons = _reasons(r)
    r.done()
    return Case(
        index, name, claims, action, resource, expect == "allow", arguments, annotations, reasons, backend, backend_name
    )


def _principal(r: Reader) -> Mapping[str, Any]:
    if r.has("claims") == r.has("token"):
        raise ConfigError(f"{r.where}: give either claims or token")
    claims: Mapping[str, Any]
    if r.has("token"):
        claims = claims_of_token(r.text("token", required=True), r.at("token"))
    else:
        claims = r.section("claims", required=True)
    r.done()
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise ConfigError(f'{r.where}: a non-empty string `sub` claim is required (the principal is Client::"<sub>")')
    return dict(claims)


def claims_of_token(token: str, where: str = "token") -> dict[str, Any]:
    """The claims of a JWT, read WITHOUT verifying it (for tests of policies only); errors never show the token."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ConfigError(f"{where}: not a JWT (three base64url parts separated by dots)")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: the JWT's payload is not base64url-encoded JSON") from None
    if not isinstance(claims, dict):
        raise ConfigError(f"{where}: the JWT's payload must be a JSON object")
    return claims


def _annotations(r: Reader, action: ActionName) -> Mapping[str, bool]:
    where = r.at("annotations")
    if action != "call_tool":
        raise ConfigError(f"{where}: only tools have annotations")
    hints = Reader(r.section("annotations"), where, known=ANNOTATION_HINTS)
    found = {hint: hints.flag(hint, default=False) for hint in ANNOTATION_HINTS if hints.has(hint)}
    hints.done()
    return found


def _reasons(r: Reader) -> tuple[str, ...]:
    value = r.get("reason")
    if value is None:
        return ()
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ConfigError(f"{r.at('reason')}: must be a policy id or @id annotation, or a list of them")

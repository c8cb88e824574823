"""Cedar authorization for MCP requests, in ToolHive's config format and entity model.

Load a config (`load_authz_config`), compile it for one server (`CedarAuthorizer.from_config`), then `decide` each
call and `filter` each list. `validate_policies` checks policies against the shipped schema. Importing this package
does not import `cedarpy`; `CedarAuthorizer` and `validate_policies` load it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hivegate.authz.decision import Decision
from hivegate.authz.entities import ActionName, EntityError
from hivegate.authz.policy_config import AuthzConfig, CedarConfig, load_authz_config, parse_authz_config

if TYPE_CHECKING:
    from hivegate.authz.cedar import CedarAuthorizer
    from hivegate.authz.validate import PolicyProblem, validate_policies

__all__ = [
    "ActionName",
    "AuthzConfig",
    "CedarAuthorizer",
    "CedarConfig",
    "Decision",
    "EntityError",
    "PolicyProblem",
    "load_authz_config",
    "parse_authz_config",
    "validate_policies",
]


def __getattr__(name: str) -> Any:
    if name == "CedarAuthorizer":
        from hivegate.authz.cedar import CedarAuthorizer

        return CedarAuthorizer
    if name in {"PolicyProblem", "validate_policies"}:
        from hivegate.authz import validate

        return getattr(validate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

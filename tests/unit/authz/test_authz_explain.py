"""Explaining a decision: the deciding policies by `@id` annotation, what decided it (`why`), a deny by no policy
said as such, `authz check` naming them, and the debug log of one decision's entity set (claims, never a token)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
from authz_helpers import authorizer, okta

from hivegate.authz.cedar import CedarAuthorizer
from hivegate.authz.decision import Decision
from hivegate.authz.explain import describe, why
from hivegate.authz.gate import McpGate, decide_call
from hivegate.cli.main import main
from hivegate.core.principal import Principal

POLICIES = [
    '@id("weather-for-all")\npermit(principal, action == Action::"call_tool", resource == Tool::"weather");',
    'permit(principal in THVGroup::"eng", action, resource);',
    '@id("no-prod")\nforbid(principal, action == Action::"call_tool", resource == Tool::"deploy")'
    ' when { resource.arg_env == "prod" };',
]


@dataclass
class Fixed:
    current: CedarAuthorizer


def test_deciding_policies_are_named_by_their_id_annotation() -> None:
    authz = authorizer(POLICIES)
    allowed = authz.decide(okta("bob", []), "call_tool", "weather")
    assert (allowed.reasons, allowed.names, allowed.named) == (("policy0",), ("weather-for-all",), ("weather-for-all",))
    eng = authz.decide(okta("alice", ["eng"]), "call_tool", "anything")
    assert eng.named == ("policy1",)  # no annotation: the id
    assert authz.name_of("policy2") == "no-prod"
    plain = authorizer(["permit(principal, action, resource);"]).decide(okta("bob", []), "call_tool", "x")
    assert (plain.names, plain.named) == ((), ("policy0",))


@pytest.mark.parametrize(
    ("who", "tool", "arguments", "code", "text"),
    [
        (okta("bob", []), "weather", None, "permit", "allowed by weather-for-all"),
        (okta("alice", ["eng"]), "deploy", {"env": "prod"}, "forbid", "denied by no-prod"),
        (okta("bob", []), "nuke", None, "no_policy", "denied: no policy permits it (default deny)"),
        (okta("alice", ["eng"]), "deploy", {"envv": "prod"}, "forbid_error",
         "denied: no-prod errored while evaluated (a forbid that errors denies)"),
        (okta("bob", []), "weather", [1], "error", "denied: cannot be evaluated: arguments must be a JSON object, "
         "got list"),
    ],
)  # fmt: skip
def test_why_and_describe_say_what_decided_it(
    who: Principal, tool: str, arguments: object, code: str, text: str
) -> None:
    decision = authorizer(POLICIES).decide(who, "call_tool", tool, arguments=arguments)  # type: ignore[arg-type]
    assert (why(decision), describe(decision)) == (code, text)


def test_a_call_refused_for_its_scopes_and_a_method_never_allowed() -> None:
    authz = authorizer(POLICIES)
    authz.required_scopes = {("Tool", "weather"): ("weather:read",)}
    decision, scopes = decide_call(authz, okta("bob", []), "call_tool", "weather")
    assert scopes == ("weather:read",)
    assert why(decision) == "scope"
    assert describe(decision) == "denied: insufficient scope: needs weather:read (permitted by weather-for-all)"
    assert why(Decision(False), None) == "method"


def test_debug_logs_the_entity_set_of_one_decision_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    token_value = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    gate = McpGate(Fixed(authorizer(POLICIES)))
    who = okta("alice", ["eng"])
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "deploy", "arguments": {"env": "prod"}}}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="hivegate.authz"):
        gate.check(who, message)
    assert "authz entities" not in caplog.text
    assert (
        "authz deny: subject='alice' method=tools/call action=call_tool resource='deploy' policies=policy2 "
        "(denied by no-prod)" in caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="hivegate.authz"):
        gate.check(who, message)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("authz entities: ")]
    entities = json.loads(line.removeprefix("authz entities: "))
    assert entities["principal"] == {"type": "Client", "id": "alice"}
    assert entities["resource"] == {"type": "Tool", "id": "deploy"}
    assert entities["context"]["arg_env"] == "prod"
    (principal,) = [e for e in entities["entities"] if e["uid"]["type"] == "Client"]
    assert principal["parents"] == [{"type": "THVGroup", "id": "eng"}]
    assert principal["attrs"]["claim_groups"] == ["eng"]
    assert token_value not in caplog.text  # the gate is never given a token: claims only


def test_authz_check_names_the_annotation_and_a_default_deny(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "authz.json"
    path.write_text(json.dumps({"version": "1.0", "type": "cedarv1", "cedar": {"policies": POLICIES}}))

    def check(*args: str) -> tuple[int, list[str]]:
        with pytest.raises(SystemExit) as exited:
            main(["authz", "check", str(path), *args])
        return int(exited.value.code or 0), capsys.readouterr().out.splitlines()

    code, out = check("--claims", '{"sub": "bob"}', "--tool", "weather")
    assert code == 0
    assert out[:3] == ["ALLOW", "policies: policy0", "  policy0 @id('weather-for-all'): cedar.policies[0]: "
                       '@id("weather-for-all")']  # fmt: skip
    code, out = check("--claims", '{"sub": "bob"}', "--tool", "nuke")
    assert (code, out) == (3, ["DENY", "policies: (none: default deny)"])
    code, out = check("--claims", '{"sub": "a", "groups": ["eng"]}', "--tool", "deploy", "--args", '{"x": 1}')
    assert code == 3
    assert "denied: no-prod errored while evaluated (a forbid that errors denies)" in out
    code, out = check("--claims", '{"sub": "a", "groups": ["eng"]}', "--tool", "deploy", "--format", "json",
                      "--entities")  # fmt: skip
    report = json.loads("\n".join(out))
    assert (report["why"], report["names"]) == ("forbid_error", ["no-prod"])
    assert report["entities"]["resource"] == {"type": "Tool", "id": "deploy"}


def test_a_permit_that_errored_is_still_a_deny_by_no_policy() -> None:
    premium = 'permit(principal, action, resource) when { principal.claim_roles.contains("premium") };'
    decision = authorizer([premium]).decide(okta("bob", []), "call_tool", "anything")
    assert decision.errors  # bob's token has no roles: the permit errors and grants nothing
    assert (why(decision), describe(decision)) == ("no_policy", "denied: no policy permits it (default deny)")

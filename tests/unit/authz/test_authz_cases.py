"""`hivegate authz test` case files: strict decoding (errors name the file, the case and the field), the decision
path they run on (the gateway's), the failure table and JUnit XML."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from hivegate.authz.cases import claims_of_token, load_case_file, parse_case_file
from hivegate.cli.main import main
from hivegate.errors import ConfigError

POLICIES = [
    '@id("weather-for-all")\npermit(principal, action == Action::"call_tool", resource == Tool::"weather");',
    'permit(principal in THVGroup::"eng", action, resource);',
    '@id("no-prod-deletes")\nforbid(principal, action == Action::"call_tool", resource == Tool::"delete")'
    ' when { resource has arg_env && resource.arg_env == "prod" };',
]
ALICE = {"sub": "alice", "groups": ["eng"]}
CASE = {"name": "anyone gets the weather", "principal": {"claims": {"sub": "bob"}}, "action": "call_tool",
        "resource": "weather", "expect": "allow"}  # fmt: skip


def write(tmp_path: Path, cases: list[dict[str, Any]], **top: Any) -> Path:
    (tmp_path / "authz.json").write_text(
        json.dumps({"version": "1.0", "type": "cedarv1", "cedar": {"policies": POLICIES}})
    )
    path = tmp_path / "authz.test.yaml"
    path.write_text(yaml.safe_dump({"config": "authz.json", **top, "cases": cases}, sort_keys=False))
    return path


def error_of(tmp_path: Path, cases: list[dict[str, Any]], **top: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load_case_file(write(tmp_path, cases, **top))
    return str(caught.value)


def unsigned_jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'kid': 'k'})}.{part(claims)}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


# -- decoding ----------------------------------------------------------------------------------------------------------


def test_a_case_file_decodes_with_its_config_relative_to_the_file(tmp_path: Path) -> None:
    case = {**CASE, "action": "tools/call", "arguments": {"city": "Oslo"}, "annotations": {"readOnlyHint": True},
            "reason": ["weather-for-all"]}  # fmt: skip
    loaded = load_case_file(write(tmp_path, [case], server="weather-srv"))
    assert loaded.config == tmp_path / "authz.json"
    assert loaded.server == "weather-srv"
    (only,) = loaded.cases
    assert (only.action, only.resource, only.expect_allow) == ("call_tool", "weather", True)
    assert only.arguments == {"city": "Oslo"}
    assert only.annotations == {"readOnlyHint": True}
    assert only.reasons == ("weather-for-all",)
    assert only.label == "cases[0] (anyone gets the weather)"


def test_an_unknown_case_key_names_the_case_and_suggests_the_key_meant(tmp_path: Path) -> None:
    message = error_of(tmp_path, [CASE, {**CASE, "name": "typo", "expcet": "allow"}])
    assert message == f"{tmp_path / 'authz.test.yaml'}: cases[1] (typo).expcet: unknown field (did you mean 'expect'?)"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"expect": "maybe"}, "cases[0] (anyone gets the weather).expect: must be one of allow, deny, got 'maybe'"),
        ({"expect": None}, "cases[0] (anyone gets the weather).expect: required"),
        ({"resource": 7}, "cases[0] (anyone gets the weather).resource: must be a string"),
        ({"arguments": ["x"]}, "cases[0] (anyone gets the weather).arguments: must be a mapping"),
        ({"action": "tools/list"}, "cases[0] (anyone gets the weather).action: must be one of call_tool, get_prompt, "
         "read_resource, tools/call, prompts/get, resources/read, resources/subscribe, got 'tools/list'"),
        ({"reason": ["ok", 3]}, "cases[0] (anyone gets the weather).reason: must be a policy id or @id annotation, "
         "or a list of them"),
        ({"annotations": {"readOnlyHnt": True}}, "cases[0] (anyone gets the weather).annotations.readOnlyHnt: "
         "unknown field (did you mean 'readOnlyHint'?)"),
        ({"annotations": {"readOnlyHint": "yes"}}, "cases[0] (anyone gets the weather).annotations.readOnlyHint: "
         "must be true or false"),
        ({"principal": {"claims": {"groups": ["eng"]}}}, "cases[0] (anyone gets the weather).principal: a non-empty "
         'string `sub` claim is required (the principal is Client::"<sub>")'),
        ({"principal": {"claims": {"sub": "a"}, "token": "x.y.z"}}, "cases[0] (anyone gets the weather).principal: "
         "give either claims or token"),
        ({"principal": {"claim": {"sub": "a"}}}, "cases[0] (anyone gets the weather).principal.claim: unknown field "
         "(did you mean 'claims'?)"),
        ({"action": "read_resource", "arguments": {}}, "cases[0] (anyone gets the weather).arguments: only tools and "
         "prompts take arguments"),
    ],
)  # fmt: skip
def test_a_wrong_value_names_the_case_and_the_field(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    assert error_of(tmp_path, [{**CASE, **change}]) == f"{tmp_path / 'authz.test.yaml'}: {expected}"


def test_a_case_without_a_name_is_named_by_its_index(tmp_path: Path) -> None:
    case = {k: v for k, v in CASE.items() if k != "name"}
    assert error_of(tmp_path, [CASE, {**case, "expect": 1}]).endswith(": cases[1].expect: must be a string")


def test_file_level_errors(tmp_path: Path) -> None:
    assert error_of(tmp_path, [CASE], sever="x").endswith(": sever: unknown field (did you mean 'server'?)")
    assert error_of(tmp_path, []).endswith(": cases: at least one entry is required")
    path = tmp_path / "broken.yaml"
    path.write_text("cases: [\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml:2:1: not valid YAML: expected the node content"):
        load_case_file(path)
    with pytest.raises(ConfigError, match=r"broken.yaml: cases\[0\]: must be a mapping"):
        parse_case_file({"cases": ["just text"]}, path)


def test_a_token_principal_is_read_without_verification_and_never_echoed(tmp_path: Path) -> None:
    token = unsigned_jwt({"sub": "carol", "groups": ["eng"]})
    loaded = load_case_file(write(tmp_path, [{**CASE, "principal": {"token": token}}]))
    assert loaded.cases[0].claims == {"sub": "carol", "groups": ["eng"]}
    secretish = "eyJhbGciOiJIUzI1NiJ9.bm90LWpzb24.c2ln"
    message = error_of(tmp_path, [{**CASE, "principal": {"token": secretish}}])
    assert message.endswith("principal.token: the JWT's payload is not base64url-encoded JSON")
    assert secretish not in message
    with pytest.raises(ConfigError, match="not a JWT"):
        claims_of_token("opaque-token-value")


# -- running -----------------------------------------------------------------------------------------------------------


def test_authz_test_passes_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, [
        CASE,
        {**CASE, "name": "eng deploys", "principal": {"claims": ALICE}, "resource": "deploy", "reason": "policy1"},
        {**CASE, "name": "no prod deletes", "principal": {"claims": ALICE}, "resource": "delete",
         "arguments": {"env": "prod"}, "expect": "deny", "reason": "no-prod-deletes"},
        {**CASE, "name": "strangers get nothing else", "resource": "deploy", "expect": "deny"},
    ])  # fmt: skip
    code, out, err = run(["authz", "test", str(path)], capsys)
    assert (code, err) == (0, "")
    assert out == "4 cases in 1 file: 4 passed, 0 failed\n"


def test_authz_test_failures_are_a_table_with_the_deciding_policies_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, [
        CASE,
        {**CASE, "name": "bob deploys", "resource": "deploy"},
        {**CASE, "name": "alice deletes in prod", "principal": {"claims": ALICE}, "resource": "delete",
         "arguments": {"env": "prod"}},
        {**CASE, "name": "wrong reason", "reason": "policy1"},
    ])  # fmt: skip
    junit = tmp_path / "junit.xml"
    code, out, _ = run(["authz", "test", str(path), "--junit", str(junit)], capsys)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["CASE", "EXPECTED", "GOT", "DECIDED", "BY"]
    assert "cases[1] (bob deploys)" in lines[1]
    got = " ".join(lines[1].split("(bob deploys)")[1].split())
    assert got == "allow deny ✗ denied: no policy permits it (default deny)"
    assert "cases[2] (alice deletes in prod)" in lines[2]
    assert lines[2].endswith("denied by no-prod-deletes")
    assert "cases[3] (wrong reason)" in lines[3]
    assert lines[3].endswith("allowed by weather-for-all")
    assert "allow by policy1" in lines[3]
    assert lines[-1] == "4 cases in 1 file: 1 passed, 3 failed"
    suites = ET.parse(junit).getroot()  # noqa: S314 (the file this test had written)
    assert (suites.get("tests"), suites.get("failures")) == ("4", "3")
    cases = suites.findall("testsuite/testcase")
    assert [c.get("name") for c in cases][:2] == ["cases[0] (anyone gets the weather)", "cases[1] (bob deploys)"]
    assert cases[0].find("failure") is None
    failure = cases[3].find("failure")
    assert failure is not None
    assert failure.get("message") == "expected allow by policy1, decided by weather-for-all"


def test_authz_test_bad_input_exits_2_before_deciding_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, [CASE])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"config": "authz.json", "cases": [{**CASE, "principle": {}}]}))
    code, out, err = run(["authz", "test", str(good), str(bad)], capsys)
    assert (code, out) == (2, "")
    assert (
        err == f"hivegate authz test: error: {bad}: cases[0] (anyone gets the weather).principle: unknown field "
        "(did you mean 'principal'?)\n"
    )
    no_config = tmp_path / "no-config.yaml"
    no_config.write_text(yaml.safe_dump({"cases": [CASE]}))
    code, _, err = run(["authz", "test", str(no_config)], capsys)
    assert code == 2
    assert "config: required" in err
    code, out, _ = run(["authz", "test", str(no_config), "--config", str(tmp_path / "authz.json")], capsys)
    assert (code, out) == (0, "1 cases in 1 file: 1 passed, 0 failed\n")


def test_authz_test_applies_required_scopes_as_the_gateway_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"version": "1.0", "type": "cedarv1", "cedar": {"policies": POLICIES},
              "requiredScopes": {'Tool::"weather"': ["weather:read"]}}  # fmt: skip
    (tmp_path / "scoped.json").write_text(json.dumps(config))
    path = tmp_path / "scoped.test.yaml"
    cases = [CASE, {**CASE, "name": "scoped", "principal": {"claims": {"sub": "bob", "scope": "weather:read"}}}]
    path.write_text(yaml.safe_dump({"config": "scoped.json", "cases": cases}))
    code, out, _ = run(["authz", "test", str(path)], capsys)
    assert code == 1
    assert "denied: insufficient scope: needs weather:read (permitted by weather-for-all)" in out
    assert out.endswith("2 cases in 1 file: 1 passed, 1 failed\n")

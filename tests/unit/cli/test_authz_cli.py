"""`hivegate authz validate` and `check` in-process: what a user reads on stdout/stderr, and the exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from hivegate.cli.main import main

WEATHER = 'permit(principal, action == Action::"call_tool", resource == Tool::"weather");'
CALC_ADD = 'permit(principal, action == Action::"call_tool", resource == Tool::"calc") when { resource.arg_operation == "add" };'  # noqa: E501
BLOCKED = "forbid(principal, action, resource) when { principal has claim_blocked && principal.claim_blocked };"
ENGINEERING = 'permit(principal in THVGroup::"engineering", action, resource);'
POLICIES = [WEATHER, CALC_ADD, BLOCKED, ENGINEERING]


def write_config(tmp_path: Path, policies: list[str], name: str = "authz.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"version": "1.0", "type": "cedarv1", "cedar": {"policies": policies}}))
    return str(path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str]]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    code = exited.value.code
    assert isinstance(code, int)
    assert "Traceback" not in err
    return code, out.splitlines(), err.splitlines()


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str, claims: Any = None) -> Any:
    claims_text = json.dumps(claims if claims is not None else {"sub": "alice", "iss": "https://idp.example"})
    return run(["authz", "check", write_config(tmp_path, POLICIES), "--claims", claims_text, *extra], capsys)


def test_validate_a_valid_file_prints_the_summary_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["authz", "validate", write_config(tmp_path, [WEATHER, ENGINEERING])], capsys)
    assert (code, out, err) == (0, ["2 policies: 0 errors, 0 warnings"], [])


def test_validate_warnings_alone_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["authz", "validate", write_config(tmp_path, POLICIES)], capsys)
    assert code == 0
    assert out[0].startswith("warning: cedar.policies[1] (policy1): ")
    assert "arg_operation" in out[0]
    assert out[1:] == ["4 policies: 0 errors, 1 warning"]


def test_validate_tools_call_action_is_an_error_naming_the_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = 'permit(principal, action == Action::"tools/call", resource);'
    code, out, _ = run(["authz", "validate", write_config(tmp_path, [WEATHER, bad])], capsys)
    assert code == 1
    assert out[0].startswith("error: cedar.policies[1] (policy1): can never match")
    assert 'did you mean Action::"call_tool"?' in out[0]
    assert out[1] == "2 policies: 1 error, 0 warnings"


def test_validate_syntax_error_names_file_index_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, [WEATHER, "permit(principal,\n  action ==, resource);"])
    code, out, err = run(["authz", "validate", path], capsys)
    assert code == 1
    assert out == []
    assert err == [
        f"hivegate authz validate: error: authz config {path}: cedar.policies[1], line 2, column 12: "
        "unexpected token `,`"
    ]


def test_validate_missing_file_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.json")
    code, out, err = run(["authz", "validate", missing], capsys)
    assert code == 1
    assert out == []
    assert len(err) == 1
    assert err[0].startswith(f"hivegate authz validate: error: authz config {missing}: cannot read")


def test_validate_bad_config_field_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "authz.json"
    path.write_text(json.dumps({"version": "1.0", "type": "cedarv2", "cedar": {"policies": [WEATHER]}}))
    code, _, err = run(["authz", "validate", str(path)], capsys)
    assert code == 1
    assert len(err) == 1
    assert "type must be 'cedarv1'" in err[0]


def test_validate_reads_yaml_by_extension(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text(f"version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n    - {json.dumps(WEATHER)}\n")
    code, out, _ = run(["authz", "validate", str(path)], capsys)
    assert (code, out) == (0, ["1 policy: 0 errors, 0 warnings"])


def test_validate_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = 'permit(principal, action == Action::"tools/call", resource);'
    code, out, _ = run(["authz", "validate", write_config(tmp_path, [bad]), "--format", "json"], capsys)
    report = json.loads("\n".join(out))
    assert code == 1
    assert report["policies"] == 1
    assert (report["errors"], report["warnings"]) == (1, 0)
    (problem,) = report["problems"]
    assert problem["policy_id"] == "policy0"
    assert problem["index"] == 0
    assert problem["severity"] == "error"
    assert "call_tool" in problem["message"]


def test_check_allow_names_the_policy_and_its_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(tmp_path, capsys, "--tool", "weather")
    assert code == 0
    assert out == ["ALLOW", "policies: policy0", f"  policy0: cedar.policies[0]: {WEATHER}"]
    assert err == []


def test_check_default_deny_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(tmp_path, capsys, "--tool", "shell")
    assert code == 3
    assert out == ["DENY", "policies: (none: default deny)"]


def test_check_forbid_lists_its_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(tmp_path, capsys, "--tool", "weather", claims={"sub": "mallory", "blocked": True})
    assert code == 3
    assert out[:2] == ["DENY", "policies: policy2"]
    assert out[2].startswith("  policy2: cedar.policies[2]: forbid(principal, action, resource)")


def test_check_group_claim_makes_the_caller_a_group_member(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engineer = {"sub": "bob", "groups": ["engineering"]}
    code, out, _ = check(tmp_path, capsys, "--prompt", "runbook", claims=engineer)
    assert (code, out[:2]) == (0, ["ALLOW", "policies: policy3"])
    code, _, _ = check(tmp_path, capsys, "--prompt", "runbook", claims={"sub": "bob", "groups": ["sales"]})
    assert code == 3
    code, _, _ = check(tmp_path, capsys, "--resource", "file:///docs/a.md", claims=engineer)
    assert code == 0


def test_check_policy_on_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(tmp_path, capsys, "--tool", "calc", "--args", '{"operation": "add", "a": 1, "b": 2}')
    assert (code, out[:2]) == (0, ["ALLOW", "policies: policy1"])
    code, _, _ = check(tmp_path, capsys, "--tool", "calc", "--args", '{"operation": "rm"}')
    assert code == 3
    code, _, _ = check(tmp_path, capsys, "--tool", "calc")
    assert code == 3


def test_check_annotations_are_resource_attributes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    read_only = "permit(principal, action, resource) when { resource has readOnlyHint && resource.readOnlyHint };"
    path = write_config(tmp_path, [read_only])
    base = ["authz", "check", path, "--claims", '{"sub": "a"}', "--tool", "list_files"]
    assert run([*base, "--annotations", '{"readOnlyHint": true, "title": "List"}'], capsys)[0] == 0
    assert run([*base, "--annotations", '{"readOnlyHint": false}'], capsys)[0] == 3
    code, _, err = run([*base, "--annotations", '{"readOnlyHint": "yes"}'], capsys)
    assert code == 1
    assert err == ["hivegate authz check: error: --annotations: readOnlyHint must be true or false, got a string"]


def test_check_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(tmp_path, capsys, "--tool", "weather", "--format", "json")
    assert code == 0
    assert json.loads("\n".join(out)) == {
        "decision": "allow",
        "policies": ["policy0"],
        "names": ["policy0"],
        "why": "permit",
        "explanation": "allowed by policy0",
        "errors": [],
    }
    code, out, _ = check(
        tmp_path, capsys, "--tool", "weather", "--format", "json", claims={"sub": "m", "blocked": True}
    )
    assert code == 3
    assert json.loads("\n".join(out)) == {
        "decision": "deny",
        "policies": ["policy2"],
        "names": ["policy2"],
        "why": "forbid",
        "explanation": "denied by policy2",
        "errors": [],
    }


def test_check_prints_evaluation_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    roles = 'permit(principal, action, resource) when { principal.claim_roles.contains("admin") };'
    path = write_config(tmp_path, [WEATHER, roles])
    code, out, _ = run(["authz", "check", path, "--claims", '{"sub": "a"}', "--tool", "weather"], capsys)
    assert code == 0
    assert out[-1].startswith("error: error while evaluating policy `policy1`")
    assert "claim_roles" in out[-1]


def test_check_claims_from_a_file_and_from_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, POLICIES)
    claims = tmp_path / "claims.json"
    claims.write_text('{"sub": "bob", "groups": ["engineering"]}')
    assert run(["authz", "check", config, "--claims", str(claims), "--tool", "deploy"], capsys)[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO('{"sub": "bob", "groups": ["engineering"]}'))
    assert run(["authz", "check", config, "--claims", "-", "--tool", "deploy"], capsys)[0] == 0


@pytest.mark.parametrize(
    ("extra", "claims", "message"),
    [
        (["--tool", "calc", "--args", "[1, 2]"], '{"sub": "a"}', "--args: must be a JSON object, got an array"),
        (["--tool", "calc", "--args", "{oops"], '{"sub": "a"}', "--args: not valid JSON"),
        (["--tool", "calc"], '{"iss": "https://idp.example"}', "--claims: a non-empty string `sub` claim is required"),
        (["--tool", "calc"], '{"sub": 7}', "--claims: a non-empty string `sub` claim is required"),
        (["--tool", "calc"], "{not json", "--claims: not valid JSON"),
        (["--tool", "calc"], "/no/such/claims.json", "--claims /no/such/claims.json: cannot read"),
        (["--tool", ""], '{"sub": "a"}', "--tool: must not be empty"),
    ],
)
def test_check_bad_input_is_one_line_naming_the_flag_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], claims: str, message: str
) -> None:
    code, out, err = run(["authz", "check", write_config(tmp_path, POLICIES), "--claims", claims, *extra], capsys)
    assert code == 1
    assert out == []
    assert len(err) == 1
    assert err[0].startswith(f"hivegate authz check: error: {message}")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ([], "one of the arguments --tool --prompt --resource is required"),
        (["--tool", "a", "--prompt", "b"], "not allowed with argument --tool"),
        (["--resource", "file:///a", "--args", "{}"], "--args goes with --tool or --prompt, not --resource"),
        (["--prompt", "p", "--annotations", "{}"], "--annotations goes with --tool, not --prompt"),
        (["--tool", "a", "--format", "xml"], "--format"),
    ],
)
def test_check_bad_usage_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    code, out, err = run(
        ["authz", "check", write_config(tmp_path, POLICIES), "--claims", '{"sub": "a"}', *extra], capsys
    )
    assert code == 2
    assert out == []
    assert len(err) == 1
    assert needle in err[0]


def test_check_missing_config_and_syntax_error_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--claims", '{"sub": "a"}', "--tool", "weather"]
    code, _, err = run(["authz", "check", str(tmp_path / "nope.json"), *argv], capsys)
    assert code == 1
    assert len(err) == 1
    assert "nope.json: cannot read" in err[0]
    code, _, err = run(
        ["authz", "check", write_config(tmp_path, ["permit(principal action, resource);"]), *argv], capsys
    )
    assert code == 1
    assert len(err) == 1
    assert "cedar.policies[0], line 1, column" in err[0]


def test_check_points_at_validate_when_a_policy_can_never_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, ['permit(principal, action == Action::"tools/call", resource == Tool::"weather");'])
    code, out, err = run(["authz", "check", path, "--claims", '{"sub": "a"}', "--tool", "weather"], capsys)
    assert (code, out) == (3, ["DENY", "policies: (none: default deny)"])
    assert err == [
        f"hivegate authz check: note: cedar.policies[0] can never match; see `hivegate authz validate {path}`"
    ]


def test_check_server_name_is_the_resources_parent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, ['permit(principal, action, resource in MCP::"github");'])
    argv = ["authz", "check", path, "--claims", '{"sub": "a"}', "--tool", "create_issue"]
    code, out, err = run([*argv, "--server", "github"], capsys)
    assert (code, out[:2], err) == (0, ["ALLOW", "policies: policy0"], [])
    code, _, err = run(argv, capsys)
    assert code == 3
    assert err == [
        'hivegate authz check: note: policies refer to MCP:: servers; deciding for MCP::"mcp" '
        "(pass --server NAME, the gateway's --name)"
    ]


def test_authz_without_subcommand_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["authz"], capsys)
    assert code == 2
    assert err == ["hivegate authz: error: the following arguments are required: SUBCOMMAND"]


def test_check_names_a_policy_inside_an_entry_holding_several(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, [WEATHER, f"{BLOCKED}\n{ENGINEERING}"])
    engineer = json.dumps({"sub": "bob", "groups": ["engineering"]})
    code, out, _ = run(["authz", "check", path, "--claims", engineer, "--tool", "deploy"], capsys)
    assert (code, out) == (0, ["ALLOW", "policies: policy2", "  policy2: cedar.policies[1] (policy 2 of 2 in it)"])


def test_validate_catches_entities_the_gateway_could_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_entity = [{"uid": {"type": "Team", "id": "x"}, "attrs": {}, "parents": [{"type": "Team"}]}]
    path = tmp_path / "authz.json"
    cedar = {"policies": [WEATHER], "entities_json": json.dumps(bad_entity)}
    path.write_text(json.dumps({"version": "1.0", "type": "cedarv1", "cedar": cedar}))
    code, out, err = run(["authz", "validate", str(path)], capsys)
    assert (code, out) == (1, [])
    assert len(err) == 1
    assert err[0].startswith(f"hivegate authz validate: error: authz config {path}: cedar.entities_json: ")

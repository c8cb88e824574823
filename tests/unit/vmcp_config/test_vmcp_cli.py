"""`hivegate vmcp validate` and `init` in-process: the line a user reads and the exit code."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

from hivegate.cli.vmcp import add_vmcp_parser, starter_config, vmcp_command
from hivegate.vmcp import load_vmcp_config

DATA = Path(__file__).parent / "data"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str]]:
    parser = argparse.ArgumentParser(prog="hivegate")
    add_vmcp_parser(parser.add_subparsers(dest="command"))
    code = vmcp_command(parser.parse_args(["vmcp", *argv]))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out.splitlines(), err.splitlines()


def test_init_writes_a_starter_that_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["init"], capsys)
    assert (code, err) == (0, [])
    assert out == ["wrote vmcp.yaml; check it with: hivegate vmcp validate --config vmcp.yaml"]
    assert (tmp_path / "vmcp.yaml").read_text() == starter_config()
    assert starter_config().startswith("# A virtual MCP server")
    code, out, err = run(["validate", "--config", "vmcp.yaml"], capsys)
    assert (code, err) == (0, [])
    assert out == [
        "my-vmcp: valid: 1 backend (everything), incoming auth anonymous, 0 Cedar policies, aggregation prefix"
    ]
    cfg = load_vmcp_config(tmp_path / "vmcp.yaml")
    assert (cfg.host, cfg.port, cfg.path) == ("127.0.0.1", 4483, "/mcp")


def test_init_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "mine.yaml"
    target.write_text("name: keep me\n")
    code, out, err = run(["init", "--output", str(target)], capsys)
    assert (code, out) == (1, [])
    assert err == [f"hivegate vmcp init: {target} already exists; not overwriting it"]
    assert target.read_text() == "name: keep me\n"


def test_init_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["init", "-o", "-"], capsys)
    assert (code, err) == (0, [])


def test_the_commented_examples_in_the_starter_are_valid_too(tmp_path: Path) -> None:
    """Uncommenting the starter's examples (oidc, authz, a remote backend, filters) still gives a valid config."""
    data = yaml.safe_load(starter_config())
    data["backends"].append({"name": "remote-tools", "url": "https://mcp.example.com/mcp", "transport": "sse"})
    data["incomingAuth"] = {
        "type": "oidc",
        "oidc": {"issuer": "https://auth.example.com", "audience": "my-vmcp", "jwksUrl": "https://auth.example.com/j"},
        "authz": {"type": "cedar", "policies": ['permit(principal in THVGroup::"mcp-admin", action, resource);']},
    }
    data["aggregation"]["conflictResolutionConfig"]["priorityOrder"] = ["everything", "remote-tools"]
    data["aggregation"]["tools"] = [
        {"workload": "everything", "filter": ["echo"], "overrides": {"echo": {"name": "say"}}}
    ]
    path = tmp_path / "vmcp.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_vmcp_config(path).aggregation.tools_for("everything").overrides["echo"].name == "say"


def test_validate_manifests_prints_the_summary(fake_path_docker: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["validate", "-f", str(DATA / "seed_002.yaml")], capsys)
    assert (code, err) == (0, [])
    assert out == [
        "engineering-tools: valid: 2 backends (github, kubernetes), incoming auth oidc, embedded authorization "
        "server, 6 Cedar policies, aggregation prefix"
    ]


def test_validate_picks_a_vmcp_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["validate", "-f", str(DATA / "seed_000.yaml"), "--name", "oidc-inline"], capsys)
    assert code == 0
    assert out[0].startswith("oidc-inline: valid: 1 backend (fetch), incoming auth oidc")
    code, _, err = run(["validate", "-f", str(DATA / "seed_000.yaml")], capsys)
    assert code == 1
    assert err[0].startswith("hivegate vmcp validate: several VirtualMCPServers (anonymous, discovered,")


def test_validate_reports_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "vmcp.yaml"
    path.write_text(
        "name: t\nbackends: [{name: a, url: 'http://127.0.0.1:1/mcp', command: x}]\nincomingAuth: {type: anonymous}\n"
    )
    code, out, err = run(["validate", "--config", str(path)], capsys)
    assert (code, out) == (1, [])
    assert err == [
        "hivegate vmcp validate: vmcp.yaml: backends[0]: give url (a remote server) or command (a stdio server), "
        "not both"
    ]


def test_validate_compiles_the_cedar_policies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "vmcp.yaml"
    path.write_text(
        "name: t\nbackends: [{name: a, url: 'http://127.0.0.1:1/mcp'}]\n"
        "incomingAuth: {type: anonymous, authz: {type: cedar, policies: ['permit(principal, action, resource)']}}\n"
    )
    code, _, err = run(["validate", "--config", str(path)], capsys)
    assert code == 1
    assert len(err) == 1
    assert err[0].startswith("hivegate vmcp validate: incomingAuth.authz: cedar.policies[0], line 1, column")


def test_validate_compiles_each_mcpservers_own_policies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.yaml").write_text("""
apiVersion: toolhive.stacklok.dev/v1beta1
kind: VirtualMCPServer
metadata: {name: hub}
spec: {groupRef: {name: g}, incomingAuth: {type: anonymous}}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPGroup
metadata: {name: g}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata: {name: tools}
spec:
  groupRef: g
  url: 'http://127.0.0.1:1/mcp'
  authzConfig: {type: inline, inline: {policies: ['permit(principal, action, resource)']}}
""")
    code, _, err = run(["validate", "-f", str(tmp_path)], capsys)
    assert code == 1
    assert len(err) == 1
    assert err[0].startswith(
        "hivegate vmcp validate: m.yaml:doc3 MCPServer/tools: spec.authzConfig: cedar.policies[0], line 1, column"
    )


def test_validate_needs_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(["validate"], capsys)
    assert exited.value.code == 2


def test_validate_finds_a_stdio_command_that_is_not_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "vmcp.yaml"
    path.write_text("name: t\nbackends: [{name: fetch, command: mcp-server-fetch-not-installed}]\n"
                    "incomingAuth: {type: anonymous}\n")  # fmt: skip
    code, out, err = run(["validate", "--config", str(path)], capsys)
    assert (code, out) == (1, [])
    assert err == [
        "hivegate vmcp validate: backend 'fetch': command 'mcp-server-fetch-not-installed' not found on PATH (its "
        "env's PATH, else this one's): install it, or give its full path in `command`"
    ]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://[::1/mcp", "'http://[::1/mcp' is not a URL: Invalid IPv6 URL"),
        ("http://h:abc/mcp", "'http://h:abc/mcp' is not a URL: Port could not be cast to integer value as 'abc'"),
        ("ftp://h/mcp", "must be an absolute http(s) URL, got 'ftp://h/mcp'"),
    ],
)
def test_validate_finds_a_url_that_does_not_parse(
    url: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "vmcp.yaml"
    path.write_text(f"name: t\nbackends: [{{name: a, url: '{url}'}}]\nincomingAuth: {{type: anonymous}}\n")
    code, _, err = run(["validate", "--config", str(path)], capsys)
    assert code == 1
    assert err == [f"hivegate vmcp validate: vmcp.yaml: backends[0].url: {why}"]


def incoming_auth_section(text: str) -> str:
    """The starter's `incomingAuth` section with its commented example uncommented (the `type:` it replaces goes)."""
    start = text.index("incomingAuth:\n")
    section = text[start : text.index("\n\n", start)]
    lines = [line for line in section.splitlines() if line != "  type: anonymous"]
    return "\n".join(line.replace("  # ", "  ", 1) if line.startswith("  # ") else line for line in lines) + "\n"


def test_the_starter_lists_every_incoming_auth_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each key the loader reads under incomingAuth appears in the starter, and its uncommented example loads."""
    from hivegate.config.reader import Reader

    read: set[str] = set()
    get = Reader.get

    def recording(self: Reader, key: str) -> object:
        if self.where.startswith("incomingAuth"):
            read.add(key)
        return get(self, key)

    monkeypatch.setattr(Reader, "get", recording)
    monkeypatch.setenv("VMCP_CLIENT_SECRET", "s3cret")
    data = yaml.safe_load(starter_config())
    data["incomingAuth"] = yaml.safe_load(incoming_auth_section(starter_config()))["incomingAuth"]
    data["incomingAuth"]["authz"].pop("primaryUpstreamProvider")  # needs an authServerConfig
    token = tmp_path / "jwks-token"
    token.write_text("t")
    data["incomingAuth"]["oidc"]["jwksAuthTokenPath"] = str(token)
    path = tmp_path / "vmcp.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_vmcp_config(path)
    assert cfg.incoming_auth.oidc.issuer == "https://auth.example.com"
    missing = sorted(key for key in read if not re.search(rf"\b{key}\b", starter_config()))
    assert missing == []
    assert {"issuer", "jwksAllowPrivateIP", "insecureAllowHTTP", "requiredScopes", "primaryUpstreamProvider"} <= read

"""`hivegate run -f`: a manifest and the flags beside it become one `RunConfig`; a flag that contradicts the
manifest is an error naming both."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivegate.cli.main import build_parser
from hivegate.cli.run_file import _child_argv, config_from_manifest, given_flags
from hivegate.config.run import RunConfig
from hivegate.errors import ConfigError
from hivegate.vmcp.manifests.standalone import build_server, read_servers

SERVER = """apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata:
  name: weather
  annotations: {hivegate.dev/command: 'python3 server.py --fast'}
spec:
  proxyPort: 8080
  env: [{name: MODE, value: fast}]
  oidcConfig: {type: inline, inline: {issuer: 'https://idp.example.com', audience: weather}}
  authzConfig: {type: inline, inline: {policies: ['permit(principal, action, resource);']}}
  audit: {enabled: true}
"""


def config(tmp_path: Path, *flags: str, manifest: str = SERVER) -> RunConfig:
    path = tmp_path / "m.yaml"
    path.write_text(manifest)
    argv = ["-f", str(path), *flags]
    args = build_parser().parse_args(["run", *argv])
    manifests = read_servers([path])
    return config_from_manifest(args, build_server(manifests, manifests.servers[0]), given_flags(argv))


def test_the_manifest_is_the_run_config(tmp_path: Path) -> None:
    cfg = config(tmp_path, "--host", "0.0.0.0", "--oidc-clock-skew", "5s", "-e", "EXTRA=1")
    assert (cfg.name, cfg.transport, cfg.command, cfg.port, cfg.host) == (
        "weather", "stdio", ("python3", "server.py", "--fast"), 8080, "0.0.0.0"
    )  # fmt: skip
    assert cfg.env == {"MODE": "fast", "EXTRA": "1"}
    assert (cfg.auth.mode, cfg.auth.issuer, cfg.auth.audience, cfg.auth.clock_skew) == (
        "oidc", "https://idp.example.com", "weather", 5.0
    )  # fmt: skip
    assert cfg.authz is not None
    assert cfg.authz.cedar.policies == ("permit(principal, action, resource);",)
    assert cfg.authz_source == "m.yaml:doc1 MCPServer/weather: spec.authzConfig"
    assert cfg.authz_config is None
    assert cfg.enable_audit


def test_port_and_name_flags_win(tmp_path: Path) -> None:
    cfg = config(tmp_path, "--port", "0", "--name", "renamed")
    assert (cfg.port, cfg.name) == (0, "renamed")


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--oidc-audience", "x"], "--oidc-audience and m.yaml:doc1 MCPServer/weather: spec.oidcConfig both set it; "
         "keep one"),
        (["--anonymous"], "--anonymous and m.yaml:doc1 MCPServer/weather: spec.oidcConfig both set it; keep one"),
        (["--authz-config", "a.json"],
         "--authz-config and m.yaml:doc1 MCPServer/weather: spec.authzConfig both set it; keep one"),
        (["--enable-audit"], "--enable-audit and m.yaml:doc1 MCPServer/weather: spec.audit both set it; keep one"),
        (["-e", "MODE=slow"], "-e/--env/--secret MODE and m.yaml:doc1 MCPServer/weather: spec.env/secrets both set it; "
         "keep one"),
        (["--transport", "stdio"],
         "--transport: with -f the manifest says how the server is reached (m.yaml:doc1 MCPServer/weather)"),
        (["--token-exchange-url", "https://sts.example.com"],
         "--token-exchange-url: with -f the backend's credential is the manifest's (spec.externalAuthConfigRef or "
         "spec.headerForward)"),
    ],
)  # fmt: skip
def test_a_flag_that_contradicts_the_manifest_names_both(tmp_path: Path, flags: list[str], error: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(tmp_path, *flags)
    assert str(err.value) == error


def test_without_auth_in_the_manifest_the_flags_say_it(tmp_path: Path) -> None:
    bare = "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata:\n  name: bare\n  annotations: "
    bare += "{hivegate.dev/command: 'python3 s.py'}\nspec: {}\n"
    cfg = config(tmp_path, "--oidc-issuer", "https://idp.example.com", "--oidc-audience", "bare", manifest=bare)
    assert (cfg.auth.issuer, cfg.auth.audience) == ("https://idp.example.com", "bare")
    with pytest.raises(ConfigError) as err:
        config(tmp_path, "--host", "0.0.0.0", manifest=bare)
    assert str(err.value).startswith("--host 0.0.0.0 without --oidc-issuer would let anyone")


def test_the_background_child_gets_absolute_files_and_its_resource() -> None:
    argv = ["-f", "a.yaml", "--port=0", "--file=dir", "-fb.yaml", "--resource", "x", "--log-level", "debug"]
    assert _child_argv(argv, ["a.yaml", "dir", "b.yaml"], "one") == [
        "--port=0", "--log-level", "debug", "--file", str(Path("a.yaml").absolute()),
        "--file", str(Path("dir").absolute()), "--file", str(Path("b.yaml").absolute()), "--resource", "one",
    ]  # fmt: skip
    assert given_flags(argv) == {"file", "port", "resource", "log_level"}

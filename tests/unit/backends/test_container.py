"""The container command line, the runtime found on PATH, and ToolHive's permission profiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hivegate.backends.container import ContainerRun, Mount, container_name, find_runtime, run_argv
from hivegate.backends.permissions import load_profile, parse_mount
from hivegate.cli.main import build_parser
from hivegate.cli.run import config_from_args
from hivegate.cli.run_target import is_image
from hivegate.errors import ConfigError


def runtimes(tmp_path: Path, *names: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        exe = bin_dir / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    return str(bin_dir)


def test_a_stdio_container_is_confined_and_gets_env_by_name() -> None:
    run = ContainerRun("docker", "mcp/fetch", ("--x",), ("TOKEN",), (Mount("/h", "/c", True),), network="none")
    assert run_argv(run, name="hivegate-fetch-1", labels=[("hivegate.workload", "fetch")]) == [
        "docker", "run", "--rm", "-i", "--name", "hivegate-fetch-1", "--label", "hivegate.workload=fetch",
        "--network", "none", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt",
        "no-new-privileges", "-v", "/h:/c:ro", "-e", "TOKEN", "mcp/fetch", "--x",
    ]  # fmt: skip


def test_container_names_keep_to_what_runtimes_accept() -> None:
    assert container_name("my server/1", "ab12") == "hivegate-my-server-1-ab12"


def test_docker_is_preferred_then_podman(tmp_path: Path) -> None:
    assert find_runtime(path=runtimes(tmp_path, "podman")).endswith("/podman")
    assert find_runtime(path=runtimes(tmp_path, "docker")).endswith("/docker")
    assert find_runtime("podman", path=runtimes(tmp_path)).endswith("/podman")
    with pytest.raises(ConfigError, match="neither `docker` nor `podman` is on PATH"):
        find_runtime(path=str(tmp_path / "nothing"))


def test_builtin_profiles() -> None:
    assert not load_profile("none").network
    assert load_profile("network").network


def test_a_profile_file_gives_mounts_and_network(tmp_path: Path) -> None:
    profile = tmp_path / "p.json"
    doc = {"read": ["/etc/hosts", "/srv/a:/a"], "write": ["/srv/a:/a"], "network": {"outbound": {
        "insecure_allow_all": True}}}  # fmt: skip
    profile.write_text(json.dumps(doc))
    loaded = load_profile(str(profile))
    assert loaded.network
    assert loaded.mounts == (Mount("/etc/hosts", "/etc/hosts", True), Mount("/srv/a", "/a", False))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"network": {"outbound": {"allow_host": ["example.com"]}}}, "allow_host: egress allow-lists"),
        ({"seccomp": {}}, "seccomp profiles are not supported"),
        ({"read": ["volume://cache:/cache"]}, "resource URIs"),
        ({"read": ["relative:/x"]}, "is not a path"),
        ({"write": [3]}, r"write\[0\] must be a path"),
        ({"network": {"outbound": {"insecure_allow_all": "yes"}}}, "must be true or false"),
        ({"network": {"mode": "bridge"}}, "'mode' is not supported"),
        ([], "expected a JSON object"),
    ],
)
def test_what_a_profile_cannot_enforce_is_refused(tmp_path: Path, doc: object, message: str) -> None:
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=message):
        load_profile(str(profile))


def test_volume_forms() -> None:
    assert parse_mount("/a:/b:ro", "--volume") == Mount("/a", "/b", True)
    assert parse_mount("/a:/b", "--volume") == Mount("/a", "/b", False)
    assert parse_mount("./d:/d", "--volume").host.endswith("/d")
    for bad in ("/a:b", "/a:/b:rx", "/a:/b:/c:ro", ""):
        with pytest.raises(ConfigError, match="--volume"):
            parse_mount(bad, "--volume")


@pytest.mark.parametrize(
    ("word", "image"),
    [
        ("docker.io/mcp/everything", True),
        ("ghcr.io/org/server:1.2", True),
        ("localhost:5000/x@sha256:abcd", True),
        ("mcp/fetch", True),
        ("fetch", False),  # a ToolHive registry name, never an image
        ("./server.py", False),
        ("/usr/bin/env", False),
        ("python3", False),
    ],
)
def test_what_reads_as_an_image(word: str, image: bool) -> None:
    assert is_image(word, {"PATH": "/usr/bin:/bin"}) is image


def test_an_image_target_becomes_a_container(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", runtimes(tmp_path, "podman"))
    args = build_parser().parse_args(["run", "-e", "K=v", "-v", "/srv:/srv", "ghcr.io/org/srv:2", "--", "a", "b"])
    cfg = config_from_args(args)
    assert cfg.name == "srv"
    assert cfg.command == ()
    assert cfg.container is not None
    assert cfg.container.runtime.endswith("/podman")
    assert (cfg.container.image, cfg.container.args, cfg.container.env_names) == (
        "ghcr.io/org/srv:2",
        ("a", "b"),
        ("K",),
    )
    assert cfg.container.network == "none"
    allowed = config_from_args(build_parser().parse_args(["run", "--permission-profile", "network", "x/y"]))
    assert allowed.container is not None
    assert allowed.container.network is None

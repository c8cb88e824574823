"""The Containerfile, built with real Podman and run the way the operator's pods run it: non-root, read-only root file
system, the gateway's command line serving a real MCP call.

No registry can be reached here, so the base image (`BASE`) is a local stand-in: an empty root file system
imported with `podman import`, with the host's /usr (Debian's Python 3.11) bound read-only during the build and the
run. Everything else is the Containerfile's own: the build stage's virtualenv and `pip install`, the copy into the
second stage, the user, the entry point. pip reaches its index through the host's pip configuration, bound in too.
Skipped, saying why, where Podman is missing or cannot build.
"""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from support.backend import fixture_http_server, free_port
from support.mcp_calls import call_tool

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("container-image")]
REPO = Path(__file__).resolve().parent.parent.parent
BASE = "localhost/hivegate-test-base:1"
IMAGE = "localhost/hivegate:e2e"
CONF = '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]\n'  # see test_run_images.py
HOST_MOUNTS = ["/usr", "/etc/ssl", "/etc/pip.conf", "/etc/xdg/pip", "/etc/resolv.conf", "/opt/wheels", "/opt/pypi",
               "/opt/pypi-more"]  # fmt: skip


def _podman(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (Debian: apt-get install podman runc)")
    work = tmp_path_factory.mktemp("image")
    conf = work / "containers.conf"
    conf.write_text(CONF + ('[engine]\nruntime = "runc"\n' if shutil.which("runc") else ""))
    env = {"CONTAINERS_CONF": str(conf)}
    rootfs = io.BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as tar:
        for name in ("usr", "tmp", "root", "etc", "proc", "sys", "dev", "opt", "run", "var"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"), ("sbin", "usr/sbin")):
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    (work / "rootfs.tar").write_bytes(rootfs.getvalue())
    # imported once: an import is a new image each time, and a new base would miss every cached layer of the build
    if _podman(env, "image", "exists", BASE).returncode != 0:
        imported = _podman(env, "import", str(work / "rootfs.tar"), BASE)
        if imported.returncode != 0:
            pytest.skip(f"podman cannot import an image here: {imported.stderr.strip()[-300:]}")
    mounts = [f"-v={p}:{p}:ro" for p in HOST_MOUNTS if os.path.exists(p)]
    # one build at a time on this machine (xdist workers, other checkouts): the next one finds every layer cached
    with open(Path(tempfile.gettempdir()) / "hivegate-image-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = _podman(env, "build", "--network", "host", *mounts, "--build-arg", f"BASE={BASE}", "-t", IMAGE,
                        "-f", str(REPO / "Containerfile"), str(REPO), timeout=900)  # fmt: skip
    if built.returncode != 0:
        pytest.skip(f"podman cannot build here: {built.stderr.strip()[-400:]}")
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _podman(env, "run", "--rm", "--read-only", "--tmpfs", "/tmp", "-v", "/usr:/usr:ro", *args)


def test_the_image_runs_hivegate_as_a_user_without_a_name(image: dict[str, str]) -> None:
    version = _run(image, IMAGE, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("hivegate ")
    user = _run(image, "--entrypoint", "/usr/bin/id", IMAGE, "-u")
    assert user.stdout.strip() == "65532"
    config = json.loads(_podman(image, "image", "inspect", IMAGE).stdout)[0]["Config"]
    assert config["Entrypoint"] == ["hivegate"]
    assert config["User"] == "65532:65532"


@asynccontextmanager
async def _container(env: dict[str, str], args: list[str]) -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        "podman", "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "host", "-v", "/usr:/usr:ro", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **env},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            while True:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise AssertionError(f"the container exited: {(await proc.stderr.read()).decode()[-500:]}")  # type: ignore[union-attr]
                found = re.search(r"(http://[0-9.]+:\d+/mcp)", line)
                if found:
                    yield found.group(1)
                    return
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)


@pytest.mark.anyio
async def test_the_pods_command_line_serves_in_the_image(image: dict[str, str], tmp_path: Path) -> None:
    async with fixture_http_server("--http") as backend:
        (tmp_path / "manifests.yaml").write_text(
            "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\n"
            f"metadata: {{name: fixture, namespace: tools}}\nspec: {{url: '{backend}'}}\n"
        )
        tmp_path.chmod(0o755)  # readable by the image's user, as a ConfigMap volume is
        port = free_port()
        args = ["-v", f"{tmp_path}:/etc/hivegate/manifests:ro", IMAGE, "run", "--foreground", "-f",
                "/etc/hivegate/manifests", "--host", "127.0.0.1", "--port", str(port), "--log-format", "json",
                "--log-output", "stdout", "--anonymous"]  # fmt: skip
        async with _container(image, args) as url:
            answer = await asyncio.to_thread(call_tool, url, "echo", {"text": "from the image"})
    assert answer == "from the image"

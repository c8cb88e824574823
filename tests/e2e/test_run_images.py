"""`hivegate run IMAGE`: a container image behind the gateway, through the real `hivegate` process.

The runtime is `support.fake_runtime`, installed as `docker` on a PATH of its own: it records every command line and
runs the repo's fixture server as the "container" (image names are local stand-ins). What is asserted is what a user
sees: a tool call answered, the exact `docker run` line, the server's stderr in `hivegate logs`, nothing left running
after the workload stops, and one clear line for each misuse. `test_run_images_podman` runs real Podman.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import fake_runtime
from support.gateway import hivegate_run
from support.mcp_calls import call_tool

pytestmark = [pytest.mark.e2e]

IMAGE = "localhost/hivegate-fixture:1"
CONFINED = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


@dataclass
class FakeRuntime:
    bin_dir: Path
    log: Path
    state: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_RUNTIME_LOG": str(self.log),
            "FAKE_RUNTIME_STATE": str(self.state),
        }

    def calls(self, verb: str) -> list[list[str]]:
        return [argv for argv in fake_runtime.recorded(self.log) if argv[:1] == [verb]]


@pytest.fixture
def docker(tmp_path: Path) -> Iterator[FakeRuntime]:
    runtime = FakeRuntime(tmp_path / "bin", tmp_path / "runtime.log", tmp_path / "containers")
    fake_runtime.install(runtime.bin_dir, "docker")
    yield runtime
    for name in fake_runtime.running(runtime.state):  # leave nothing running, whatever happened
        subprocess.run([str(runtime.bin_dir / "docker"), "rm", "-f", name], env=runtime.env, check=False)


@pytest.mark.anyio
async def test_a_tool_call_reaches_a_stdio_server_in_a_container(docker: FakeRuntime, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    args = ["--name", "everything", "-e", "FIXTURE_STDERR_BANNER=from-the-container", "-e", "API_TOKEN=s3cret",
            "--volume", f"{data}:/data:ro", IMAGE, "--", "serve", "--verbose"]  # fmt: skip
    async with hivegate_run(args, env=docker.env) as gw:
        assert await _in_thread(call_tool, gw.url, "echo", {"text": "through docker"}) == "through docker"
        (run,) = docker.calls("run")
        gateway = f"hivegate.gateway={gw.process.pid}-"
        assert run[:4] == ["run", "--rm", "-i", "--name"]
        assert run[4].startswith("hivegate-everything-")
        assert run[5:8] == ["--label", "hivegate.workload=everything", "--label"]
        assert run[8].startswith(gateway)
        assert run[9:] == [
            "--network", "none", *CONFINED, "-v", f"{data}:/data:ro",
            "-e", "FIXTURE_STDERR_BANNER", "-e", "API_TOKEN", IMAGE, "serve", "--verbose",
        ]  # fmt: skip
        assert "s3cret" not in " ".join(run)  # values go through the environment, never the command line
        label = run[8]
    # the gateway stopped: its containers are gone, and it looked for any it had left behind
    assert fake_runtime.running(docker.state) == []
    assert ["ps", "-aq", "--filter", f"label={label}"] in docker.calls("ps")
    assert any("from-the-container" in line for line in gw.stderr)  # the container's stderr is the server's


async def _in_thread(fn: object, *args: object) -> object:
    import anyio

    return await anyio.to_thread.run_sync(lambda: fn(*args))  # type: ignore[operator]


@pytest.mark.anyio
async def test_an_http_server_image_is_published_on_a_loopback_port(docker: FakeRuntime) -> None:
    args = ["--transport", "streamable-http", "--target-port", "9000", IMAGE]
    async with hivegate_run(args, env=docker.env) as gw:
        assert await _in_thread(call_tool, gw.url, "echo", {"text": "over http"}) == "over http"
        (run,) = docker.calls("run")
        assert run[:4] == ["run", "--rm", "--init", "-p"]
        assert run[4].startswith("127.0.0.1:")
        assert run[4].endswith(":9000")
        assert "--network" not in run  # an HTTP server needs the runtime's network for its published port
        assert run[-1] == IMAGE
    assert fake_runtime.running(docker.state) == []


def test_a_container_left_running_is_removed_by_its_label(docker: FakeRuntime) -> None:
    from hivegate.backends.container import remove_labelled

    env = {**os.environ, **docker.env}
    runtime = str(docker.bin_dir / "docker")
    # a container whose client is gone but which still runs: its stdin stays open, so it does not exit by itself
    proc = subprocess.Popen(
        [runtime, "run", "-i", "--rm", "--name", "left", "--label", "hivegate.gateway=1-2", IMAGE],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(lambda: fake_runtime.running(docker.state) == ["left"])
        old = os.environ.copy()
        os.environ.update(docker.env)
        try:
            assert remove_labelled(runtime, "hivegate.gateway", "9-9") == 0
            assert remove_labelled(runtime, "hivegate.gateway", "1-2") == 1
        finally:
            os.environ.clear()
            os.environ.update(old)
        assert proc.wait(timeout=10) != 0
        assert fake_runtime.running(docker.state) == []
        assert ["rm", "-f", "left"] in docker.calls("rm")
    finally:
        proc.kill()
        proc.wait()


def _wait_for(condition: object, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_background_workload_logs_and_stops_its_containers(docker: FakeRuntime, tmp_path: Path) -> None:
    env = {**os.environ, **docker.env, "HIVEGATE_STATE_DIR": str(tmp_path / "state")}

    def hivegate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hivegate", *args], env=env, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip

    started = hivegate("run", "--name", "img", "-e", "FIXTURE_STDERR_BANNER=img-stderr", IMAGE)
    assert started.returncode == 0, started.stderr
    url = started.stdout.split(" running at ", 1)[1].split(" ", 1)[0]
    try:
        pid = int(call_tool(url, "whoami", {}))
        (container,) = fake_runtime.running(docker.state)
        assert container.startswith("hivegate-img-")
        # a second session: its own container, while the first is closed
        assert int(call_tool(url, "whoami", {})) != pid
        assert "img-stderr" in hivegate("logs", "img").stdout
    finally:
        stopped = hivegate("stop", "img")
    assert stopped.returncode == 0, stopped.stderr
    assert fake_runtime.running(docker.state) == []
    label = next(a for a in docker.calls("run")[0] if a.startswith("hivegate.gateway="))
    assert docker.calls("ps")[-1] == ["ps", "-aq", "--filter", f"label={label}"]  # `stop` looked, too


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--volume", "/srv:/srv", "--", sys.executable, "-V"], "--volume is for a container image"),
        (["--network", "host", "http://127.0.0.1:9/mcp"], "--network is for a container image"),
        (["--permission-profile", "network", "--", sys.executable], "--permission-profile is for a container image"),
        (["--runtime", "docker", "--", sys.executable], "--runtime is for a container image"),
        (["--target-port", "8080", "--", sys.executable], "--target-port is for a container image"),
        (["--target-port", "8080", IMAGE], "--target-port is the port an HTTP server listens on"),
        (["--runtime", "podman", IMAGE], "--runtime podman: podman is not installed"),
        (["--transport", "sse", "--permission-profile", "none", IMAGE], "needs a network for its published port"),
        (["--transport", "streamable-http", "--network", "none", IMAGE], "--network none: an HTTP server"),
        (["--permission-profile", "none", "--network", "bridge", IMAGE], "contradicts --permission-profile none"),
        (["--volume", "data:/data", IMAGE], "named volumes are not supported"),
        (["--permission-profile", "/nonexistent/profile.json", IMAGE], "neither none, network nor a file"),
        (["-e", "HOME", IMAGE], "--env 'HOME': expected KEY=VALUE"),
        (["fetch"], "not ToolHive registry names"),
    ],
)
def test_misuse_is_one_line_naming_the_flag(docker: FakeRuntime, args: list[str], message: str) -> None:
    only_docker = {**docker.env, "PATH": str(docker.bin_dir)}  # whatever this machine has installed
    done = subprocess.run(
        [sys.executable, "-m", "hivegate", "run", "--foreground", *args],
        env={**os.environ, **only_docker}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert docker.calls("run") == []


def test_no_runtime_installed_is_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "hivegate", "run", "--foreground", IMAGE],
        env={**os.environ, "PATH": str(empty)}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        "hivegate run: error: running a container image needs Docker or Podman, and neither `docker` nor `podman` "
        "is on PATH; install one, or give the server's command after -- or its URL\n"
    )


# -- real Podman --------------------------------------------------------------------------------------------------
# The image is a local stand-in (there is no registry here): an empty root file system imported with `podman import`,
# into which the host's Python, this repo's virtualenv and the fixture server are bound read-only with --volume.
PODMAN_IMAGE = "localhost/hivegate-test-empty:1"
# This machine lacks CAP_SYS_RESOURCE (crun cannot raise the default ulimits) and mounts cgroups v1 and v2 together,
# which crun refuses; runc and lowered ulimits are the configuration under which Podman runs containers here.
PODMAN_CONF = '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]\n'


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import io
    import shutil
    import tarfile

    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (Debian: apt-get install podman runc, as root)")
    work = tmp_path_factory.mktemp("podman")
    conf = work / "containers.conf"
    conf.write_text(PODMAN_CONF + ('[engine]\nruntime = "runc"\n' if shutil.which("runc") else ""))
    env = {"CONTAINERS_CONF": str(conf)}
    rootfs = io.BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as tar:
        for name in ("usr", "tmp", "root", "etc", "proc", "sys", "dev"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    (work / "rootfs.tar").write_bytes(rootfs.getvalue())
    run = {**os.environ, **env}
    imported = subprocess.run(["podman", "import", str(work / "rootfs.tar"), PODMAN_IMAGE], env=run,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    if imported.returncode != 0:
        pytest.skip(f"podman cannot import an image here: {imported.stderr.strip()[-300:]}")
    probe = subprocess.run(["podman", "run", "--rm", "-v", "/usr:/usr:ro", PODMAN_IMAGE, "/usr/bin/true"], env=run,
                           capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run containers here: {probe.stderr.strip()[-300:]}")
    return env


@pytest.mark.anyio
async def test_run_images_podman(podman: dict[str, str]) -> None:
    fixtures = Path(__file__).resolve().parent.parent / "fixtures"
    python = Path(sys.executable)
    mounts = {"/usr", sys.prefix, sys.base_prefix, str(python.parent)}
    args = ["--runtime", "podman", "--name", "podman-e2e", "-e", "FIXTURE_STDERR_BANNER=inside-podman"]
    for path in sorted(mounts):
        args += ["-v", f"{path}:{path}:ro"]
    args += ["-v", f"{fixtures}:/fixtures:ro", PODMAN_IMAGE, "--", str(python), "/fixtures/stdio_server.py"]
    async with hivegate_run(args, env=podman, timeout=120) as gw:
        assert await _in_thread(call_tool, gw.url, "echo", {"text": "via podman"}) == "via podman"
        # the server is the first process of its own PID namespace: it ran in a container
        assert await _in_thread(call_tool, gw.url, "whoami", {}) == "1"
    assert any("inside-podman" in line for line in gw.stderr)
    listing = ["podman", "ps", "-aq", "--filter", "label=hivegate.workload=podman-e2e"]
    left = subprocess.run(listing, env={**os.environ, **podman}, capture_output=True, text=True, timeout=60, check=True)
    assert left.stdout.strip() == ""


@pytest.mark.anyio
async def test_run_images_podman_http(podman: dict[str, str]) -> None:
    fixtures = Path(__file__).resolve().parent.parent / "fixtures"
    python = Path(sys.executable)
    args = ["--runtime", "podman", "--name", "podman-http", "--transport", "streamable-http", "--target-port", "9000",
            "-e", "FIXTURE_HTTP_HOST=0.0.0.0"]  # fmt: skip
    for path in sorted({"/usr", sys.prefix, sys.base_prefix, str(python.parent)}):
        args += ["-v", f"{path}:{path}:ro"]
    args += ["-v", f"{fixtures}:/fixtures:ro", PODMAN_IMAGE, "--", str(python), "/fixtures/stdio_server.py"]
    args += ["--http", "9000"]
    async with hivegate_run(args, env=podman, timeout=120) as gw:
        assert await _in_thread(call_tool, gw.url, "echo", {"text": "published"}) == "published"
    listing = ["podman", "ps", "-aq", "--filter", "label=hivegate.workload=podman-http"]
    left = subprocess.run(listing, env={**os.environ, **podman}, capture_output=True, text=True, timeout=60, check=True)
    assert left.stdout.strip() == ""

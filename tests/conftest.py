import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (a CI result never depends on the draw), with no per-example
# deadline (the machine's load is not the code's speed). Search wider with HYPOTHESIS_PROFILE=explore.
settings.register_profile("repeatable", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(scope="session", autouse=True)
def warm_fixture_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A warm interpreter per test worker that the fixture servers start from (tests/fixtures/warm_start.py): the
    suite then pays for importing the MCP SDK once per worker, not once per server process. With
    FIXTURE_WARM_START=off, or when it cannot start, the fixtures start as usual."""
    if os.environ.get("FIXTURE_WARM_START") == "off":
        yield
        return
    folder = tmp_path_factory.mktemp("warm")
    script = Path(__file__).parent / "fixtures" / "warm_start.py"
    with (folder / "log").open("wb") as log:
        warm = subprocess.Popen(
            [sys.executable, str(script), str(folder / "s")], stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    deadline = time.monotonic() + 20
    while not (folder / "s").exists() and warm.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the import takes ~1 s; a fixture started before would start cold, which works too
    os.environ["FIXTURE_WARM_START"] = str(folder / "s")
    try:
        yield
    finally:
        os.environ.pop("FIXTURE_WARM_START", None)
        warm.terminate()
        warm.wait(10)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_path_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `docker` that does nothing, alone on PATH: a container image is found to be one and its runtime exists."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\n")
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))

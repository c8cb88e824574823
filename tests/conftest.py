import os
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (a CI result never depends on the draw), with no per-example
# deadline (the machine's load is not the code's speed). Search wider with HYPOTHESIS_PROFILE=explore.
settings.register_profile("repeatable", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


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

"""The scale and fault bench (`benchmarks/scale/run.py`) in its smoke form: two vMCP and two `run` replicas behind
HAProxy sharing one Redis, six users logged in through the embedded authorization server, and one replica of each
set killed with SIGKILL under load. Every promise the bench checks holds: nothing fails before the fault, only
requests in flight at the killed replicas fail, no session is lost, everything works again after the grace, and
every tool call answered has its audit line.

Takes ~10 s (real processes and a fault under load; there is no shorter way to kill a replica under load)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("scale_smoke")]

SCALE = Path(__file__).resolve().parents[2] / "benchmarks" / "scale"


def test_the_promises_hold_when_a_replica_is_killed_under_load(tmp_path: Path) -> None:
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        if os.environ.get("CI"):
            pytest.fail("haproxy not found: scripts/install-test-deps.sh installs it (Debian's haproxy package)")
        pytest.skip("haproxy is not installed (run scripts/install-test-deps.sh, or apt-get install haproxy)")
    sys.path.insert(0, str(SCALE))
    from run import options, run_bench  # type: ignore[import-not-found]

    result = run_bench(options(smoke=True, duration=None, sessions=None, replicas=None), log_dir=tmp_path)

    assert [phase.name for phase in result.schedule.phases] == [
        "warm-up",
        "before faults",
        "during replica",
        "after replica",
    ]
    calls = [op for op in result.load.ops if op.what.startswith(("vmcp call", "run call"))]
    assert len(calls) > 100, len(calls)  # the load ran before, during and after the fault
    failed = [f"{v.promise}: {v.measured}" for v in result.verdicts if not v.ok]
    assert not failed, f"{failed} (logs in {result.log_dir})"

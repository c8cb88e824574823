"""The workload record store: atomic writes, one record per name, stale and unreadable records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from hivegate.workloads import CorruptRecord, NameTaken, WorkloadError, WorkloadRecord, WorkloadStore, start_time

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def record(name: str = "fetch", **changes: object) -> WorkloadRecord:
    base = WorkloadRecord(
        name=name,
        status="running",
        pid=None,
        pgid=None,
        url="http://127.0.0.1:8080/mcp",
        host="127.0.0.1",
        port=8080,
        argv=("--name", name, "--", "uvx", "mcp-server-fetch"),
        cwd="/tmp",
        started_at="2026-01-01T00:00:00+00:00",
        proxy_log=f"/tmp/logs/{name}.proxy.log",
        server_log=f"/tmp/logs/{name}.server.log",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def store(tmp_path: Path) -> WorkloadStore:
    return WorkloadStore(tmp_path / "workloads")


def test_a_record_round_trips_through_its_file(store: WorkloadStore) -> None:
    mine = record(pid=os.getpid(), pgid=os.getpgrp(), pid_start=start_time(os.getpid()))
    store.create(mine)
    assert store.load("fetch") == mine
    assert json.loads(store.path("fetch").read_text())["argv"] == list(mine.argv)
    assert store.path("fetch").stat().st_mode & 0o777 == 0o600
    assert store.names() == ["fetch"]
    assert store.load("other") is None


def test_a_name_is_taken_once(store: WorkloadStore) -> None:
    store.create(record(port=1))
    with pytest.raises(NameTaken, match="'fetch' exists already"):
        store.create(record(port=2))
    loaded = store.load("fetch")
    assert loaded is not None
    assert loaded.port == 1
    assert sorted(p.name for p in store.root.iterdir()) == ["fetch.json"]


def test_of_many_racing_creates_exactly_one_wins(store: WorkloadStore) -> None:
    winners: list[int] = []
    barrier = threading.Barrier(16)

    def create(port: int) -> None:
        barrier.wait()
        try:
            store.create(record(port=port))
        except NameTaken:
            return
        winners.append(port)

    threads = [threading.Thread(target=create, args=(port,)) for port in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    loaded = store.load("fetch")
    assert loaded is not None
    assert loaded.port == winners[0]


def test_a_failed_save_leaves_the_old_record_and_no_temporary_file(
    store: WorkloadStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(record(port=1))

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        store.save(record(port=2))
    monkeypatch.undo()
    loaded = store.load("fetch")
    assert loaded is not None
    assert loaded.port == 1
    assert sorted(p.name for p in store.root.iterdir()) == ["fetch.json"]


def test_readers_never_see_half_a_record(store: WorkloadStore) -> None:
    store.create(record(port=0, argv=()))
    done = threading.Event()

    def writer() -> None:
        for port in range(1, 300):
            store.save(record(port=port, argv=tuple("x" * port)))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = 0
    while not done.is_set():
        loaded = store.load("fetch")  # raises CorruptRecord on a torn read
        assert loaded is not None
        assert len(loaded.argv) == loaded.port
        seen += 1
    thread.join()
    assert seen > 0


def test_a_running_record_whose_process_died_is_crashed(store: WorkloadStore) -> None:
    pid = dead_pid()
    store.create(record(pid=pid, pgid=pid))
    store.create(record("halting", status="stopping", pid=pid, pgid=pid))
    store.create(record("stopped", status="stopped", pid=pid, pgid=pid))
    records, warnings = store.scan()
    assert warnings == []
    assert {r.name: r.status for r in records} == {"fetch": "crashed", "halting": "stopped", "stopped": "stopped"}
    on_disk = store.load("fetch")
    assert on_disk is not None
    assert on_disk.status == "crashed"  # repaired, not only reported


def test_a_live_process_keeps_its_record_running(store: WorkloadStore) -> None:
    store.create(record(pid=os.getpid(), pid_start=start_time(os.getpid())))
    current = store.get("fetch")
    assert current is not None
    assert current.status == "running"


@needs_proc
def test_a_pid_now_used_by_another_process_is_not_ours(store: WorkloadStore) -> None:
    started = start_time(os.getpid())
    assert started is not None
    store.create(record(pid=os.getpid(), pid_start=started + 1))
    current = store.get("fetch")
    assert current is not None
    assert current.status == "crashed"


def test_refresh_does_not_undo_a_newer_write(store: WorkloadStore) -> None:
    stale = record(pid=dead_pid())
    store.create(stale)
    store.save(stale.with_status("stopped"))  # `hivegate stop` got there first
    assert store.refresh(stale).status == "crashed"
    on_disk = store.load("fetch")
    assert on_disk is not None
    assert on_disk.status == "stopped"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"name": "bad"}', "status: missing"),
        (json.dumps({**record("bad").to_dict(), "port": "80"}).encode(), "port: expected int, got str"),
        (json.dumps({**record("bad").to_dict(), "status": "zombie"}).encode(), "unknown status 'zombie'"),
        (json.dumps({**record("bad").to_dict(), "argv": [1]}).encode(), "argv: expected a list of strings"),
        (json.dumps(record("other").to_dict()).encode(), "names 'other'"),
    ],
)
def test_an_unreadable_record_is_reported_and_skipped(store: WorkloadStore, content: bytes, reason: str) -> None:
    store.create(record())
    store.path("bad").write_bytes(content)
    with pytest.raises(CorruptRecord, match=r"workload record .*bad\.json") as raised:
        store.load("bad")
    assert reason in str(raised.value)
    assert "\n" not in str(raised.value)
    records, warnings = store.scan()
    assert [r.name for r in records] == ["fetch"]
    assert len(warnings) == 1
    assert warnings[0].startswith("ignoring workload record ")
    assert reason in warnings[0]


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden", "-flag", "x" * 64, "sp ace"])
def test_a_name_must_be_usable_as_a_file_name(store: WorkloadStore, name: str) -> None:
    with pytest.raises(WorkloadError, match="invalid workload name") as raised:
        store.path(name)
    assert raised.value.code == 2


def test_logs_live_next_to_the_records(store: WorkloadStore) -> None:
    proxy, server = store.log_paths("fetch")
    assert proxy == store.root.parent / "logs" / "fetch.proxy.log"
    assert server == store.root.parent / "logs" / "fetch.server.log"

"""A stand-in for `docker` / `podman` that records its command lines and runs the repo's MCP fixture server.

Installed as `docker` (or `podman`) on a PATH of its own by `install`. Every call appends its argv as one JSON line
to `$FAKE_RUNTIME_LOG`. `run … IMAGE ARGS` becomes the fixture server (`tests/fixtures/stdio_server.py ARGS`) in this
process, with only the variables named by `-e` (and PATH) in its environment, as a container would have; with
`-p 127.0.0.1:HOST:PORT` it serves Streamable HTTP on HOST (`--http HOST`). Containers are remembered in
`$FAKE_RUNTIME_STATE` (name, pid, labels) so that `ps -aq --filter label=K=V` lists the running ones and `rm -f`
kills them, as the runtime would.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "stdio_server.py"
_WITH_VALUE = {
    "--name",
    "--label",
    "--network",
    "--tmpfs",
    "--cap-drop",
    "--security-opt",
    "-v",
    "-e",
    "-p",
    "--ulimit",
}


def install(bin_dir: Path, name: str = "docker") -> Path:
    """Write the `name` executable into `bin_dir`; returns its path."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / name
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{__file__}" "$@"\n')
    exe.chmod(0o755)
    return exe


def recorded(log: Path) -> list[list[str]]:
    """The command lines the fake runtime was called with, oldest first."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, OSError):
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def running(state: Path, label: str | None = None) -> list[str]:
    """Names of the fake containers still running (with the label `K=V`, if given)."""
    names = []
    for entry in sorted(state.glob("*.json")) if state.exists() else []:
        info = json.loads(entry.read_text())
        if _alive(info["pid"]) and (label is None or label in info["labels"]):
            names.append(info["name"])
    return names


def _run(argv: list[str], state: Path) -> None:
    opts: dict[str, list[str]] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in _WITH_VALUE:
            opts.setdefault(argv[i], []).append(argv[i + 1])
            i += 2
        else:
            i += 1
    image, args = argv[i], argv[i + 1 :]
    name = (opts.get("--name") or [f"fake-{uuid.uuid4().hex[:12]}"])[0]
    state.mkdir(parents=True, exist_ok=True)
    info = {"name": name, "pid": os.getpid(), "image": image, "labels": opts.get("--label", [])}
    # whole or not at all: `running` may read the state while this container starts
    partial = state / f".{name}.json.partial"
    partial.write_text(json.dumps(info))
    partial.replace(state / f"{name}.json")
    env = {"PATH": os.environ.get("PATH", "")}
    env.update({key: os.environ[key] for key in opts.get("-e", []) if key in os.environ})
    command = [sys.executable, str(FIXTURE), *args]
    for publish in opts.get("-p", []):
        command += ["--http", publish.split(":")[1]]
    os.execve(sys.executable, command, env)  # noqa: S606 - become the "container", as `docker run -i` would


def main(argv: list[str]) -> int:
    with open(os.environ["FAKE_RUNTIME_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    state = Path(os.environ["FAKE_RUNTIME_STATE"])
    if argv[:1] == ["run"]:
        _run(argv[1:], state)
    elif argv[:1] == ["ps"]:
        label = argv[argv.index("--filter") + 1].removeprefix("label=") if "--filter" in argv else None
        print("\n".join(running(state, label)))
    elif argv[:1] == ["rm"]:
        for name in (a for a in argv[1:] if not a.startswith("-")):
            entry = state / f"{name}.json"
            if entry.exists():
                pid = json.loads(entry.read_text())["pid"]
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
                entry.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

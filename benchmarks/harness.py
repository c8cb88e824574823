"""Process management, ports and the local OIDC identity (JWKS + tokens) for the benchmarks.

Everything listens on 127.0.0.1 only. Every process is started in its own process group and
stopped by id (its group, then any descendant that left the group) when the harness exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from joserfc import jwt
from joserfc.jwk import RSAKey

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
CLEANUP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
HAPROXY_HINT = "haproxy not found on PATH: run scripts/install-test-deps.sh (it installs Debian's haproxy package)"


def haproxy_head(*global_lines: str) -> list[str]:
    """The start of a benchmark's HAProxy config: `global` (with `global_lines`) and HTTP `defaults`."""
    return ["global", "  maxconn 4096", *global_lines, "defaults", "  mode http", "  timeout connect 1s",
            "  timeout client 60s", "  timeout server 60s"]  # fmt: skip


def haproxy_executable() -> str | None:
    """HAProxy on PATH, or where Debian puts it (/usr/sbin is not on every user's PATH)."""
    return shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: ManagedProcess | None = None) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} before listening:\n{proc.tail()}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {HOST}:{port} after {timeout:.0f} s")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1], utime [11], stime [12])."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time consumed so far by the live processes ``pids`` (0 for gone ones)."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (Linux /proc walk)."""
    tree = _children_by_parent()
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in tree.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class ManagedProcess:
    """A process started by the harness, with stdout and stderr in one log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_output(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """Wait until the process's output matches ``pattern`` and return the match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = pattern.search(self.log_text())
            if match:
                return match
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
            time.sleep(0.05)
        what = f"{self.name} printed nothing matching {pattern.pattern!r} in {timeout:.0f} s"
        raise TimeoutError(f"{what}:\n{self.tail()}")

    def wait_for_url(self, port: int, timeout: float) -> str:
        """Wait until the process prints its MCP URL on ``port`` (``http://127.0.0.1:PORT/mcp``: its banner may name
        other URLs too) and accepts connections there; return the URL."""
        url = self.wait_for_output(re.compile(rf"http://{re.escape(HOST)}:{port}/mcp\b"), timeout=timeout).group(0)
        wait_for_port(port, timeout=30, proc=self)
        return url

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left, including strays outside the group."""
        if self.popen.poll() is not None:
            return
        strays = descendants(self.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=grace)
        deadline = time.monotonic() + grace
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in strays:
                if _alive(pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, sig)
            while any(_alive(pid) for pid in strays) and time.monotonic() < deadline:
                time.sleep(0.05)
        # Reap the group leader's group if anything is left in it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


@dataclass
class Processes:
    """Context manager owning every process the benchmark starts; stops them all on exit."""

    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hivegate-bench-")))
    running: list[ManagedProcess] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> ManagedProcess:
        log_path = self.log_dir / f"{name}.log"
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=BENCH_DIR.parent,
                start_new_session=True,
            )
        proc = ManagedProcess(name, popen, log_path)
        self.running.append(proc)
        return proc

    def start_listening(self, name: str, argv: list[str]) -> tuple[ManagedProcess, int]:
        """Start ``argv`` with a free port as its last argument; return once it accepts connections on that port."""
        port = free_port()
        proc = self.start(name, [*argv, str(port)])
        wait_for_port(port, timeout=30, proc=proc)
        return proc, port

    def stop(self, proc: ManagedProcess) -> None:
        proc.stop()
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short: hold them until every process is stopped.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, CLEANUP_SIGNALS)
        try:
            for proc in reversed(self.running):
                try:
                    proc.stop()
                except Exception as exc:  # keep stopping the others
                    print(f"warning: could not stop {proc.name} (pid {proc.pid}): {exc}", file=sys.stderr)
            self.running.clear()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()


@dataclass
class Identity:
    """A local OIDC issuer: an RSA key, its JWKS served over HTTP on 127.0.0.1, and minted tokens."""

    issuer: str
    jwks_url: str
    audience: str
    key: RSAKey

    @classmethod
    def start(cls, procs: Processes, audience: str = "hivegate-bench") -> Identity:
        port = free_port()
        issuer = f"http://{HOST}:{port}"
        key = RSAKey.generate_key(2048, parameters={"kid": "bench-key-1", "use": "sig", "alg": "RS256"})
        root = procs.log_dir / "jwks-root"
        (root / ".well-known").mkdir(parents=True, exist_ok=True)
        jwks_url = f"{issuer}/jwks.json"
        (root / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
        discovery = {"issuer": issuer, "jwks_uri": jwks_url, "id_token_signing_alg_values_supported": ["RS256"]}
        (root / ".well-known" / "openid-configuration").write_text(json.dumps(discovery))
        server = procs.start(
            "jwks-server",
            [sys.executable, "-m", "http.server", "--bind", HOST, "--directory", str(root), str(port)],
        )
        wait_for_port(port, timeout=10, proc=server)
        return cls(issuer=issuer, jwks_url=jwks_url, audience=audience, key=key)

    def mint(self, subject: str = "bench-user", lifetime: int = 3600, groups: list[str] | None = None) -> str:
        """An RS256 token for ``subject``; ``groups`` adds a ``groups`` claim (Cedar: ``THVGroup::"<g>"`` parents)."""
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime,
        }
        if groups is not None:
            claims["groups"] = list(groups)
        header = {"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key)

    def gateway_args(self) -> list[str]:
        return [
            "--oidc-issuer",
            self.issuer,
            "--oidc-audience",
            self.audience,
            "--oidc-jwks-url",
            self.jwks_url,
            "--oidc-insecure-allow-http",
            "--jwks-allow-private-ip",
        ]

"""What the scale bench runs, all on 127.0.0.1: Redis, the real OpenID provider the e2e tests use (oidc-provider),
one HTTP MCP backend, N `hivegate vmcp serve` replicas (each with a stdio backend of its own and the HTTP one), N
`hivegate run` replicas with the embedded authorization server, and one HAProxy in front of each set (round robin,
no stickiness). The replicas of a set share one config, one Redis and one issuer: the HAProxy URL of the `run` set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from joserfc.jwk import ECKey

from harness import (
    BENCH_DIR,
    HAPROXY_HINT,
    HOST,
    ManagedProcess,
    Processes,
    free_port,
    haproxy_executable,
    haproxy_head,
    wait_for_port,
)

REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO / "tests"))
from e2e.oidc_provider import DEFAULT_ACCOUNTS, DEFAULT_SCOPE, PROVIDER_SCRIPT, node_binary, web_client  # noqa: E402

__all__ = ["HAPROXY_HINT", "Replica", "Topology", "haproxy_executable", "start_topology"]

UPSTREAM_CLIENT = "hivegate-scale-as"
ENV = {"SCALE_AS_HMAC": "h" * 40, "SCALE_AS_UPSTREAM_SECRET": "scale-upstream-secret"}
_READY = re.compile(r'^\{"issuer".*\}$', re.MULTILINE)


@dataclass
class Replica:
    """One gateway replica: how to start it again after a kill, and where it writes its audit lines."""

    name: str
    argv: list[str]
    port: int
    audit: Path
    proc: ManagedProcess

    def rss_kib(self) -> int:
        """Resident memory of the replica and its children (stdio backends), KiB."""
        from harness import descendants

        total = 0
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
            total += int(match.group(1)) if match else 0
        return total

    def own_rss_kib(self) -> int:
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) if match else 0


@dataclass
class Topology:
    procs: Processes
    work: Path
    redis: ManagedProcess
    http_backend: ManagedProcess
    http_backend_argv: list[str]
    vmcp: list[Replica]
    run: list[Replica]
    vmcp_url: str
    run_url: str
    issuer: str
    redis_stopped: bool = field(default=False)

    def kill9(self, replica: Replica) -> None:
        os.killpg(replica.proc.pid, signal.SIGKILL)
        replica.proc.popen.wait(timeout=5)
        self.procs.running.remove(replica.proc)

    def restart(self, replica: Replica) -> None:
        replica.proc = self.procs.start(replica.name, replica.argv, env=ENV)

    def wait_serving(self, replica: Replica, timeout: float = 60) -> None:
        wait_for_port(replica.port, timeout=timeout, proc=replica.proc)

    def stop_redis(self) -> None:
        os.kill(self.redis.pid, signal.SIGSTOP)
        self.redis_stopped = True

    def resume_redis(self) -> None:
        if self.redis_stopped:
            os.kill(self.redis.pid, signal.SIGCONT)
            self.redis_stopped = False

    def kill_http_backend(self) -> None:
        os.killpg(self.http_backend.pid, signal.SIGKILL)
        self.http_backend.popen.wait(timeout=5)
        self.procs.running.remove(self.http_backend)

    def restart_http_backend(self) -> None:
        self.http_backend = self.procs.start("http-backend", self.http_backend_argv)

    def stdio_backends(self, replica: Replica) -> list[int]:
        """Pids of the stdio backend processes a vMCP replica started."""
        from harness import descendants

        found = []
        for pid in descendants(replica.proc.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"stdio_minimal_server.py" in cmdline:
                found.append(pid)
        return found


def _haproxy_config(name: str, port: int, servers: list[int]) -> str:
    lines = [
        *haproxy_head(),
        "  retries 2",
        "  option redispatch 1",
        "  retry-on conn-failure empty-response",
        f"frontend {name}",
        f"  bind {HOST}:{port}",
        f"  default_backend {name}-replicas",
        f"backend {name}-replicas",
        "  balance roundrobin",
        "  option httpchk GET /health",
        *(f"  server r{i} {HOST}:{p} check inter 500ms fall 2 rise 1" for i, p in enumerate(servers)),
    ]
    return "\n".join(lines) + "\n"


def _start_haproxy(procs: Processes, work: Path, name: str, port: int, servers: list[int]) -> str:
    executable = haproxy_executable()
    if executable is None:
        raise RuntimeError(HAPROXY_HINT)
    config = work / f"haproxy-{name}.cfg"
    config.write_text(_haproxy_config(name, port, servers))
    proc = procs.start(f"haproxy-{name}", [executable, "-db", "-f", str(config)])
    wait_for_port(port, timeout=10, proc=proc)
    return f"http://{HOST}:{port}/mcp"


def _start_redis(procs: Processes, work: Path) -> tuple[ManagedProcess, str]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server not found on PATH: run scripts/install-test-deps.sh")
    port = free_port()
    argv = [executable, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"]
    proc = procs.start("redis", [*argv, "--dir", str(work), "--loglevel", "warning"])
    wait_for_port(port, timeout=10, proc=proc)
    return proc, f"redis://{HOST}:{port}/0"


def _start_idp(procs: Processes, redirect: str, port: int) -> ManagedProcess:
    """oidc-provider on `port`, started (not yet ready: see `_idp_ready`), so that it and the replicas start
    side by side."""
    config = {
        "clients": [web_client(UPSTREAM_CLIENT, [redirect], secret=ENV["SCALE_AS_UPSTREAM_SECRET"])],
        "accounts": DEFAULT_ACCOUNTS,
        "loginAccount": "alice",
        "defaultResource": "https://upstream-api.example",
        "opaqueResources": [],
        "defaultScope": DEFAULT_SCOPE,
        "resourceScope": DEFAULT_SCOPE,
        "accessTokenTTL": 3600,
    }
    env = {"OIDC_PROVIDER_CONFIG": json.dumps(config), "NODE_NO_WARNINGS": "1"}
    return procs.start("oidc-provider", [node_binary(), str(PROVIDER_SCRIPT), "--port", str(port)], env=env)


def _idp_ready(proc: ManagedProcess) -> str:
    ready = json.loads(proc.wait_for_output(_READY, timeout=30).group(0))
    return str(ready["issuer"])


def _auth_server_config(work: Path, issuer: str, idp: str, redis_url: str) -> Path:
    key = work / "signing.pem"
    key.write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
    spec = {
        "issuer": issuer,
        "signingKeySecretRefs": [{"file": str(key)}],
        "hmacSecretRefs": [{"env": "SCALE_AS_HMAC"}],
        "storage": {"type": "redis", "redis": {"url": redis_url, "keyPrefix": "scale:as:"}},
        "upstreamProviders": [
            {
                "name": "corp",
                "type": "oidc",
                "oidcConfig": {
                    "issuerUrl": idp,
                    "clientId": UPSTREAM_CLIENT,
                    "clientSecretRef": {"env": "SCALE_AS_UPSTREAM_SECRET"},
                    "scopes": ["openid", "profile", "email", "offline_access"],
                    "additionalAuthorizationParams": {"prompt": "consent"},
                },
            }
        ],
    }
    path = work / "auth-server.json"
    path.write_text(json.dumps(spec))
    return path


def _vmcp_config(work: Path, index: int, issuer: str, resource: str, backend_url: str, redis_port: int) -> Path:
    config = {
        "name": "scale",
        "backends": [
            {"name": "local", "command": sys.executable, "args": [str(BENCH_DIR / "stdio_minimal_server.py")]},
            {"name": "remote", "url": backend_url},
        ],
        "incomingAuth": {
            "type": "oidc",
            "oidc": {
                "issuer": issuer,
                "audience": resource,
                "jwksUrl": f"{issuer}/.well-known/jwks.json",
                "insecureAllowHttp": True,
                "jwksAllowPrivateIp": True,
                "protectedResourceAllowPrivateIp": True,
            },
        },
        "sessionStorage": {"provider": "redis", "address": f"{HOST}:{redis_port}", "keyPrefix": "scale:vmcp:"},
        "audit": {"logFile": str(work / f"audit-vmcp-{index}.jsonl"), "includeRequestData": True},
    }
    path = work / f"vmcp-{index}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _serve(procs: Processes, name: str, argv: list[str], port: int, audit: Path) -> Replica:
    return Replica(name, argv, port, audit, procs.start(name, argv, env=ENV))


def start_topology(procs: Processes, replicas: int) -> Topology:
    """Start everything; return once every replica accepts connections."""
    work = procs.log_dir
    redis, redis_url = _start_redis(procs, work)
    redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    backend_port = free_port()
    backend_argv = [sys.executable, str(BENCH_DIR / "fast_backend.py"), "--port", str(backend_port)]
    backend = procs.start("http-backend", backend_argv)
    backend_url = f"http://{HOST}:{backend_port}/mcp"

    run_ports = [free_port() for _ in range(replicas)]
    vmcp_ports = [free_port() for _ in range(replicas)]
    # The run set's HAProxy address is the issuer; HAProxy itself starts once the replicas listen, so that its
    # first health checks find them up.
    run_port, vmcp_port = free_port(), free_port()
    run_url, vmcp_url = f"http://{HOST}:{run_port}/mcp", f"http://{HOST}:{vmcp_port}/mcp"
    issuer = run_url.removesuffix("/mcp")
    idp_port = free_port()
    idp_proc = _start_idp(procs, f"{issuer}/oauth/callback", idp_port)
    as_config = _auth_server_config(work, issuer, f"http://{HOST}:{idp_port}", redis_url)

    hivegate = [sys.executable, "-m", "hivegate"]
    run, vmcp = [], []
    for i, port in enumerate(run_ports):
        audit_config = work / f"audit-run-{i}.yaml"
        audit = work / f"audit-run-{i}.jsonl"
        audit_config.write_text(yaml.safe_dump({"logFile": str(audit), "includeRequestData": True}))
        argv = [*hivegate, "run", "--foreground", "--port", str(port), "--auth-server-config", str(as_config)]
        argv += ["--resource-url", run_url, "--audit-config", str(audit_config), backend_url]
        run.append(_serve(procs, f"run-{i}", argv, port, audit))
    for i, port in enumerate(vmcp_ports):
        config = _vmcp_config(work, i, issuer, run_url, backend_url, redis_port)
        argv = [*hivegate, "vmcp", "serve", "--config", str(config), "--port", str(port)]
        vmcp.append(_serve(procs, f"vmcp-{i}", argv, port, work / f"audit-vmcp-{i}.jsonl"))
    wait_for_port(backend_port, timeout=30, proc=backend)
    _idp_ready(idp_proc)
    deadline = time.monotonic() + 90
    for replica in [*run, *vmcp]:
        wait_for_port(replica.port, timeout=max(1.0, deadline - time.monotonic()), proc=replica.proc)
    _start_haproxy(procs, work, "run", run_port, run_ports)
    _start_haproxy(procs, work, "vmcp", vmcp_port, vmcp_ports)
    return Topology(procs, work, redis, backend, backend_argv, vmcp, run, vmcp_url, run_url, issuer)

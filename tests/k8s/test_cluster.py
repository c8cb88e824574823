"""Against a real cluster (kind, k3s, any): install the CRDs and the chart, apply an MCPServer, call a tool through
its Service with a service-account token. Runs when KUBECONFIG is set (and kubectl is on PATH); reported as skipped
otherwise.

    export KUBECONFIG=~/.kube/config
    podman build -t localhost/hivegate:dev . && kind load docker-image localhost/hivegate:dev   # or push it
    HIVEGATE_K8S_IMAGE=localhost/hivegate:dev pytest tests/k8s -n 0

`HIVEGATE_K8S_SERVER_IMAGE` is the MCP server to run (default: the seeds' weather server, SSE on 8080; the cluster
must be able to pull it). Everything is created in a namespace of its own, deleted afterwards with the chart's
cluster-wide RBAC (the CRDs stay).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from support.helm import render_chart
from support.mcp_calls import ACCEPT, INIT

REPO = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.skipif(
    not os.environ.get("KUBECONFIG") or shutil.which("kubectl") is None,
    reason="KUBECONFIG is not set (or kubectl is missing): tests/k8s runs against a real cluster",
)


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=300, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr.strip()[-800:]}")
    return done.stdout


def _wait(what: str, check: object, timeout: float = 300) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = check()  # type: ignore[operator]
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(2)


@pytest.fixture(scope="module")
def installed() -> Iterator[str]:
    namespace = f"hivegate-e2e-{secrets.token_hex(3)}"
    release = f"hg-{secrets.token_hex(3)}"
    image = os.environ.get("HIVEGATE_K8S_IMAGE", "localhost/hivegate:dev")
    repository, _, tag = image.rpartition(":")
    kubectl("create", "namespace", namespace)
    kubectl("apply", "--server-side", "-f", str(REPO / "deploy" / "crds"))
    chart = REPO / "deploy" / "helm" / "hivegate-operator"
    values = {"image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
              "namespaces": [namespace], "replicaCount": 1}  # fmt: skip
    objects = render_chart(chart, values=values, name=release, namespace=namespace)
    manifest = yaml.safe_dump_all(objects)
    try:
        kubectl("apply", "-f", "-", stdin=manifest)
        kubectl("rollout", "status", f"deployment/{release}", "-n", namespace, "--timeout=300s")
        yield namespace
    finally:
        kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=false", stdin=manifest, check=False)
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_mcpserver_serves_a_tool_call_to_a_service_account(installed: str) -> None:
    namespace = installed
    server = {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
              "metadata": {"name": "weather", "namespace": namespace},
              "spec": {"image": os.environ.get("HIVEGATE_K8S_SERVER_IMAGE", "ghcr.io/stackloklabs/weather-mcp/server"),
                       "transport": "sse", "port": 8080,
                       "oidcConfig": {"type": "kubernetes", "kubernetes": {"audience": "toolhive"}}}}  # fmt: skip
    kubectl("apply", "-f", "-", stdin=json.dumps(server))

    def ready() -> dict[str, object] | None:
        body = json.loads(kubectl("get", "mcpserver", "weather", "-n", namespace, "-o", "json"))
        status = body.get("status") or {}
        return status if status.get("phase") == "Ready" else None

    status = _wait("the MCPServer to be Ready", ready)
    assert status["url"] == f"http://mcp-weather-proxy.{namespace}.svc.cluster.local:8080/mcp"  # type: ignore[index]
    token = kubectl("create", "token", "default", "-n", namespace, "--audience", "toolhive").strip()
    port = _free_port()
    forward = subprocess.Popen(["kubectl", "port-forward", "-n", namespace, "svc/mcp-weather-proxy", f"{port}:8080"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/mcp"

        def forwarded() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait("the port-forward", forwarded, timeout=60)
        assert httpx.post(url, json=INIT, headers=ACCEPT, timeout=30).status_code == 401
        auth = {**ACCEPT, "Authorization": f"Bearer {token}"}
        with httpx.Client(timeout=60, headers=auth) as http:
            hello = http.post(url, json=INIT)
            assert hello.status_code == 200, hello.text
            session = {"Mcp-Session-Id": hello.headers["mcp-session-id"]}
            http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
            tools = http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=session)
            assert tools.status_code == 200, tools.text
            listed = _answer(tools.text)["result"]["tools"]
            assert listed
            # a call through the gateway to the server: its first tool, required arguments filled by their type
            tool = listed[0]
            schema = tool.get("inputSchema") or {}
            samples = {"string": "London", "number": 1, "integer": 1, "boolean": True}
            arguments = {name: samples.get((schema.get("properties") or {}).get(name, {}).get("type"), "London")
                         for name in schema.get("required") or []}  # fmt: skip
            call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                    "params": {"name": tool["name"], "arguments": arguments}}  # fmt: skip
            called = http.post(url, json=call, headers=session)
            assert called.status_code == 200, called.text
            assert "result" in _answer(called.text), called.text  # the server answered (a tool error is a result)
    finally:
        forward.terminate()
        forward.wait(10)


def _answer(body: str) -> dict[str, Any]:
    """A JSON-RPC answer from a JSON body or the data line of an event stream."""
    if body.startswith(("event:", "data:", "id:", ":")):
        body = next(line[5:] for line in body.splitlines() if line.startswith("data:") and line[5:].strip())
    answer: dict[str, Any] = json.loads(body)
    return answer

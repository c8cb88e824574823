"""The `pods/attach` transport against a stand-in API server speaking Kubernetes' attach protocol in front of a real
stdio MCP server; and the operator's stdio image end to end: its manifests and the gateway's command line, attached."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hivegate.backends.attach import ApiAccess, AttachTarget, AttachTransport
from hivegate.core.jsonrpc import Message
from hivegate.operator.kube import KubeClient
from support.attach_server import TOKEN, attach_server
from support.cluster import emulated_cluster, running_operator, until
from support.gateway import hivegate_process
from support.mcp_calls import INIT, call_tool

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def _answer(inbox: list[Message], request_id: Any) -> Message:
    async def found() -> Message | None:
        return next((m for m in inbox if m.get("id") == request_id and "method" not in m), None)

    return await until(found, timeout=20, what=f"the answer to {request_id}")


async def test_two_sessions_attached_to_one_server_each_get_their_own_answers(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    async with attach_server() as server:
        access = ApiAccess(server.url, token_file=str(token))
        target = AttachTarget("tools", "server-0", "mcp")
        first, second = AttachTransport(target, access, name="a"), AttachTransport(target, access, name="b")
        inbox_a: list[Message] = []
        inbox_b: list[Message] = []
        await first.open(inbox_a.append)
        await second.open(inbox_b.append)
        assert server.requests[0] == {"container": "mcp", "stdin": "true", "stdout": "true", "stderr": "true",
                                      "tty": "false"}  # fmt: skip
        await first.send(INIT)
        await second.send(INIT)  # the same id, 1, from both sessions
        assert (await _answer(inbox_a, 1))["result"]["serverInfo"]
        assert (await _answer(inbox_b, 1))["result"]["serverInfo"]
        echo = {"name": "echo", "arguments": {"text": "only a"}}
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": echo}
        await first.send(call)
        answer = await _answer(inbox_a, 7)
        assert answer["result"]["content"][0]["text"] == "only a"
        assert [m.get("id") for m in inbox_b] == [1]  # b saw none of a's answers
        await first.close()
        assert await asyncio.wait_for(first.wait_closed(), 5)
        await second.send({**call, "id": 8, "params": {"name": "echo", "arguments": {"text": "b goes on"}}})
        assert (await _answer(inbox_b, 8))["result"]["content"][0]["text"] == "b goes on"  # stdin stayed open
        await second.close()


async def test_a_refused_attach_is_a_backend_error() -> None:
    from hivegate.errors import BackendError

    async with attach_server() as server:
        transport = AttachTransport(AttachTarget("tools", "server-0", "mcp"), ApiAccess(server.url))
        with pytest.raises(BackendError, match="cannot attach to tools/server-0/mcp"):
            await transport.open(lambda _: None)


async def _rendered(api: KubeClient) -> tuple[str, dict[str, Any]] | None:
    config, deployment = await api.get("ConfigMap", "tools", "server-manifests"), await api.get("Deployment", "tools",
                                                                                                  "server")  # fmt: skip
    if config is None or deployment is None:
        return None
    return config["data"]["manifests.yaml"], deployment


async def test_the_operators_stdio_image_is_attached_from_the_gateway(tmp_path: Path) -> None:
    server_doc = {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
                  "metadata": {"name": "server", "namespace": "tools", "uid": "u-server"},
                  "spec": {"image": "example/stdio-server:1", "args": ["--verbose"],
                           "env": [{"name": "MODE", "value": "test"}],
                           "resources": {"limits": {"memory": "64Mi"}}}}  # fmt: skip
    async with emulated_cluster() as url, running_operator(url) as api:
        await api.create(server_doc)
        text, deployment = await until(lambda: _rendered(api), what="the ConfigMap and the Deployment")
        statefulset = await api.get("StatefulSet", "tools", "server")
        role = await api.get("Role", "tools", "server-proxy-runner")
    assert statefulset is not None
    assert role is not None
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["args"], container["stdin"], container["tty"]) == (
        "example/stdio-server:1", ["--verbose"], True, False)  # fmt: skip
    assert container["env"] == [{"name": "MODE", "value": "test"}]
    assert statefulset["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert {"apiGroups": [""], "resources": ["pods/attach"], "verbs": ["create", "get"]} in role["rules"]
    assert deployment["spec"]["replicas"] == 1
    manifest = yaml.safe_load(text)
    assert manifest["metadata"]["annotations"] == {"hivegate.dev/attach": "tools/server-0/mcp"}

    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "manifests.yaml").write_text(text)
    token = tmp_path / "token"
    token.write_text(TOKEN)
    gateway = deployment["spec"]["template"]["spec"]["containers"][0]
    args = [str(tmp_path / "manifests") if a == "/etc/hivegate/manifests" else a for a in gateway["args"]]
    for flag in ("--port", "--diagnostics-port"):
        args[args.index(flag) + 1] = "0"
    async with attach_server() as server:
        env = {"HIVEGATE_KUBE_API_URL": server.url, "HIVEGATE_KUBE_TOKEN_FILE": str(token)}
        async with hivegate_process(args, env=env) as running:
            assert await asyncio.to_thread(call_tool, running.url, "echo", {"text": "attached"}) == "attached"
            async with httpx.AsyncClient() as http:
                ready = await http.get(running.base + "/readyz")  # the pod is Running: the gateway is ready
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["backend"] == "ok"

"""The operator and the vMCP seeds (seeds/000, 002): each VirtualMCPServer runs `hivegate vmcp serve` in front of its
group's members (their Services), the group's status lists them, and a new member re-renders the vMCP."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hivegate.operator.kube import KubeClient
from support.cluster import apply_docs, emulated_cluster, running_operator, seed_docs, until

pytestmark = pytest.mark.anyio
NS = "toolhive-system"


async def _members(api: KubeClient, name: str) -> list[str] | None:
    config = await api.get("ConfigMap", NS, f"{name}-manifests")
    if config is None:
        return None
    docs = list(yaml.safe_load_all(config["data"]["manifests.yaml"]))
    return [d["spec"]["url"] for d in docs if d["kind"] == "MCPServer"]


async def _status(api: KubeClient, kind: str, name: str, key: str) -> dict[str, Any] | None:
    status = ((await api.get(kind, NS, name)) or {}).get("status") or {}
    return status if key in status else None


async def test_seed_000_virtual_servers_serve_their_group() -> None:
    async with emulated_cluster() as k8s, running_operator(k8s) as api:
        await apply_docs(api, seed_docs("seed_000.yaml"))
        fetch = "http://mcp-fetch-proxy.toolhive-system.svc.cluster.local:8080/mcp"
        for name in ("anonymous", "oidc-inline", "oidc-introspection", "service-accounts", "discovered"):
            status = await until(lambda n=name: _status(api, "VirtualMCPServer", n, "backendCount"), what=name)
            assert status["url"] == f"http://vmcp-{name}.{NS}.svc.cluster.local:4483/mcp"
            assert status["discoveredBackends"] == [{"name": "fetch"}]
            assert await _members(api, name) == [fetch]
        deployment = await api.get("Deployment", NS, "oidc-introspection")
        assert deployment is not None
        gateway = deployment["spec"]["template"]["spec"]["containers"][0]
        assert gateway["args"][:4] == ["vmcp", "serve", "-f", "/etc/hivegate/manifests"]
        mounts = [m["mountPath"] for m in gateway["volumeMounts"]]
        assert "/etc/hivegate/secrets/oidc-client-secret" in mounts
        group = await until(lambda: _status(api, "MCPGroup", "tools", "serverCount"), what="group status")
        assert group["servers"] == ["fetch"]
        assert group["phase"] == "Ready"
        assert [(c["type"], c["status"]) for c in group["conditions"]] == [("MCPServersChecked", "True"),
                                                                           ("Ready", "True")]  # fmt: skip

        second = {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
                  "metadata": {"name": "time", "namespace": NS, "uid": "u-time"},
                  "spec": {"groupRef": "tools", "url": "http://time.example:8080/mcp"}}  # fmt: skip
        await api.create(second)
        both = [fetch, "http://mcp-time-proxy.toolhive-system.svc.cluster.local:8080/mcp"]

        async def rerendered() -> list[str] | None:
            members = await _members(api, "anonymous")
            return members if members == both else None

        await until(rerendered, what="the vMCP's manifests with the new member")
        group = await until(lambda: _count(api, 2), what="two members")
        assert group["servers"] == ["fetch", "time"]

        await api.delete("MCPServer", NS, "time")
        await until(lambda: _count(api, 1), what="one member again")


async def _count(api: KubeClient, count: int) -> dict[str, Any] | None:
    status = await _status(api, "MCPGroup", "tools", "serverCount")
    return status if status and status["serverCount"] == count else None


async def test_seed_002_engineering_tools_behind_its_authorization_server() -> None:
    """seeds/002: a vMCP with an embedded authorization server in front of its group's two members, an OIDC config
    naming the server's issuer, the members' outgoing auth configs, sessions in Redis (two replicas)."""
    async with emulated_cluster() as k8s, running_operator(k8s) as api:
        await apply_docs(api, seed_docs("seed_002.yaml"))
        name = "engineering-tools"
        status = await until(lambda: _status(api, "VirtualMCPServer", name, "backendCount"), what="vMCP status")
        assert next(c for c in status["conditions"] if c["type"] == "Valid")["status"] == "True", status
        assert status["url"] == f"http://vmcp-{name}.{NS}.svc.cluster.local:4483/mcp"
        assert sorted(b["name"] for b in status["discoveredBackends"]) == ["github", "kubernetes"]
        assert sorted(await _members(api, name) or []) == [
            f"http://mcp-github-proxy.{NS}.svc.cluster.local:8080/mcp",
            f"http://mcp-kubernetes-proxy.{NS}.svc.cluster.local:8080/mcp",
        ]
        vmcp = await api.get("Deployment", NS, name)
        assert vmcp is not None
        assert vmcp["spec"]["replicas"] == 2  # sessions are shared through Redis
        gateway = vmcp["spec"]["template"]["spec"]["containers"][0]
        assert gateway["args"][:4] == ["vmcp", "serve", "-f", "/etc/hivegate/manifests"]
        mounts = {m["mountPath"] for m in gateway["volumeMounts"]}
        assert {"/etc/hivegate/secrets/okta-engineering-tools", "/etc/hivegate/secrets/redis-password"} <= mounts
        text = (await api.get("ConfigMap", NS, f"{name}-manifests") or {})["data"]["manifests.yaml"]
        values = ("okta-secret-value", "exchange-secret", "redis-pass")
        assert not [v for v in values if v in text.replace("redis-password", "")]  # Secrets are never copied

        exchange = await until(lambda: _status(api, "MCPExternalAuthConfig", "kubernetes-exchange", "configHash"))
        assert exchange["referencedBy"] == ["MCPServer/kubernetes", f"VirtualMCPServer/{name}"]  # discovered by it
        oidc = await until(lambda: _status(api, "MCPOIDCConfig", "engineering-tools-as", "configHash"))
        assert oidc["referencedBy"] == [f"VirtualMCPServer/{name}"]
        group = await until(lambda: _status(api, "MCPGroup", name, "serverCount"), what="group status")
        assert (group["servers"], group["serverCount"], group["phase"]) == (["github", "kubernetes"], 2, "Ready")

        await api.delete("MCPOIDCConfig", NS, "engineering-tools-as")  # the vMCP still names it

        async def blocked() -> dict[str, Any] | None:
            status = ((await api.get("MCPOIDCConfig", NS, "engineering-tools-as")) or {}).get("status") or {}
            return next((c for c in status.get("conditions") or [] if c["type"] == "DeletionBlocked"), None)

        condition = await until(blocked, what="DeletionBlocked")
        assert condition["status"] == "True"
        assert f"VirtualMCPServer/{name}" in condition["message"]
        await api.delete("VirtualMCPServer", NS, name)

        async def gone() -> bool:
            return await api.get("MCPOIDCConfig", NS, "engineering-tools-as") is None

        await until(gone, what="the OIDC config deleted once nothing references it")

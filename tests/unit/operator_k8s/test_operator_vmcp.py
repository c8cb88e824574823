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
            f"http://mcp-kubernetes-proxy.{NS}.svc.cluster.local:8081/mcp",  # the server itself (see below)
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


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


async def test_seed_002_members_run_and_the_vmcp_brings_their_upstream_credential() -> None:
    """seeds/002's members name the vMCP's upstream provider (okta) in their outgoing auth: each runs its own gateway
    without it; the vMCP applies it, reaching the HTTP server through the Service's `mcp` port (admitted from the
    group's vMCPs only), and sends nothing to the stdio server, which cannot carry a token."""
    async with emulated_cluster() as k8s, running_operator(k8s) as api:
        await apply_docs(api, seed_docs("seed_002.yaml"))
        for member in ("github", "kubernetes"):
            status = await until(lambda m=member: _status(api, "MCPServer", m, "url"), what=member)  # type: ignore[misc]
            assert _condition(status, "Valid")["status"] == "True", status
            assert status["phase"] == "Pending"  # its Deployment, waiting for pods
            assert await api.get("Deployment", NS, member) is not None
        kubernetes = await _status(api, "MCPServer", "kubernetes", "url") or {}
        said = _condition(kubernetes, "ExternalAuthConfigValidated")
        assert (said["status"], said["reason"]) == ("True", "AppliedByVirtualMCPServer")
        assert said["message"].startswith(
            "spec.externalAuthConfigRef: MCPExternalAuthConfig 'kubernetes-exchange' (tokenExchange.subjectProviderName"
            " 'okta') names an upstream provider of a VirtualMCPServer's embedded authorization server: this gateway"
        )
        assert "only calls through a VirtualMCPServer of MCPGroup 'engineering-tools'" in said["message"]
        github = await _status(api, "MCPServer", "github", "url") or {}
        said = _condition(github, "ExternalAuthConfigValidated")
        assert (said["status"], said["reason"]) == ("True", "NotDeliverable")
        assert "a stdio server has no HTTP request to carry the upstream token" in said["message"]
        assert await api.get("StatefulSet", NS, "github") is not None

        service = await api.get("Service", NS, "mcp-kubernetes-proxy") or {}
        assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
            ("http", 8080, "http"), ("mcp", 8081, "mcp")]  # fmt: skip
        github_service = await api.get("Service", NS, "mcp-github-proxy") or {}
        assert [p["name"] for p in github_service["spec"]["ports"]] == ["http"]
        assert await api.get("NetworkPolicy", NS, "github-mcp-direct") is None
        policy_name = "kubernetes-mcp-direct"
        policy = await api.get("NetworkPolicy", NS, policy_name) or {}
        assert policy["spec"]["podSelector"] == {"matchLabels": service["spec"]["selector"]}
        open_ports, direct = policy["spec"]["ingress"]
        assert "from" not in open_ports
        assert [p["port"] for p in open_ports["ports"]] == ["http", "metrics"]
        assert direct["ports"] == [{"port": "mcp", "protocol": "TCP"}]
        vmcps = direct["from"][0]["podSelector"]["matchLabels"]
        vmcp = await api.get("Deployment", NS, "engineering-tools") or {}
        pod_labels = vmcp["spec"]["template"]["metadata"]["labels"]
        assert vmcps.items() <= pod_labels.items()  # the group's vMCP gateways, and no other pod
        assert vmcps["hivegate.dev/group"] == "engineering-tools"

        # the members' gateways run without the strategy (and without its Secret)
        for member in ("github", "kubernetes"):
            text = (await api.get("ConfigMap", NS, f"{member}-manifests") or {})["data"]["manifests.yaml"]
            docs = list(yaml.safe_load_all(text))
            assert [d["kind"] for d in docs] == ["MCPServer"]
            assert "externalAuthConfigRef" not in docs[0]["spec"]
            gateway = (await api.get("Deployment", NS, member) or {})["spec"]["template"]["spec"]["containers"][0]
            assert "--anonymous" in gateway["args"]
            assert not [m for m in gateway["volumeMounts"] if "exchange-client" in m["mountPath"]]

        # the vMCP applies kubernetes' strategy at the server, and sends the stdio server nothing
        text = (await api.get("ConfigMap", NS, "engineering-tools-manifests") or {})["data"]["manifests.yaml"]
        members = {d["metadata"]["name"]: d["spec"] for d in yaml.safe_load_all(text) if d["kind"] == "MCPServer"}
        assert members["kubernetes"] == {
            "groupRef": "engineering-tools",
            "url": f"http://mcp-kubernetes-proxy.{NS}.svc.cluster.local:8081/mcp",
            "transport": "streamable-http",
            "externalAuthConfigRef": {"name": "kubernetes-exchange"},
        }
        assert members["github"] == {"groupRef": "engineering-tools", "transport": "streamable-http",
                                     "url": f"http://mcp-github-proxy.{NS}.svc.cluster.local:8080/mcp"}  # fmt: skip

        events = {(e["involvedObject"]["name"], e["type"], e["reason"]) for e in await api.list("Event", NS)}
        assert {
            ("kubernetes", "Normal", "AppliedByVirtualMCPServer"),
            ("github", "Warning", "NotDeliverable"),
        } <= events

        # a member at spec.url: the vMCP calls that URL with the credential, and checks what its gateway would
        policies = ['permit(principal, action == Action::"call_tool", resource);']
        wiki = {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
                "metadata": {"name": "wiki", "namespace": NS, "uid": "u-wiki"},
                "spec": {"groupRef": {"name": "engineering-tools"}, "url": "http://wiki.example:9000/mcp",
                         "externalAuthConfigRef": {"name": "github-upstream"},
                         "authzConfig": {"type": "inline", "inline": {"policies": policies}}}}  # fmt: skip
        await api.create(wiki)

        async def wiki_member() -> dict[str, Any] | None:
            text = (await api.get("ConfigMap", NS, "engineering-tools-manifests") or {})["data"]["manifests.yaml"]
            return next((d["spec"] for d in yaml.safe_load_all(text) if d["metadata"]["name"] == "wiki"), None)

        spec = await until(wiki_member, what="the vMCP's manifests with wiki")
        assert (spec["url"], spec["externalAuthConfigRef"]) == (
            "http://wiki.example:9000/mcp",
            {"name": "github-upstream"},
        )
        assert spec["authzConfig"]["inline"]["policies"] == policies  # enforced by the vMCP (`ownproxy`)

        async def three() -> dict[str, Any] | None:
            status = await _status(api, "VirtualMCPServer", "engineering-tools", "backendCount")
            return status if status and status["backendCount"] == 3 else None

        status = await until(three, what="the vMCP's status with three backends")
        assert _condition(status, "Valid")["status"] == "True", status
        status = await until(lambda: _status(api, "MCPServer", "wiki", "url"), what="wiki")
        assert _condition(status, "ExternalAuthConfigValidated")["reason"] == "AppliedByVirtualMCPServer"
        assert await api.get("NetworkPolicy", NS, "wiki-mcp-direct") is None

        # without the strategy, kubernetes' server is its gateway's alone again
        assert kubernetes["externalAuthConfigHash"]
        await api.patch("MCPServer", NS, "kubernetes", {"spec": {"externalAuthConfigRef": None}})

        async def closed() -> bool:
            ports = ((await api.get("Service", NS, "mcp-kubernetes-proxy")) or {})["spec"]["ports"]
            return [p["name"] for p in ports] == ["http"] and not await api.get("NetworkPolicy", NS, policy_name)

        await until(closed, what="the mcp port and its NetworkPolicy gone")
        gateway_url = f"http://mcp-kubernetes-proxy.{NS}.svc.cluster.local:8080/mcp"

        async def through_gateway() -> bool:
            return gateway_url in (await _members(api, "engineering-tools") or [])

        await until(through_gateway, what="the vMCP calling kubernetes' gateway again")

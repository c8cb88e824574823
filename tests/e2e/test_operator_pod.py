"""What the operator renders runs: the ConfigMap written to a folder (as the pod mounts it), the Secret as the pod's
volume, and the gateway container's own command line run as a real `hivegate` process in front of a real backend."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from e2e.test_run_manifest import call, text
from hivegate.operator.kube import KubeClient
from support.backend import fixture_http_server, free_port
from support.cluster import apply_docs, emulated_cluster, running_operator, seed_docs, until
from support.gateway import hivegate_process
from support.issuer import local_issuer
from support.mcp_calls import call_tool
from support.redis_server import start_redis

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
NS = "tools"


def _manifests(url: str) -> list[dict[str, Any]]:
    """An MCPRemoteProxy in front of `url` whose backend gets an API key from a Secret, with Cedar policies that
    allow one tool; and an MCPServer whose HTTP image listens on the stand-in's port (the pod's `mcp` container)."""
    port = int(url.split(":")[2].split("/")[0])
    policies = ['permit(principal, action == Action::"call_tool", resource == Tool::"headers");']
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "backend-key", "namespace": NS},
         "stringData": {"token": "placeholder-in-the-api"}},
        {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRemoteProxy",
         "metadata": {"name": "remote", "namespace": NS, "uid": "u-remote"},
         "spec": {"remoteUrl": url, "allowPrivateEndpoint": True,
                  "headerForward": {"addHeadersFromSecret": [
                      {"headerName": "X-Api-Key", "valueSecretRef": {"name": "backend-key", "key": "token"}}]},
                  "authzConfig": {"type": "inline", "inline": {"policies": policies}}}},
        {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
         "metadata": {"name": "sidecar", "namespace": NS, "uid": "u-sidecar"},
         "spec": {"image": "example/fixture:1", "transport": "streamable-http", "mcpPort": port}},
    ]  # fmt: skip


async def _pod(api: KubeClient, name: str, namespace: str = NS) -> tuple[str, dict[str, Any]] | None:
    config = await api.get("ConfigMap", namespace, f"{name}-manifests")
    deployment = await api.get("Deployment", namespace, name)
    if config is None or deployment is None:
        return None
    return config["data"]["manifests.yaml"], deployment["spec"]["template"]["spec"]["containers"][0]


def _local(container: dict[str, Any], manifests: Path) -> list[str]:
    """The container's command line with the mount path made the local folder and the ports left to the OS."""
    args = [str(manifests) if a == "/etc/hivegate/manifests" else a for a in container["args"]]
    for flag in ("--port", "--diagnostics-port"):
        if flag in args:
            args[args.index(flag) + 1] = "0"
    return args


async def test_rendered_manifests_serve_through_the_pods_command_line(tmp_path: Path) -> None:
    async with fixture_http_server("--http") as backend, emulated_cluster() as url, running_operator(url) as api:
        for doc in _manifests(backend):
            await api.create(doc)
        remote = await until(lambda: _pod(api, "remote"), what="the remote proxy's ConfigMap and Deployment")
        sidecar = await until(lambda: _pod(api, "sidecar"), what="the sidecar server's ConfigMap and Deployment")

        text, container = remote
        (tmp_path / "remote").mkdir()
        (tmp_path / "remote" / "manifests.yaml").write_text(text)
        secrets = tmp_path / "secrets"  # the Secret volume as the kubelet lays it out
        (secrets / "backend-key").mkdir(parents=True)
        (secrets / "backend-key" / "token").write_text("key-from-the-volume")
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env == {"HIVEGATE_SECRETS_DIR": "/etc/hivegate/secrets"}
        assert container["args"][-1] == "--anonymous"  # the proxy sets no incoming auth: served to anyone
        argv = _local(container, tmp_path / "remote")
        async with hivegate_process(argv, env={"HIVEGATE_SECRETS_DIR": str(secrets)}) as gateway:
            assert gateway.stderr == []  # --log-output stdout: every line on stdout, each a JSON object
            logged = [json.loads(line) for line in gateway.stdout]
            assert any("Cedar policies loaded" in entry["msg"] for entry in logged)
            headers = json.loads(await asyncio.to_thread(call_tool, gateway.url, "headers", {}))
            assert headers["x-api-key"] == "key-from-the-volume"
            with pytest.raises(AssertionError, match="403"):
                await asyncio.to_thread(call_tool, gateway.url, "echo", {"text": "hi"})

        text, container = sidecar
        assert yaml.safe_load(text)["spec"]["url"] == backend  # the `mcp` container, on the pod's loopback
        (tmp_path / "sidecar").mkdir()
        (tmp_path / "sidecar" / "manifests.yaml").write_text(text)
        async with hivegate_process(_local(container, tmp_path / "sidecar")) as gateway:
            assert await asyncio.to_thread(call_tool, gateway.url, "echo", {"text": "in the pod"}) == "in the pod"


async def test_a_rendered_vmcp_serves_its_groups_member(tmp_path: Path) -> None:
    """seeds/000's anonymous VirtualMCPServer as rendered, its command line run; the one change: the member's Service
    URL (cluster DNS) is the stand-in backend's local URL. Its tools carry the member's name (prefix resolution)."""
    async with fixture_http_server("--http") as backend:
        async with emulated_cluster() as url, running_operator(url) as api:
            for doc in seed_docs("seed_000.yaml"):
                if doc["kind"] in ("MCPGroup", "MCPServer") or doc["metadata"]["name"] == "anonymous":
                    await api.create(doc)
            text, container = await until(lambda: _vmcp(api), what="the vMCP's ConfigMap and Deployment")
        member = "http://mcp-fetch-proxy.toolhive-system.svc.cluster.local:8080/mcp"
        assert member in text
        (tmp_path / "vmcp").mkdir()
        (tmp_path / "vmcp" / "manifests.yaml").write_text(text.replace(member, backend))
        args = _local(container, tmp_path / "vmcp")
        assert args[:2] == ["vmcp", "serve"]
        async with hivegate_process(args) as gateway:
            answer = await asyncio.to_thread(call_tool, gateway.url, "fetch_echo", {"text": "through the vMCP"})
    assert answer == "through the vMCP"


async def _vmcp(api: KubeClient) -> tuple[str, dict[str, Any]] | None:
    config = await api.get("ConfigMap", "toolhive-system", "anonymous-manifests")
    deployment = await api.get("Deployment", "toolhive-system", "anonymous")
    if config is None or deployment is None:
        return None
    return config["data"]["manifests.yaml"], deployment["spec"]["template"]["spec"]["containers"][0]


async def test_seed_001_external_idp_as_rendered_serves_a_token_holder(tmp_path: Path) -> None:
    """seeds/001's weather-server-external as the operator renders it, the gateway container's command line run.
    Stand-ins, as in test_seed_examples: the issuer's URLs and its two loopback keys; the image (SSE on the pod's
    loopback) is the fixture speaking SSE, at its own port."""
    name = "weather-server-external"
    async with local_issuer() as issuer, fixture_http_server("--sse") as backend:
        doc = next(d for d in seed_docs("seed_001.yaml") if d["metadata"]["name"] == name)
        doc["spec"]["oidcConfig"]["inline"] |= {"issuer": issuer.url, "jwksUrl": issuer.jwks_url,
                                                "insecureAllowHTTP": True, "jwksAllowPrivateIP": True}  # fmt: skip
        async with emulated_cluster() as url, running_operator(url) as api:
            await api.create(doc)
            manifests, container = await until(lambda: _pod(api, name, "toolhive-system"), what="its objects")
        docs = list(yaml.safe_load_all(manifests))
        assert docs[0]["spec"]["url"] == "http://127.0.0.1:8080/sse"  # the `mcp` container: SSE on spec.port
        docs[0]["spec"]["url"] = backend
        (tmp_path / "pod").mkdir()
        (tmp_path / "pod" / "manifests.yaml").write_text(yaml.safe_dump_all(docs))
        async with hivegate_process(_local(container, tmp_path / "pod")) as gateway:
            token = issuer.token("your-audience")
            answer = await asyncio.to_thread(call, gateway.url, token, "weather", {"city": "Lisbon"})
            assert text(answer) == "sunny in Lisbon"
            assert (await asyncio.to_thread(call, gateway.url, None, "weather")).status_code == 401


async def test_seed_002_rendered_vmcp_runs_its_authorization_server(tmp_path: Path) -> None:
    """seeds/002's VirtualMCPServer as the operator renders it (its MCPOIDCConfig, the members' auth configs, the
    Secrets mounted), the gateway container's command line run: the seed's two curl checks. Stand-ins: the public
    address (issuer, audience, resourceUrl, redirect) is the local one, http with the loopback keys; Okta is the
    local issuer; Redis is a local redis-server with the Secret's password."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with local_issuer() as okta, start_redis(password="redis-pass") as redis:
        docs = seed_docs("seed_002.yaml")
        by_name = {(d["kind"], d["metadata"]["name"]): d["spec"] for d in docs if "spec" in d}
        by_name["MCPOIDCConfig", "engineering-tools-as"]["inline"] |= {
            "issuer": base, "insecureAllowHTTP": True, "jwksAllowPrivateIP": True}  # fmt: skip
        vmcp = by_name["VirtualMCPServer", "engineering-tools"]
        vmcp["incomingAuth"]["oidcConfigRef"] |= {"audience": f"{base}/mcp", "resourceUrl": f"{base}/mcp"}
        vmcp["authServerConfig"] |= {"issuer": base, "allowedAudiences": [f"{base}/mcp"]}
        vmcp["authServerConfig"]["upstreamProviders"][0]["oidcConfig"] |= {
            "issuerUrl": okta.url, "redirectUri": f"{base}/oauth/callback"}  # fmt: skip
        vmcp["sessionStorage"]["address"] = f"127.0.0.1:{redis.port}"
        async with emulated_cluster() as url, running_operator(url) as api:
            await apply_docs(api, docs)
            manifests, container = await until(lambda: _pod(api, "engineering-tools", "toolhive-system"), what="vMCP")
        (tmp_path / "vmcp").mkdir()
        (tmp_path / "vmcp" / "manifests.yaml").write_text(manifests)
        secrets = tmp_path / "secrets"
        for name, key, value in (("okta-engineering-tools", "client-secret", "okta-secret-value"),
                                 ("redis-password", "password", "redis-pass"),
                                 ("exchange-client", "client-secret", "exchange-secret")):  # fmt: skip
            (secrets / name).mkdir(parents=True)
            (secrets / name / key).write_text(value)
        args = _local(container, tmp_path / "vmcp")
        args[args.index("--port") + 1] = str(port)  # the issuer's port
        async with (
            hivegate_process(args, env={"HIVEGATE_SECRETS_DIR": str(secrets)}),
            httpx.AsyncClient(timeout=10) as http,
        ):
            metadata = await http.get(f"{base}/.well-known/oauth-authorization-server")
            assert metadata.status_code == 200
            assert metadata.json()["issuer"] == base
            assert (await http.get(f"{base}/mcp")).status_code == 401

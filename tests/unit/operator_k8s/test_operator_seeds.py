"""The operator in process against an emulated API (kmock): the seeds' manifests applied, what it creates, status,
rolling on a config change, deletion blocked while referenced, a broken spec."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml

from hivegate.operator.kube import KubeClient
from hivegate.operator.objects import CHECKSUM_ANNOTATION, Settings
from support.backend import free_port
from support.cluster import apply_docs, emulated_cluster, running_operator, seed_docs, until

pytestmark = pytest.mark.anyio
NS = "toolhive-system"


async def _status(api: KubeClient, kind: str, name: str, key: str = "observedGeneration") -> dict[str, Any] | None:
    body = await api.get(kind, NS, name)
    status = (body or {}).get("status") or {}
    return status if key in status else None


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


async def test_seed_001_mcpservers_run_on_hivegate() -> None:
    port = free_port()
    settings = Settings(image="registry.example/hivegate:1.0")
    async with emulated_cluster() as k8s, running_operator(k8s, settings, health_port=port) as api:
        await apply_docs(api, seed_docs("seed_001.yaml"))
        names = ["weather-server-external", "weather-server-shared-oidc", "weather-server-k8s",
                 "weather-server-embedded", "weather-server-with-authz"]  # fmt: skip
        for name in names:
            status = await until(lambda n=name: _status(api, "MCPServer", n), what=f"{name} status")
            assert _condition(status, "Valid")["status"] == "True", status
            assert status["phase"] == "Pending"
            assert status["url"] == f"http://mcp-{name}-proxy.{NS}.svc.cluster.local:8080/mcp"
            for kind, obj in (("ServiceAccount", f"{name}-proxy-runner"), ("Role", f"{name}-proxy-runner"),
                              ("RoleBinding", f"{name}-proxy-runner"), ("ConfigMap", f"{name}-manifests"),
                              ("Service", f"mcp-{name}-proxy"), ("Deployment", name)):  # fmt: skip
                assert await api.get(kind, NS, obj) is not None, (kind, obj)

        deployment = await api.get("Deployment", NS, "weather-server-external")
        assert deployment is not None
        assert deployment["metadata"]["ownerReferences"][0]["kind"] == "MCPServer"
        pod = deployment["spec"]["template"]
        gateway, server = pod["spec"]["containers"]
        assert gateway["image"] == "registry.example/hivegate:1.0"
        # the server listens on 8080 (spec.port), so the gateway takes the next port and the Service maps 8080 to it
        assert gateway["args"] == [
            "run",
            "--foreground",
            "-f",
            "/etc/hivegate/manifests",
            "--host",
            "0.0.0.0",
            "--port",
            "8081",
            "--log-format",
            "json",
            "--log-output",
            "stdout",
            "--diagnostics-port",
            "9090",
        ]
        assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert gateway["livenessProbe"]["httpGet"]["path"] == "/health"
        assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
        assert gateway["securityContext"]["runAsNonRoot"] is True
        assert len(pod["metadata"]["annotations"][CHECKSUM_ANNOTATION]) == 64
        assert server["image"] == "ghcr.io/stackloklabs/weather-mcp/server"
        assert {"name": "MCP_PORT", "value": "8080"} in server["env"]
        assert server["resources"]["limits"] == {"cpu": "100m", "memory": "128Mi"}
        # the server listens beside its gateway: only the gateway's ports are open to the cluster
        policy = await api.get("NetworkPolicy", NS, "weather-server-external-gateway-only")
        assert policy is not None
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert policy["spec"]["ingress"] == [
            {"ports": [{"port": "http", "protocol": "TCP"}, {"port": "metrics", "protocol": "TCP"}]}
        ]
        service = await api.get("Service", NS, "mcp-weather-server-external-proxy")
        assert service is not None
        assert service["spec"]["ports"][0]["port"] == 8080
        assert service["spec"]["ports"][0]["targetPort"] == "http"

        manifests = await api.get("ConfigMap", NS, "weather-server-embedded-manifests")
        assert manifests is not None
        docs = list(yaml.safe_load_all(manifests["data"]["manifests.yaml"]))
        assert [d["kind"] for d in docs] == ["MCPServer", "MCPExternalAuthConfig"]
        assert docs[0]["spec"]["url"] == "http://127.0.0.1:8080/mcp"  # the `mcp` container of the same pod
        text = manifests["data"]["manifests.yaml"]
        assert "YOUR_UPSTREAM_CLIENT_SECRET" not in text  # Secrets are never copied
        assert "PRIVATE KEY" not in text
        embedded = await api.get("Deployment", NS, "weather-server-embedded")
        assert embedded is not None
        spec = embedded["spec"]["template"]["spec"]
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert {"/etc/hivegate/secrets/auth-server-hmac-secret", "/etc/hivegate/secrets/auth-server-signing-key",
                "/etc/hivegate/secrets/upstream-idp-secret"} <= mounts  # fmt: skip
        assert {"name": "HIVEGATE_SECRETS_DIR", "value": "/etc/hivegate/secrets"} in spec["containers"][0]["env"]

        shared = await api.get("ConfigMap", NS, "weather-server-shared-oidc-manifests")
        assert shared is not None
        assert "shared-client-id" in shared["data"]["manifests.yaml"]  # the referenced ConfigMap travels along

        config = await until(lambda: _status(api, "MCPExternalAuthConfig", "embedded-auth-server", "configHash"))
        assert _condition(config, "Valid")["status"] == "True"
        assert len(config["configHash"]) == 64
        assert config["referencedBy"] == ["MCPServer/weather-server-embedded"]

        # the Deployment becomes ready → the MCPServer is Ready
        await api.patch("Deployment", NS, "weather-server-k8s", {"status": {"readyReplicas": 1, "replicas": 1}})
        ready = await until(lambda: _ready(api, "weather-server-k8s"), what="Ready phase")
        assert ready["readyReplicas"] == 1
        assert _condition(ready, "Ready")["status"] == "True"

        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'hivegate_operator_reconciles_total{kind="MCPServer",result="ok"}' in metrics
        assert "hivegate_operator_reconcile_duration_seconds_bucket" in metrics


async def _ready(api: KubeClient, name: str) -> dict[str, Any] | None:
    status = await _status(api, "MCPServer", name)
    return status if status and status.get("phase") == "Ready" else None


async def _checksum(api: KubeClient, name: str) -> str | None:
    deployment = await api.get("Deployment", NS, name)
    return deployment["spec"]["template"]["metadata"]["annotations"][CHECKSUM_ANNOTATION] if deployment else None


async def test_config_change_rolls_and_deletion_waits_for_referrers() -> None:
    async with emulated_cluster() as k8s, running_operator(k8s) as api:
        await apply_docs(api, seed_docs("seed_001.yaml"))
        before = await until(lambda: _checksum(api, "weather-server-embedded"), what="deployment")
        await until(lambda: _status(api, "MCPExternalAuthConfig", "embedded-auth-server", "configHash"))
        lifespans = {"accessTokenLifespan": "30m", "refreshTokenLifespan": "168h", "authCodeLifespan": "10m"}
        await api.patch("MCPExternalAuthConfig", NS, "embedded-auth-server",
                        {"spec": {"embeddedAuthServer": {"tokenLifespans": lifespans}}})  # fmt: skip

        async def rolled() -> str | None:
            now = await _checksum(api, "weather-server-embedded")
            return now if now != before else None

        await until(rolled, what="a new checksum on the pod template")
        untouched = await _checksum(api, "weather-server-external")  # references nothing that changed
        assert untouched == await _checksum(api, "weather-server-external")

        shared = await _checksum(api, "weather-server-shared-oidc")  # a referenced ConfigMap changes: it rolls too
        oidc = '{"issuer": "https://auth.example.com", "audience": "https://mcp.example.com", "clientId": "rotated"}'
        await api.patch("ConfigMap", NS, "shared-oidc-config", {"data": {"oidc.json": oidc}})

        async def rolled_too() -> str | None:
            now = await _checksum(api, "weather-server-shared-oidc")
            return now if now != shared else None

        await until(rolled_too, what="the checksum of the server reading the ConfigMap")
        assert untouched == await _checksum(api, "weather-server-external")

        await api.delete("MCPExternalAuthConfig", NS, "embedded-auth-server")

        async def blocked() -> dict[str, Any] | None:
            body = await api.get("MCPExternalAuthConfig", NS, "embedded-auth-server")
            conditions = ((body or {}).get("status") or {}).get("conditions") or []
            return next((c for c in conditions if c["type"] == "DeletionBlocked"), None)

        condition = await until(blocked, what="DeletionBlocked")
        assert condition["status"] == "True"
        assert "MCPServer/weather-server-embedded" in condition["message"]
        assert await api.get("MCPExternalAuthConfig", NS, "embedded-auth-server") is not None
        events = [e for e in await api.list("Event", NS) if e["reason"] == "DeletionBlocked"]
        assert [e["involvedObject"]["name"] for e in events][:1] == ["embedded-auth-server"]

        await api.delete("MCPServer", NS, "weather-server-embedded")

        async def gone() -> bool:
            return await api.get("MCPExternalAuthConfig", NS, "embedded-auth-server") is None

        await until(gone, what="the config deleted once nothing references it")


BROKEN = """
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata: {name: broken, namespace: toolhive-system, generation: 3, uid: u-broken}
spec:
  url: http://backend.example:8080/mcp
  oidcConfigRef: {name: nowhere, audience: x}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata: {name: bad-audience, namespace: toolhive-system, generation: 1, uid: u-bad}
spec:
  url: http://backend.example:8080/mcp
  oidcConfig: {type: inline, inline: {issuer: 'https://issuer.example'}}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata: {name: fine, namespace: toolhive-system, generation: 1, uid: u-fine}
spec:
  url: http://backend.example:8080/mcp
"""


async def test_broken_spec_gives_a_condition_and_an_event() -> None:
    async with emulated_cluster() as k8s, running_operator(k8s) as api:
        await apply_docs(api, list(yaml.safe_load_all(BROKEN)))
        status = await until(lambda: _status(api, "MCPServer", "broken"), what="status of the broken one")
        assert status["phase"] == "Failed"
        assert status["observedGeneration"] == 3
        valid = _condition(status, "Valid")
        assert valid["status"] == "False"
        assert valid["message"] == "spec.oidcConfigRef.name: MCPOIDCConfig 'nowhere' not found in namespace " + NS
        other = await until(lambda: _status(api, "MCPServer", "bad-audience"))
        assert "spec.oidcConfig.inline.audience: required" in _condition(other, "Valid")["message"]
        events = [e for e in await api.list("Event", NS) if e["involvedObject"]["name"] == "broken"]
        assert [e["type"] for e in events] == ["Warning"]
        assert await api.get("Deployment", NS, "broken") is None  # nothing that would crash-loop
        fine = await until(lambda: _status(api, "MCPServer", "fine"))
        assert fine["phase"] == "Pending"

        # fixing the reference: the operator picks it up without a restart
        oidc = {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPOIDCConfig",
                "metadata": {"name": "nowhere", "namespace": NS},
                "spec": {"type": "inline", "inline": {"issuer": "https://issuer.example"}}}  # fmt: skip
        await api.create(oidc)
        await api.patch("MCPServer", NS, "broken", {"metadata": {"generation": 4}})

        async def fixed() -> dict[str, Any] | None:
            s = await _status(api, "MCPServer", "broken")
            return s if s and s["phase"] == "Pending" else None

        assert _condition(await until(fixed, what="the fixed server"), "Valid")["status"] == "True"
        assert await api.get("Deployment", NS, "broken") is not None

"""A resource's pod settings in the objects the operator makes (against the emulated API, without kopf):
`podTemplateSpec`, `resourceOverrides`, `serviceAccount`, `resources`, `replicas` and `sessionStorage`, and the
conditions that say what was not applied as asked."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hivegate.operator.kube import KubeClient
from hivegate.operator.reconcile import Reconciler
from support.cluster import client_for, emulated_cluster

pytestmark = pytest.mark.anyio
NS = "tools"
API = "toolhive.stacklok.dev/v1beta1"


def _resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "spec": spec,
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1}}  # fmt: skip


async def _reconciled(api: KubeClient, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The resource applied and reconciled once; its status."""
    await api.create(_resource(kind, name, spec))
    await Reconciler(api).workload(kind, NS, name)
    return dict((await api.get(kind, NS, name) or {})["status"])


def _account(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": NS}}


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


async def _get(api: KubeClient, kind: str, name: str) -> dict[str, Any]:
    found = await api.get(kind, NS, name)
    assert found is not None, (kind, name)
    return found


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


_TEMPLATE = {
    "metadata": {"labels": {"team": "search", "app.kubernetes.io/instance": "other"}},
    "spec": {
        "nodeSelector": {"pool": "mcp"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "mcp", "effect": "NoSchedule"}],
        "securityContext": {"fsGroup": 2000},
        "volumes": [{"name": "cache", "emptyDir": {}}],
        "containers": [
            {"name": "mcp", "resources": {"limits": {"memory": "1Gi"}},
             "securityContext": {"allowPrivilegeEscalation": True, "runAsUser": 1000},
             "env": [{"name": "CACHE_DIR", "value": "/cache"}, {"name": "MCP_PORT", "value": "1"}],
             "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]},
            {"name": "gateway", "resources": {"requests": {"cpu": "200m"}}},
            {"name": "log-shipper", "image": "registry.example/shipper:1"},
        ],
    },
}  # fmt: skip


async def test_an_http_image_takes_its_template_overrides_and_service_account() -> None:
    async with emulated_cluster() as url:
        _, api = client_for(url)
        await api.create(_account("search"))
        spec = {
            "image": "registry.example/search:1", "transport": "streamable-http", "mcpPort": 9000, "replicas": 3,
            "serviceAccount": "search", "resources": {"limits": {"cpu": "1"}}, "podTemplateSpec": _TEMPLATE,
            "resourceOverrides": {
                "proxyDeployment": {"labels": {"cost-center": "42"}, "annotations": {"owner": "search"},
                                    "podTemplateMetadataOverrides": {"annotations": {"scrape": "yes"}},
                                    "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]},
                "proxyService": {"annotations": {"lb": "internal"}, "labels": {"exposed": "no"}},
            },
        }  # fmt: skip
        status = await _reconciled(api, "MCPServer", "search", spec)
        assert _condition(status, "Valid")["status"] == "True", status
        deployment = await _get(api, "Deployment", "search")
        assert deployment["spec"]["replicas"] == 3
        assert deployment["metadata"]["labels"]["cost-center"] == "42"
        assert deployment["metadata"]["annotations"]["owner"] == "search"
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["labels"]["team"] == "search"
        assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "search"  # the selector's: kept
        assert pod["metadata"]["annotations"]["scrape"] == "yes"
        assert pod["spec"]["serviceAccountName"] == "search"
        assert pod["spec"]["nodeSelector"] == {"pool": "mcp"}
        assert pod["spec"]["tolerations"][0]["key"] == "dedicated"
        assert pod["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}, "fsGroup": 2000}
        assert [c["name"] for c in pod["spec"]["containers"]] == ["gateway", "mcp", "log-shipper"]
        server = _container(pod, "mcp")
        assert server["resources"] == {"limits": {"cpu": "1", "memory": "1Gi"}}
        assert server["securityContext"]["allowPrivilegeEscalation"] is True
        assert server["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert {"name": "MCP_PORT", "value": "9000"} in server["env"]  # the resource's own entry wins
        assert {"name": "CACHE_DIR", "value": "/cache"} in server["env"]
        assert {"name": "cache", "mountPath": "/cache"} in server["volumeMounts"]
        gateway = _container(pod, "gateway")
        assert gateway["resources"]["requests"]["cpu"] == "200m"
        assert gateway["securityContext"]["runAsNonRoot"] is True
        assert gateway["securityContext"]["allowPrivilegeEscalation"] is False
        assert gateway["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in gateway["env"]
        service = await _get(api, "Service", "mcp-search-proxy")
        assert service["metadata"]["annotations"]["lb"] == "internal"
        assert service["metadata"]["labels"]["exposed"] == "no"

        template = _condition(status, "PodTemplateValid")
        assert template["status"] == "True"
        assert "containers[0].securityContext.allowPrivilegeEscalation: the template's True replaces" in template[
            "message"]  # fmt: skip
        assert "metadata.labels.app.kubernetes.io/instance: the operator's own; kept" in template["message"]
        sessions = _condition(status, "SessionStorageWarning")
        assert (sessions["status"], sessions["reason"]) == ("True", "SessionsStayOnTheirPod")
        manifests = (await _get(api, "ConfigMap", "search-manifests"))["data"]["manifests.yaml"]
        assert "podTemplateSpec" not in manifests  # applied by the operator, not the gateway's business
        await api.close()


async def test_a_stdio_server_runs_one_gateway_and_its_own_service_account() -> None:
    async with emulated_cluster() as url:
        _, api = client_for(url)
        await api.create(_account("kube"))
        spec = {"image": "registry.example/kube-mcp:1", "replicas": 3, "serviceAccount": "kube", "backendReplicas": 2,
                "podTemplateSpec": {"spec": {"nodeSelector": {"pool": "mcp"}, "hostNetwork": True}}}  # fmt: skip
        status = await _reconciled(api, "MCPServer", "kube", spec)
        assert _condition(status, "Valid")["status"] == "True", status
        assert (await _get(api, "Deployment", "kube"))["spec"]["replicas"] == 1
        gateway_pod = (await _get(api, "Deployment", "kube"))["spec"]["template"]["spec"]
        assert gateway_pod["serviceAccountName"] == "kube-proxy-runner"  # it attaches: pods/attach is its Role's
        server_pod = (await _get(api, "StatefulSet", "kube"))["spec"]["template"]["spec"]
        assert server_pod["serviceAccountName"] == "kube"
        assert "automountServiceAccountToken" not in server_pod
        assert server_pod["nodeSelector"] == {"pool": "mcp"}
        assert server_pod["hostNetwork"] is True  # the server's own pod: the gateway is not in it
        capped = _condition(status, "StdioReplicaCapped")
        assert (capped["status"], capped["reason"]) == ("True", "StdioTransportCapAt1")
        assert "spec.replicas is 3" in capped["message"]
        ignored = _condition(status, "FieldsNotApplied")
        assert ignored["status"] == "True"
        assert ignored["message"].startswith("spec.backendReplicas: not applied: a stdio server runs in one pod")
        events = await api.list("Event", NS)
        assert {"StdioTransportCapAt1", "FieldsNotApplied"} <= {e["reason"] for e in events}
        await api.close()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"podTemplateSpec": {"spec": {"containers": [{"name": "gateway", "command": ["sh"]}]}}},
         "spec.podTemplateSpec.spec.containers[0].command: the gateway container's command is the operator's"),
        ({"podTemplateSpec": {"spec": {"hostPID": True}}},
         "spec.podTemplateSpec.spec.hostPID: the gateway's pod keeps its own namespaces"),
        ({"podTemplateSpec": {"spec": {"serviceAccountName": "x"}}},
         "spec.podTemplateSpec.spec.serviceAccountName: set spec.serviceAccount instead"),
        ({"podTemplateSpec": {"spec": {"containers": [{"name": "mcp", "image": "other"}]}}},
         "spec.podTemplateSpec.spec.containers[0].image: set by the resource"),
        ({"podTemplateSpec": {"spec": {"containers": [{"name": "mcp", "securityContext": {"privileged": True}}]}}},
         "spec.podTemplateSpec.spec.containers[0].securityContext.privileged: the server shares the gateway's pod"),
        ({"podTemplateSpec": {"spec": {"containers": [{"name": "toolhive", "resources": {}}]}}},
         "spec.podTemplateSpec.spec.containers[0].image: required (a container of the template's own; the "
         "gateway's is gateway, the server's mcp)"),
        ({"podTemplateSpec": {"spec": {"volumes": [{"name": "manifests", "emptyDir": {}}]}}},
         "spec.podTemplateSpec.spec.volumes[0].name: manifests is a volume of the operator's"),
        ({"resourceOverrides": {"proxyDeployment": {"env": [{"name": "HIVEGATE_SECRETS_DIR", "value": "/x"}]}}},
         "spec.resourceOverrides.proxyDeployment.env[0]: HIVEGATE_SECRETS_DIR is set by the operator"),
        ({"serviceAccount": "missing"}, "spec.serviceAccount: ServiceAccount 'missing' not found in namespace tools"),
        ({"env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
         "spec.env[0].valueFrom: not supported; use spec.secrets"),
    ],
)  # fmt: skip
async def test_what_would_weaken_the_gateway_is_refused_naming_the_field(spec: dict[str, Any], message: str) -> None:
    async with emulated_cluster() as url:
        _, api = client_for(url)
        base = {"image": "registry.example/search:1", "transport": "streamable-http", "mcpPort": 9000}
        status = await _reconciled(api, "MCPServer", "search", {**base, **spec})
        assert status["phase"] == "Failed"
        assert _condition(status, "Valid")["message"].startswith(message), status["message"]
        if message.startswith("spec.podTemplateSpec"):
            assert _condition(status, "PodTemplateValid")["reason"] == "InvalidPodTemplateSpec"
        assert await api.get("Deployment", NS, "search") is None
        await api.close()


async def test_a_remote_sse_proxy_shares_sessions_through_redis() -> None:
    async with emulated_cluster() as url:
        _, api = client_for(url)
        await api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis", "namespace": NS},
                          "stringData": {"password": "s3cret-redis-password"}})  # fmt: skip
        spec = {
            "remoteUrl": "https://mcp.example.com/sse", "transport": "sse", "replicas": 2, "sessionAffinity": "None",
            "resources": {"limits": {"memory": "512Mi"}},
            "sessionStorage": {"provider": "redis", "address": "redis.tools:6379",
                               "passwordRef": {"name": "redis", "key": "password"}},
            "podTemplateSpec": {"spec": {"containers": [{"name": "toolhive", "resources": {"limits": {"cpu": "2"}}}]}},
        }  # fmt: skip
        status = await _reconciled(api, "MCPRemoteProxy", "docs", spec)
        assert _condition(status, "Valid")["status"] == "True", status
        sessions = _condition(status, "SessionStorageWarning")
        assert (sessions["status"], sessions["reason"]) == ("False", "SessionStorageConfigured")
        deployment = await _get(api, "Deployment", "docs")
        gateway = _container(deployment["spec"]["template"], "gateway")
        assert gateway["resources"] == {"limits": {"memory": "512Mi", "cpu": "2"}}  # ToolHive's proxy container
        assert {"name": "secret-0", "mountPath": "/etc/hivegate/secrets/redis", "readOnly": True} in gateway[
            "volumeMounts"]  # fmt: skip
        service = await _get(api, "Service", "mcp-docs-remote-proxy")
        assert service["spec"]["sessionAffinity"] == "None"
        text = (await _get(api, "ConfigMap", "docs-manifests"))["data"]["manifests.yaml"]
        stored = next(d for d in yaml.safe_load_all(text) if d["kind"] == "MCPRemoteProxy")
        assert stored["spec"]["sessionStorage"]["passwordRef"] == {"name": "redis", "key": "password"}
        assert "s3cret-redis-password" not in text
        await api.close()


async def test_replicas_not_given_are_left_to_the_cluster() -> None:
    async with emulated_cluster() as url:
        _, api = client_for(url)
        status = await _reconciled(api, "MCPServer", "plain", {"url": "http://plain.example:8080/mcp"})
        assert _condition(status, "Valid")["status"] == "True", status
        assert "replicas" not in (await _get(api, "Deployment", "plain"))["spec"]  # an HPA may scale it
        assert _condition(status, "FieldsNotApplied")["status"] == "False"
        assert "StdioReplicaCapped" in {c["type"] for c in status["conditions"]}
        await api.close()


async def test_what_the_gateway_reads_and_does_not_apply_is_named_in_a_condition() -> None:
    async with emulated_cluster() as url:
        _, api = client_for(url)
        spec = {"remoteUrl": "http://10.0.0.5:8080/mcp", "trustProxyHeaders": True}
        status = await _reconciled(api, "MCPRemoteProxy", "internal", spec)
        assert _condition(status, "Valid")["status"] == "True", status
        ignored = _condition(status, "FieldsNotApplied")
        assert ignored["status"] == "True"
        assert ignored["message"] == (
            "spec.remoteUrl: a private or loopback address: ToolHive refuses it without allowPrivateEndpoint: true; "
            "hivegate does not restrict it; spec.trustProxyHeaders: not applied: hivegate never builds its public "
            "URL from X-Forwarded-* headers (set the resource URL in the OIDC config)"
        )
        unsupported = await _reconciled(api, "MCPRemoteProxy", "limited", {**spec, "rateLimiting": {"perUser": {}}})
        assert (unsupported["phase"], _condition(unsupported, "Valid")["message"]) == (
            "Failed", "MCPRemoteProxy/limited: spec.rateLimiting: not supported yet"
        )  # fmt: skip
        await api.close()


async def test_a_virtual_server_takes_its_service_type_template_and_service_account() -> None:
    async with emulated_cluster() as url:
        _, api = client_for(url)
        await api.create(_account("aggregator"))
        await api.create({"apiVersion": API, "kind": "MCPGroup", "metadata": {"name": "tools", "namespace": NS}})
        await api.create(
            _resource("MCPServer", "fetch", {"groupRef": {"name": "tools"}, "url": "http://f.example/mcp"})
        )
        template = {"spec": {"containers": [{"name": "vmcp", "resources": {"limits": {"memory": "1Gi"}}}],
                             "priorityClassName": "high"}}  # fmt: skip
        spec = {"groupRef": {"name": "tools"}, "incomingAuth": {"type": "anonymous"}, "serviceType": "LoadBalancer",
                "serviceAccount": "aggregator", "replicas": 2, "podTemplateSpec": template}  # fmt: skip
        status = await _reconciled(api, "VirtualMCPServer", "all", spec)
        assert _condition(status, "Valid")["status"] == "True", status
        pod = (await _get(api, "Deployment", "all"))["spec"]["template"]
        assert pod["spec"]["serviceAccountName"] == "aggregator"
        assert pod["spec"]["priorityClassName"] == "high"
        assert _container(pod, "gateway")["resources"]["limits"]["memory"] == "1Gi"
        assert (await _get(api, "Service", "vmcp-all"))["spec"]["type"] == "LoadBalancer"
        sessions = _condition(status, "SessionStorageWarning")
        assert (sessions["status"], sessions["reason"]) == ("True", "SessionStorageMissingForReplicas")
        await api.close()


async def test_what_the_template_and_overrides_no_longer_say_is_removed() -> None:
    async with emulated_cluster() as url:
        _, api = client_for(url)
        template = {"spec": {"nodeSelector": {"pool": "mcp"}, "securityContext": {"fsGroup": 2000}}}
        spec = {"image": "registry.example/kube-mcp:1", "replicas": 1, "podTemplateSpec": template,
                "resourceOverrides": {"proxyService": {"annotations": {"lb": "internal"}}}}  # fmt: skip
        await _reconciled(api, "MCPServer", "kube", spec)
        pod = (await _get(api, "StatefulSet", "kube"))["spec"]["template"]["spec"]
        assert (pod["nodeSelector"], pod["securityContext"]) == ({"pool": "mcp"}, {"fsGroup": 2000})
        later = {"image": "registry.example/kube-mcp:1", "podTemplateSpec": {"spec": {"priorityClassName": "high"}}}
        await api.patch("MCPServer", NS, "kube", {"spec": {"replicas": None, "podTemplateSpec": None,
                                                           "resourceOverrides": None}})  # fmt: skip
        await api.patch("MCPServer", NS, "kube", {"spec": later})
        await Reconciler(api).workload("MCPServer", NS, "kube")
        pod = (await _get(api, "StatefulSet", "kube"))["spec"]["template"]["spec"]
        assert pod["priorityClassName"] == "high"
        assert "nodeSelector" not in pod
        assert "securityContext" not in pod
        service = await _get(api, "Service", "mcp-kube-proxy")
        assert "lb" not in service["metadata"].get("annotations", {})
        assert (await _get(api, "Deployment", "kube"))["spec"]["replicas"] == 1  # kept: an autoscaler's now
        applied = [e for e in await api.list("Event", NS) if e["reason"] == "Applied"]
        await Reconciler(api).workload("MCPServer", NS, "kube")
        assert [e for e in await api.list("Event", NS) if e["reason"] == "Applied"] == applied  # nothing to write
        await api.close()

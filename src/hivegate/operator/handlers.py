"""When to reconcile: kopf's watches, registered on a registry of their own (so tests run several operators).

The operator is level-triggered: every watch event of a resource renders it again, and a write happens only when
something differs (`KubeClient.apply`, `status.changed`), so events caused by its own writes settle at once. It uses
only kopf's event handlers, which keep no state on the resources (no annotations, no `status.kopf`: ToolHive's CRDs
have no room for it). `Reconciler.resync` (run by `runner` every `--resync` seconds) renders every workload and
config again, which heals what an event could not (an API error, a Secret created after the resource needing it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hivegate.operator.kube import KINDS
from hivegate.operator.objects import MANAGED_BY
from hivegate.operator.reconcile import CONFIG_FINALIZERS, WORKLOAD_KINDS, Reconciler
from hivegate.operator.render import group_of

if TYPE_CHECKING:
    import kopf

__all__ = ["build_registry"]


def _resource(kind: str) -> tuple[str, str, str]:
    api_version, plural, _ = KINDS[kind]
    group, _, version = api_version.rpartition("/")
    return group, version, plural


def build_registry(reconciler: Reconciler, connection: Any) -> kopf.OperatorRegistry:
    """The handlers of every kind; `connection` is the kopf `ConnectionInfo` to log in with (or a function that
    reads it anew: kopf logs in again when the API server refuses its credentials)."""
    import kopf

    registry = kopf.OperatorRegistry()
    r = reconciler

    def login(**_: Any) -> Any:
        return connection() if callable(connection) else connection

    kopf.on.login(registry=registry)(login)

    def _names(body: Any) -> tuple[str, str]:
        return str(body["metadata"].get("namespace")), str(body["metadata"]["name"])

    for kind in WORKLOAD_KINDS:

        async def on_workload(body: Any, type: str | None, _kind: str = kind, **_: Any) -> None:
            namespace, name = _names(body)
            if type == "DELETED":
                r.forget(_kind, body)
            elif not r.is_new(_kind, body):
                return  # its status changed (the operator's own write, or readiness)
            if body["metadata"].get("deletionTimestamp"):
                await r.release_toolhive(_kind, body)
            if type != "DELETED":
                await r.workload(_kind, namespace, name)
                await r.users_changed(body)
            if _kind != "VirtualMCPServer":
                await r.member_changed(body)
            if type == "DELETED" or body["metadata"].get("deletionTimestamp"):
                await r.release_configs(namespace)

        kopf.on.event(*_resource(kind), registry=registry, id=f"{kind}-event")(on_workload)

    for kind in CONFIG_FINALIZERS:

        async def on_config(body: Any, type: str | None, _kind: str = kind, **_: Any) -> None:
            if type == "DELETED":
                r.forget(_kind, body)
            elif r.is_new(_kind, body):
                await r.config_changed(_kind, body)

        kopf.on.event(*_resource(kind), registry=registry, id=f"{kind}-event")(on_config)

    async def on_group(body: Any, type: str | None, **_: Any) -> None:
        namespace, name = _names(body)
        if type == "DELETED":
            r.forget("MCPGroup", body)
        elif not r.is_new("MCPGroup", body):
            return
        if body["metadata"].get("deletionTimestamp"):
            await r.release_toolhive("MCPGroup", body)
        if type != "DELETED":
            await r.group(namespace, name)
        for vmcp in await r.api.list("VirtualMCPServer", namespace):  # a vMCP waiting for its group, or losing it
            if group_of(vmcp) == name:
                await r.workload("VirtualMCPServer", namespace, str(vmcp["metadata"]["name"]))

    async def on_deployment(body: Any, type: str | None, **_: Any) -> None:
        if type != "DELETED":
            await r.readiness(body)

    async def on_config_map(body: Any, **_: Any) -> None:
        namespace, name = _names(body)
        for kind, workload in await r.referrers("ConfigMap", namespace, name):
            await r.workload(kind, namespace, workload)

    kopf.on.event(*_resource("MCPGroup"), registry=registry)(on_group)
    managed = {"app.kubernetes.io/managed-by": MANAGED_BY}
    kopf.on.event("apps", "v1", "deployments", labels=managed, registry=registry)(on_deployment)
    unmanaged = {"app.kubernetes.io/managed-by": kopf.ABSENT}  # the user's ConfigMaps, not the rendered ones
    kopf.on.event("", "v1", "configmaps", labels=unmanaged, registry=registry)(on_config_map)
    return registry

"""Reconciling each kind to the state its resource describes; kopf only decides when (`handlers`).

- `workload(kind, ns, name)`: `MCPServer`, `MCPRemoteProxy`, `VirtualMCPServer` → render, apply the objects, status.
  A spec that cannot run sets `phase: Failed`, conditions `Valid`/`Ready` False with the message naming the field,
  and a Warning Event; nothing is raised (no retry loop on a spec only its author can fix). A group member whose
  upstream credential a vMCP applies has `ExternalAuthConfigValidated` saying so (`upstream`), with an Event.
- `readiness(deployment)`: a gateway Deployment changed → its owner's `readyReplicas`, `phase` and `Ready`.
- `config(kind, ns, name)`: `MCPExternalAuthConfig`, `MCPOIDCConfig` → `Valid`, `configHash`; then every workload
  that references it is rendered again (its checksum changes: the pods roll).
- `blocked_by(kind, ns, name)`: the workloads that still reference a config being deleted (the delete handler
  keeps the finalizer while there are any, with condition `DeletionBlocked` naming them).
- `group(ns, name)`: `MCPGroup` → `status.servers`, `serverCount`, `remoteProxies`, `phase`; when the membership
  changed, the `VirtualMCPServer`s of the group are rendered again.
API errors propagate (kopf retries them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hivegate.errors import ConfigError
from hivegate.operator.configs import check_config, config_secrets
from hivegate.operator.fields import field_conditions
from hivegate.operator.health import OperatorMetrics
from hivegate.operator.kube import ApiError, KubeClient
from hivegate.operator.manifests import spec_hash
from hivegate.operator.netpol import gateway_policy_name
from hivegate.operator.objects import Settings
from hivegate.operator.refs import config_refs
from hivegate.operator.render import check_secrets, group_of, render
from hivegate.operator.status import Clock, changed, condition, utc_now
from hivegate.operator.upstream import policy_name

__all__ = ["CONFIG_FINALIZERS", "TOOLHIVE_FINALIZERS", "WORKLOAD_KINDS", "Reconciler"]

logger = logging.getLogger("hivegate.operator")
WORKLOAD_KINDS = ("MCPServer", "MCPRemoteProxy", "VirtualMCPServer")
# ToolHive's own names: a config that ToolHive's operator marked stays protected, and the marks are released here
CONFIG_FINALIZERS = {
    "MCPExternalAuthConfig": "mcpexternalauthconfig.toolhive.stacklok.dev/finalizer",
    "MCPOIDCConfig": "mcpoidcconfig.toolhive.stacklok.dev/finalizer",
}
# what ToolHive's operator put on the resources it managed, which no one would remove once it is gone
TOOLHIVE_FINALIZERS = (
    "mcpserver.toolhive.stacklok.dev/finalizer",
    "toolhive.stacklok.dev/mcpgroup-finalizer",
    "mcpremoteproxy.toolhive.stacklok.dev/finalizer",
    "virtualmcpserver.toolhive.stacklok.dev/finalizer",
)


_WARNINGS = ("StdioReplicaCapped", "SessionStorageWarning", "FieldsNotApplied")  # each said in an Event as it appears
_DEFERRED = "ExternalAuthConfigValidated"  # a group member's upstream credential, applied by a vMCP (`upstream`)


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = body.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


@dataclass
class Reconciler:
    api: KubeClient
    settings: Settings = field(default_factory=Settings)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    clock: Clock = utc_now
    _seen: dict[tuple[str, str, str], str] = field(default_factory=dict, repr=False)
    _locks: dict[tuple[str, str, str], asyncio.Lock] = field(default_factory=dict, repr=False)

    def is_new(self, kind: str, body: Mapping[str, Any]) -> bool:
        """Whether `body` says something its last event did not (spec, labels, annotations, deletion): the events
        of the operator's own status writes change nothing and are let go."""
        meta = _meta(body)
        key = (kind, str(meta.get("namespace")), str(meta.get("name")))
        said = [body.get("spec"), meta.get("labels"), meta.get("annotations"), meta.get("deletionTimestamp"),
                meta.get("finalizers"), meta.get("uid")]  # fmt: skip
        digest = json.dumps(said, sort_keys=True, default=str)
        if self._seen.get(key) == digest:
            return False
        self._seen[key] = digest
        return True

    def forget(self, kind: str, body: Mapping[str, Any]) -> None:
        meta = _meta(body)
        self._seen.pop((kind, str(meta.get("namespace")), str(meta.get("name"))), None)

    async def event(self, body: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        """An Event on `body` (`kind`: Normal or Warning); messages name fields, never a value."""
        meta = _meta(body)
        now = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        await self.api.create({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta.get('name')}.{secrets.token_hex(8)}", "namespace": meta.get("namespace")},
            "involvedObject": {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
                               "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid")},
            "reason": reason,
            "message": message[:1000],
            "type": kind,
            "source": {"component": "hivegate-operator"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        })  # fmt: skip

    async def _set_status(self, body: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
        if not changed(body.get("status"), desired):
            return False
        meta = _meta(body)
        await self.api.patch(str(body.get("kind")), meta.get("namespace"), str(meta.get("name")), {"status": desired},
                             status=True)  # fmt: skip
        return True

    # workloads

    async def workload(self, kind: str, namespace: str, name: str) -> None:
        async with self._locks.setdefault((kind, namespace, name), asyncio.Lock()):  # one render at a time
            body = await self.api.get(kind, namespace, name)
            if body is None or _meta(body).get("deletionTimestamp"):
                self._locks.pop((kind, namespace, name), None)
                return
            async with self.metrics.timed(kind) as result:
                await self._workload({**body, "kind": kind}, result)

    async def _workload(self, body: dict[str, Any], result: list[str]) -> None:
        generation = _meta(body).get("generation")
        status = body.get("status") or {}
        conditions = status.get("conditions")
        try:
            rendered = await render(self.api, body, self.settings)
            wrote = [obj["kind"] for obj in rendered.objects if await self._applied(obj)]
        except ConfigError as exc:
            result.append("invalid")
            message = str(exc)
            said = [
                condition(conditions, "Valid", False, "InvalidSpec", message, generation, self.clock),
                condition(conditions, "Ready", False, "InvalidSpec", message, generation, self.clock),
            ]
            if message.startswith("spec.podTemplateSpec"):  # as ToolHive says it: the pods wait for a fix
                said.append(condition(conditions, "PodTemplateValid", False, "InvalidPodTemplateSpec", message,
                                      generation, self.clock))  # fmt: skip
            failed = {"phase": "Failed", "message": message, "observedGeneration": generation, "conditions": said}
            if await self._set_status(body, failed):
                await self.event(body, "Warning", "InvalidSpec", message)
            return
        shape = rendered.shape
        if shape.kind != "VirtualMCPServer":  # a policy no longer rendered (no `mcp` port, no HTTP image) goes
            kept = {o["metadata"]["name"] for o in rendered.objects if o["kind"] == "NetworkPolicy"}
            for name in {policy_name(shape), gateway_policy_name(shape)} - kept:
                await self._drop_policy(body, name)
        deployment = await self.api.get("Deployment", shape.namespace, shape.name) or {}
        ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
        conds = [condition(conditions, "Valid", True, "ValidSpec", "the spec renders and loads", generation,
                           self.clock)]  # fmt: skip
        group = group_of(body)
        if group is not None and shape.kind != "VirtualMCPServer":
            found = await self.api.get("MCPGroup", shape.namespace, group) is not None
            reason = "GroupRefIsValid" if found else "GroupRefNotFound"
            text = f"MCPGroup {group!r} " + ("found" if found else f"not found in namespace {shape.namespace}")
            conds.append(condition(conditions, "GroupRefValidated", found, reason, text, generation, self.clock))
        elif group is not None:
            text = f"{len(rendered.members)} backends in MCPGroup {group!r}"
            conds.append(condition(conditions, "GroupRefValidated", True, "GroupRefValid", f"MCPGroup {group!r} found",
                                   generation, self.clock))  # fmt: skip
            conds.append(condition(conditions, "BackendsDiscovered", True, "BackendsDiscoveredSuccessfully", text,
                                   generation, self.clock))  # fmt: skip
        conds += field_conditions(body, shape, rendered.notes, rendered.template_notes, conditions, generation,
                                  self.clock)  # fmt: skip
        deferred = rendered.deferred
        if deferred is not None:  # said once in an Event as it appears or changes
            reason = "AppliedByVirtualMCPServer" if deferred.url is not None else "NotDeliverable"
            conds.append(condition(conditions, _DEFERRED, True, reason, deferred.message(shape), generation,
                                   self.clock))  # fmt: skip
        replicas = (deployment.get("spec") or {}).get("replicas")
        replicas = (
            shape.replicas
            if replicas is None or (body.get("spec") or {}).get("replicas") is not None
            else int(replicas)
        )
        desired: dict[str, Any] = {
            **_readiness(replicas, ready, conditions, generation, self.clock),
            "url": shape.url,
            "observedGeneration": generation,
            **rendered.hashes,
        }
        desired["conditions"] = [*conds, desired.pop("ready")]
        if shape.kind == "VirtualMCPServer":
            desired["backendCount"] = len(rendered.members)
            desired["discoveredBackends"] = [{"name": m} for m in rendered.members]
        await self._set_status(body, desired)
        for cond in conds:
            was: Mapping[str, Any] = next((c for c in conditions or () if c.get("type") == cond["type"]), {})
            anew = (was.get("reason"), was.get("message")) != (cond["reason"], cond["message"])
            if cond["type"] in _WARNINGS and cond["status"] == "True" and was.get("status") != "True":
                await self.event(body, "Warning", cond["reason"], cond["message"])
            elif cond["type"] == _DEFERRED and anew:
                kind = "Normal" if cond["reason"] == "AppliedByVirtualMCPServer" else "Warning"
                await self.event(body, kind, cond["reason"], cond["message"])
        if wrote:
            await self.event(body, "Normal", "Applied", f"applied {', '.join(wrote)} (config {rendered.checksum[:12]})")

    async def _drop_policy(self, body: Mapping[str, Any], name: str) -> None:
        """Delete the NetworkPolicy `name` if it is this resource's (one of someone else's stays)."""
        namespace = _meta(body).get("namespace")
        policy = await self.api.get("NetworkPolicy", namespace, name)
        owners = (_meta(policy).get("ownerReferences") or []) if policy is not None else []
        if any(o.get("uid") == _meta(body).get("uid") for o in owners):
            await self.api.delete("NetworkPolicy", namespace, name)

    async def _applied(self, obj: Mapping[str, Any]) -> bool:
        """Apply one object; True when written. What the API server refuses as invalid (a pod template field of
        the wrong kind, say) is the spec's to fix: a `ConfigError` with the API server's words."""
        try:
            return (await self.api.apply(obj))[1]
        except ApiError as exc:
            if exc.status not in (400, 422):
                raise
            said = str(exc).split(": ", 3)[-1]  # past "Kubernetes API: 422: PATCH /apis/…:"
            raise ConfigError(f"the API server refused {obj['kind']} {obj['metadata']['name']}: {said}") from None

    async def readiness(self, deployment: Mapping[str, Any]) -> None:
        """A gateway Deployment's status changed: its owner's ready replicas and phase."""
        labels = _meta(deployment).get("labels") or {}
        kind, name = labels.get("hivegate.dev/owner-kind"), labels.get("app.kubernetes.io/instance")
        if kind not in WORKLOAD_KINDS or not name or labels.get("app.kubernetes.io/component") != "gateway":
            return
        namespace = str(_meta(deployment).get("namespace"))
        async with self._locks.setdefault((kind, namespace, name), asyncio.Lock()):  # not between a render's read
            await self._readiness(deployment, kind, namespace, name)  # and its write: its conditions would be lost

    async def _readiness(self, deployment: Mapping[str, Any], kind: str, namespace: str, name: str) -> None:
        owner = await self.api.get(kind, namespace, name)
        if owner is None:
            return
        owner = {**owner, "kind": kind}
        status = owner.get("status") or {}
        conditions = status.get("conditions") or []
        valid = next((c for c in conditions if c.get("type") == "Valid"), None)
        if valid is None or valid.get("status") != "True":
            # Not reconciled yet (its own status write, which reads the Deployment too, comes next), or Failed:
            # Failed stays Failed until the spec is fixed.
            return
        replicas = int((deployment.get("spec") or {}).get("replicas", 1))
        ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
        generation = _meta(owner).get("generation")
        desired = _readiness(replicas, ready, conditions, generation, self.clock)
        others = [c for c in conditions if c.get("type") != "Ready"]
        desired["conditions"] = [*others, desired.pop("ready")]
        await self._set_status(owner, desired)

    async def _set_finalizers(self, body: Mapping[str, Any], finalizers: list[str]) -> None:
        meta = _meta(body)
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}
        await self.api.patch(str(body.get("kind")), meta.get("namespace"), str(meta.get("name")), patch)

    async def release_toolhive(self, kind: str, body: Mapping[str, Any]) -> None:
        """A resource being deleted: drop the finalizers ToolHive's operator left (it is not there to drop them)."""
        finalizers = list(_meta(body).get("finalizers") or [])
        if _meta(body).get("deletionTimestamp") and any(f in TOOLHIVE_FINALIZERS for f in finalizers):
            await self._set_finalizers({**body, "kind": kind}, [f for f in finalizers if f not in TOOLHIVE_FINALIZERS])

    # configs

    async def config_changed(self, kind: str, body: Mapping[str, Any]) -> None:
        """A config was written: protect it with the finalizer, validate it, roll its users; or, being deleted,
        release it once nothing references it."""
        meta = _meta(body)
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        finalizer = CONFIG_FINALIZERS[kind]
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if finalizer in finalizers and not await self.blocked_by(kind, namespace, name):
                await self._set_finalizers({**body, "kind": kind}, [f for f in finalizers if f != finalizer])
            return
        if finalizer not in finalizers:
            await self._set_finalizers({**body, "kind": kind}, [*finalizers, finalizer])
        await self.config(kind, namespace, name)

    async def release_configs(self, namespace: str) -> None:
        """A workload went away or changed: the configs waiting to be deleted may be free now."""
        for kind in CONFIG_FINALIZERS:
            for item in await self.api.list(kind, namespace):
                if _meta(item).get("deletionTimestamp"):
                    await self.config_changed(kind, item)

    async def config(self, kind: str, namespace: str, name: str, *, roll: bool = True) -> None:
        """Validate the config and write its status; `roll`: render its users again (it changed)."""
        body = await self.api.get(kind, namespace, name)
        if body is None or _meta(body).get("deletionTimestamp"):
            return
        body = {**body, "kind": kind}
        users = await self.referrers(kind, namespace, name)
        async with self.metrics.timed(kind) as result:
            generation = _meta(body).get("generation")
            conditions = (body.get("status") or {}).get("conditions")
            referenced = {"referencedBy": [f"{k}/{n}" for k, n in users]}
            try:
                check_config(body)
                await check_secrets(self.api, namespace, config_secrets(body))
            except ConfigError as exc:
                result.append("invalid")
                valid = condition(conditions, "Valid", False, "ValidationFailed", str(exc), generation, self.clock)
                if await self._set_status(
                    body, {"observedGeneration": generation, "conditions": [valid], **referenced}
                ):
                    await self.event(body, "Warning", "ValidationFailed", str(exc))
            else:
                valid = condition(conditions, "Valid", True, "ValidationSucceeded", "the spec is valid", generation,
                                  self.clock)  # fmt: skip
                desired = {"observedGeneration": generation, "configHash": spec_hash(body), "conditions": [valid],
                           **referenced}  # fmt: skip
                await self._set_status(body, desired)
        for ref_kind, ref_name in users if roll else ():
            await self.workload(ref_kind, namespace, ref_name)

    async def users_changed(self, body: Mapping[str, Any]) -> None:
        """A workload changed: the `referencedBy` of the configs it references."""
        namespace = str(_meta(body).get("namespace"))
        for ref in {(r.kind, r.name) for r in config_refs(body.get("spec"))}:
            if ref[0] in CONFIG_FINALIZERS:
                await self.config(ref[0], namespace, ref[1], roll=False)

    async def referrers(self, kind: str, namespace: str, name: str) -> list[tuple[str, str]]:
        """The workloads whose spec (or whose group's members, for a vMCP) reference `kind/name`."""
        found: list[tuple[str, str]] = []
        workloads = {k: await self.api.list(k, namespace) for k in WORKLOAD_KINDS}
        referencing_groups = set()
        for k, items in workloads.items():
            for item in items:
                if any(r.kind == kind and r.name == name for r in config_refs(item.get("spec"))):
                    found.append((k, str(_meta(item).get("name"))))
                    if k != "VirtualMCPServer" and (group := group_of(item)):
                        referencing_groups.add(group)
        for item in workloads["VirtualMCPServer"]:
            entry = ("VirtualMCPServer", str(_meta(item).get("name")))
            if group_of(item) in referencing_groups and entry not in found:
                found.append(entry)
        return found

    async def blocked_by(self, kind: str, namespace: str, name: str) -> list[str]:
        """The workloads that keep `kind/name` from being deleted; sets or clears `DeletionBlocked`."""
        body = await self.api.get(kind, namespace, name)
        users = [f"{k}/{n}" for k, n in await self.referrers(kind, namespace, name)]
        if body is None:
            return users
        body = {**body, "kind": kind}
        status = body.get("status") or {}
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "DeletionBlocked"]
        generation = _meta(body).get("generation")
        if users:
            message = f"Cannot delete: referenced by workloads: {', '.join(users)}"
            blocked = condition(status.get("conditions"), "DeletionBlocked", True, "ReferencedByWorkloads", message,
                                generation, self.clock)  # fmt: skip
            if await self._set_status(body, {"conditions": [*conditions, blocked]}):
                await self.event(body, "Warning", "DeletionBlocked", message)
        return users

    async def resync(self, namespaces: list[str | None]) -> None:
        """Everything again (`None`: every namespace); an error on one resource does not stop the others."""
        for namespace in namespaces:
            for kind in (*CONFIG_FINALIZERS, "MCPGroup", *WORKLOAD_KINDS):
                for item in await self.api.list(kind, namespace):
                    meta = _meta(item)
                    try:
                        if kind in CONFIG_FINALIZERS:
                            await self.config_changed(kind, {**item, "kind": kind})
                        elif kind == "MCPGroup":
                            await self.group(str(meta.get("namespace")), str(meta.get("name")))
                        else:
                            await self.workload(kind, str(meta.get("namespace")), str(meta.get("name")))
                    except Exception:
                        logger.exception("resync of %s %s/%s failed", kind, meta.get("namespace"), meta.get("name"))

    # groups

    async def group(self, namespace: str, name: str) -> bool:
        """The group's status; True when its membership changed (its vMCPs are then rendered again)."""
        body = await self.api.get("MCPGroup", namespace, name)
        if body is None or _meta(body).get("deletionTimestamp"):
            return False
        body = {**body, "kind": "MCPGroup"}
        async with self.metrics.timed("MCPGroup"):
            servers = sorted(str(_meta(s).get("name")) for s in await self.api.list("MCPServer", namespace)
                             if group_of(s) == name and not _meta(s).get("deletionTimestamp"))  # fmt: skip
            proxies = sorted(str(_meta(s).get("name")) for s in await self.api.list("MCPRemoteProxy", namespace)
                             if group_of(s) == name and not _meta(s).get("deletionTimestamp"))  # fmt: skip
            status = body.get("status") or {}
            generation = _meta(body).get("generation")
            membership = bool(status.get("servers", []) != servers or status.get("remoteProxies", []) != proxies)
            checked = condition(
                status.get("conditions"),
                "MCPServersChecked",
                True,
                "ListMCPServersCheckSucceeded",
                f"{len(servers)} servers, {len(proxies)} remote proxies",
                generation,
                self.clock,
            )
            ready = condition(status.get("conditions"), "Ready", True, "Ready", "the group's members are listed",
                              generation, self.clock)  # fmt: skip
            desired = {
                "phase": "Ready",
                "servers": servers,
                "serverCount": len(servers),
                "remoteProxies": proxies,
                "remoteProxyCount": len(proxies),
                "observedGeneration": generation,
                "conditions": [checked, ready],
            }
            await self._set_status(body, desired)
        if membership:
            for vmcp in await self.api.list("VirtualMCPServer", namespace):
                if group_of(vmcp) == name:
                    await self.workload("VirtualMCPServer", namespace, str(_meta(vmcp).get("name")))
        return membership

    async def member_changed(self, body: Mapping[str, Any]) -> None:
        """An `MCPServer` or `MCPRemoteProxy` changed: its group's status, and the vMCPs of the group (its URL)."""
        group = group_of(body)
        namespace = str(_meta(body).get("namespace"))
        if group is None:
            return
        if await self.group(namespace, group):
            return  # the group rendered its vMCPs again
        for vmcp in await self.api.list("VirtualMCPServer", namespace):
            if group_of(vmcp) == group:
                await self.workload("VirtualMCPServer", namespace, str(_meta(vmcp).get("name")))


def _readiness(replicas: int, ready: int, conditions: Any, generation: int | None, clock: Clock) -> dict[str, Any]:
    if replicas == 0:
        phase, ok, reason, message = "Stopped", False, "Stopped", "scaled to zero replicas"
    elif ready > 0:
        phase, ok, reason, message = "Ready", True, "DeploymentReady", f"{ready}/{replicas} replicas ready"
    else:
        phase, ok, reason, message = "Pending", False, "DeploymentNotReady", f"0/{replicas} replicas ready"
    return {
        "phase": phase,
        "message": message,
        "readyReplicas": ready,
        "ready": condition(conditions, "Ready", ok, reason, message, generation, clock),
    }

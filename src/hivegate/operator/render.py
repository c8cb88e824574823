"""Render one workload: gather what it references from the API, write its manifests, check them with hivegate's
own loaders, and list its Kubernetes objects.

`render(api, body, settings)` raises `ConfigError` with a message that names the field (`spec.oidcConfigRef.name:
MCPOIDCConfig 'x' not found in namespace ns`, or the loader's own message) for anything the pod would refuse at
start-up, so a broken spec becomes a condition on the resource rather than a pod in a crash loop. The loaders run on
the very text the ConfigMap will hold; the Secrets they read are stood in for by placeholders (the operator checks
that each referenced Secret and key exists, and never reads or copies a value).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hivegate.errors import ConfigError
from hivegate.operator.kube import KubeClient
from hivegate.operator.manifests import ATTACH_ANNOTATION, checksum, clean, dump, spec_hash
from hivegate.operator.netpol import gateway_only
from hivegate.operator.objects import Settings, gateway_args, workload_objects
from hivegate.operator.refs import Ref, SecretUse, config_refs, secret_refs
from hivegate.operator.shape import Shape, shape_of
from hivegate.operator.upstream import GROUP_LABEL, Deferred, applies_discovered, deferred_of, group_label, open_direct

__all__ = ["Rendered", "check_secrets", "group_of", "render"]

_PLACEHOLDER = "hivegate-operator-validation-placeholder-0123456789"  # 32+ bytes: HMAC keys are checked for length
_ORIGIN = re.compile(r"manifests\.yaml:doc\d+ ")
_WARNING_ORIGIN = re.compile(r"^\S*manifests\.yaml:doc\d+ \w+/\S+: ")
_HASH_FIELDS = {"MCPExternalAuthConfig": "externalAuthConfigHash", "MCPOIDCConfig": "oidcConfigHash"}


@dataclass(frozen=True, slots=True)
class Rendered:
    shape: Shape
    manifests: str
    checksum: str
    objects: list[dict[str, Any]]
    refs: tuple[Ref, ...]
    hashes: Mapping[str, str] = field(default_factory=dict)
    members: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # fields read and not applied (or not as asked), each with why
    template_notes: tuple[str, ...] = ()  # what `spec.podTemplateSpec` changed of the operator's settings
    deferred: Deferred | None = None  # its outgoing strategy, applied by a vMCP of its group (`upstream`)


def group_of(body: Mapping[str, Any]) -> str | None:
    """The `MCPGroup` a resource names in `spec.groupRef` (a name, or `{name}`)."""
    spec = body.get("spec") or {}
    ref = spec.get("groupRef") if isinstance(spec, Mapping) else None
    if ref is None and isinstance(spec, Mapping) and isinstance(spec.get("config"), Mapping):
        ref = spec["config"].get("groupRef")
    name = ref.get("name") if isinstance(ref, Mapping) else ref
    return name if isinstance(name, str) and name else None


# what the operator applies to the objects it makes; the gateway in the pod has no use for them
_APPLIED_HERE = ("resources", "podTemplateSpec", "replicas", "backendReplicas", "serviceAccount", "resourceOverrides",
                 "sessionAffinity", "imagePullSecrets", "serviceType", "trustProxyHeaders")  # fmt: skip


def _rewritten(body: Mapping[str, Any], shape: Shape, deferred: Deferred | None) -> dict[str, Any]:
    doc = clean(body)
    spec = {k: v for k, v in (doc.get("spec") or {}).items() if k not in _APPLIED_HERE}
    if deferred is not None:
        del spec["externalAuthConfigRef"]  # a vMCP of the group applies it
    if shape.backend == "http-image":
        spec["url"] = f"http://127.0.0.1:{shape.server_port}{'/sse' if shape.transport == 'sse' else '/mcp'}"
    elif shape.backend == "stdio-image":
        annotations = dict(doc["metadata"].get("annotations") or {})
        annotations[ATTACH_ANNOTATION] = f"{shape.namespace}/{shape.name}-0/mcp"
        doc["metadata"]["annotations"] = annotations
    doc["spec"] = spec
    return doc


# what the member's gateway checks of its callers: the vMCP checks them when it goes around that gateway (`ownproxy`)
_OWN_CHECKS = ("oidcConfig", "oidcConfigRef", "authzConfig")


async def _member(
    api: KubeClient, body: Mapping[str, Any], group: str, vmcp: Mapping[str, Any]
) -> dict[str, Any] | None:
    """A group member as the vMCP sees it: an `MCPServer` at the Service URL of the member's gateway; or, when the
    vMCP applies the member's upstream credential (`upstream`), where the server itself runs, with the checks of the
    member's gateway."""
    try:
        shape = shape_of(body)
    except ConfigError:
        return None  # its own status says what is wrong; the vMCP serves the others
    try:
        deferred = await deferred_of(api, body, shape, group)
    except ConfigError:
        deferred = None  # its config is missing: the vMCP's references say so
    own = body.get("spec") or {}
    spec: dict[str, Any] = {"groupRef": group, "url": shape.url}
    spec["transport"] = "sse" if shape.path == "/sse" else "streamable-http"
    ref = own.get("externalAuthConfigRef")
    name = str((body.get("metadata") or {}).get("name"))
    if deferred is not None and (deferred.url is None or not applies_discovered(vmcp, name)):
        ref = None  # a stdio server gets no token; a vMCP that does not apply it reaches the gateway, which drops it
    elif deferred is not None and deferred.url is not None:
        spec.update({k: own[k] for k in _OWN_CHECKS if own.get(k) is not None}, url=deferred.url,
                    transport=deferred.transport)  # fmt: skip
    if ref is not None:
        spec["externalAuthConfigRef"] = ref
    meta = body.get("metadata") or {}
    return {"apiVersion": body.get("apiVersion"), "kind": "MCPServer",
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")}, "spec": spec}  # fmt: skip


async def _members(api: KubeClient, body: Mapping[str, Any], shape: Shape) -> tuple[str, list[dict[str, Any]]]:
    group = group_of(body)
    if group is None:
        raise ConfigError("spec.groupRef.name: required (the MCPGroup whose servers this vMCP serves)")
    if await api.get("MCPGroup", shape.namespace, group) is None:
        raise ConfigError(f"spec.groupRef.name: MCPGroup {group!r} not found in namespace {shape.namespace}")
    found = [*await api.list("MCPServer", shape.namespace), *await api.list("MCPRemoteProxy", shape.namespace)]
    members = [m for m in found if group_of(m) == group and not (m.get("metadata") or {}).get("deletionTimestamp")]
    members.sort(key=lambda m: str((m.get("metadata") or {}).get("name")))
    return group, members


async def _referenced(api: KubeClient, namespace: str, refs: list[Ref]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for ref in refs:
        if (ref.kind, ref.name) in seen:
            continue
        seen.add((ref.kind, ref.name))
        found = await api.get(ref.kind, namespace, ref.name)
        if found is None or (found.get("metadata") or {}).get("deletionTimestamp"):
            raise ConfigError(f"{ref.field}: {ref.kind} {ref.name!r} not found in namespace {namespace}")
        docs.append(clean({**found, "kind": ref.kind}))
    return docs


async def check_secrets(api: KubeClient, namespace: str, uses: list[SecretUse]) -> None:
    """Each Secret and key exists (the key's presence only: the value is not looked at)."""
    for use in uses:
        secret = await api.get("Secret", namespace, use.name)
        if secret is None:
            raise ConfigError(f"{use.field}: Secret {use.name!r} not found in namespace {namespace}")
        keys = {*(secret.get("data") or {}), *(secret.get("stringData") or {})}
        if use.key not in keys:
            raise ConfigError(f"{use.field}: Secret {use.name!r} has no key {use.key!r}")


def validate(shape: Shape, docs: list[dict[str, Any]], uses: list[SecretUse]) -> tuple[bool, list[str]]:
    """Load `docs` as the pod will (its very command line: `hivegate run --foreground -f …` or `vmcp serve -f`),
    Secrets stood in for by placeholders; whether the resource sets no incoming authentication, and the warnings
    the gateway would log (a field it reads and does not apply, `spec.…: why`)."""
    from hivegate.vmcp.manifests import load_manifests
    from hivegate.vmcp.manifests.standalone import build_server, read_servers

    placeholders: dict[str, dict[str, str]] = {}
    for use in uses:
        placeholders.setdefault(use.name, {})[use.key] = _PLACEHOLDER
    secrets = [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": n, "namespace": shape.namespace},
                "stringData": data} for n, data in placeholders.items()]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="hivegate-operator-") as folder:
        (Path(folder) / "manifests.yaml").write_text(dump(docs) + "---\n" + yaml.safe_dump_all(secrets))
        try:
            if shape.kind == "VirtualMCPServer":
                load_manifests([folder], name=shape.name)
                return False, []
            manifests = read_servers([folder])
            server = build_server(manifests, manifests.servers[0])
            anonymous = server.auth is None and server.auth_server is None
            _check_command_line(gateway_args(shape, anonymous=anonymous, manifests=folder))
        except ConfigError as exc:
            raise ConfigError(_ORIGIN.sub("", str(exc)).replace(f"{folder}/", "")) from None
    said = [_WARNING_ORIGIN.sub("", w) for w in server.warnings]
    return anonymous, [w for w in said if not w.startswith("spec.permissionProfile")]  # a pod has its network


def _check_command_line(argv: list[str]) -> None:
    """What `hivegate run` checks of `argv` (flags against the manifest) before it starts."""
    import argparse

    from hivegate.cli.run_args import add_run_parser
    from hivegate.cli.run_file import file_configs

    words = argv[1:]  # after `run`
    args = add_run_parser(argparse.ArgumentParser().add_subparsers()).parse_args(words)
    file_configs(args, words, foreground=True)


async def render(api: KubeClient, body: Mapping[str, Any], settings: Settings) -> Rendered:
    """The manifests and objects of `body` (`ConfigError` naming the field when it cannot run)."""
    shape = shape_of(body)
    spec = body.get("spec") or {}
    deferred = await deferred_of(api, body, shape, group_of(body))
    applied = {k: v for k, v in spec.items() if deferred is None or k != "externalAuthConfigRef"}
    refs = list(config_refs(applied))
    docs = [_rewritten(body, shape, deferred)]
    member_names: tuple[str, ...] = ()
    group: str | None = None
    if shape.kind == "VirtualMCPServer":
        group, members = await _members(api, body, shape)
        group_doc = await api.get("MCPGroup", shape.namespace, group)
        assert group_doc is not None
        docs.append(clean({**group_doc, "kind": "MCPGroup"}))
        for m in members:
            doc = await _member(api, m, group, spec)
            if doc is not None:
                docs.append(doc)
                where = f"{m.get('kind')}/{doc['metadata']['name']}: spec"
                refs += config_refs({k: v for k, v in doc["spec"].items() if k != "groupRef"}, where)
        member_names = tuple(str(d["metadata"]["name"]) for d in docs[2:])
    referenced = await _referenced(api, shape.namespace, refs)
    docs += referenced
    uses = [u for d in docs for u in secret_refs(d.get("spec"), f"{d['kind']}/{d['metadata']['name']}: spec")]
    own = f"{shape.kind}/{shape.name}: spec.secrets"
    mounted = [u for u in uses if not u.field.startswith(own)]
    await check_secrets(api, shape.namespace, uses)
    anonymous, warnings = validate(shape, docs, mounted)
    text = dump(docs)
    digest = checksum(text)
    secrets = tuple(sorted({u.name for u in mounted}))
    objects = workload_objects(body, shape, text, digest, secrets, settings, anonymous=anonymous)
    if shape.backend == "http-image":  # the server listens beside its gateway: only the gateway's ports are open
        gateway_only(objects.items, shape)
    if deferred is not None and deferred.url is not None and shape.backend == "http-image":
        open_direct(objects.items, shape, deferred)
    if group is not None:  # what a member's NetworkPolicy admits to its `mcp` port
        deployment = next(o for o in objects.items if o["kind"] == "Deployment")
        deployment["spec"]["template"]["metadata"]["labels"][GROUP_LABEL] = group_label(group)
    account = spec.get("serviceAccount")
    if isinstance(account, str) and account and await api.get("ServiceAccount", shape.namespace, account) is None:
        raise ConfigError(f"spec.serviceAccount: ServiceAccount {account!r} not found in namespace {shape.namespace}")
    hashes = {_HASH_FIELDS[d["kind"]]: spec_hash(d) for d in referenced if d["kind"] in _HASH_FIELDS}
    if deferred is not None:
        hashes["externalAuthConfigHash"] = deferred.config_hash
    return Rendered(shape, text, digest, objects.items, tuple(refs), hashes, member_names,
                    (*warnings, *objects.notes), objects.template_notes, deferred)  # fmt: skip

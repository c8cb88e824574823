"""A resource's own pod settings applied to the objects the operator makes: `podTemplateSpec`, `resourceOverrides`,
`serviceAccount`.

`merge_template(pod, template, ...)` merges a `spec.podTemplateSpec` into a rendered pod template, like Kubernetes'
strategic merge (lists of named things merged by name), within limits that keep the gateway what it is:
- `metadata.labels`/`annotations` are added; the operator's own keys (its labels, the config checksum) stay.
- The `mcp` container (the server's) takes the template's fields, `securityContext` key by key and `resources`
  over `spec.resources`, `env` by name (the resource's own entries win), `volumeMounts` by path. `image`, `args`,
  `ports`, `stdin`, `stdinOnce` and `tty` come from the resource: the template may not set them. Each operator
  default the template's `securityContext` replaces is named in a note (the resource's condition `PodTemplateValid`
  says it), and `privileged: true` is refused when the server shares the gateway's pod.
- The gateway's container (`gateway`, or ToolHive's name for it: `toolhive`, `vmcp`) takes `resources`, new `env`
  entries and new `volumeMounts` only: its command, probes and `securityContext` are the operator's.
- Other containers and `initContainers` are added; `volumes` are added (not the operator's: `manifests`, `tmp`,
  `secret-N`); `imagePullSecrets` and `tolerations` are appended, `nodeSelector` merged; pod-level
  `securityContext` merged key by key (the gateway sets its own at container level, so it keeps it); any other pod
  field (`affinity`, `priorityClassName`, `topologySpreadConstraints`, `runtimeClassName`, …) is taken as given.
- Refused, naming the field: `serviceAccountName`, `serviceAccount`, `automountServiceAccountToken` (use
  `spec.serviceAccount`) and, in the gateway's pod, `hostNetwork`, `hostPID`, `hostIPC`, `shareProcessNamespace`.

`apply_overrides(objects, overrides)` applies ToolHive's `resourceOverrides`: `proxyDeployment{labels,
annotations, podTemplateMetadataOverrides{labels, annotations}, env, imagePullSecrets}` to the gateway's Deployment,
its pod template and container, `proxyService{labels, annotations}` to its Service; the operator's own keys win.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from hivegate.config.reader import as_list, as_mapping
from hivegate.errors import ConfigError
from hivegate.operator.shape import Shape

__all__ = ["apply_overrides", "gateway_names", "merge_template"]

_SERVER_OWN = ("image", "args", "ports", "stdin", "stdinOnce", "tty")
_NO_SA = ("serviceAccountName", "serviceAccount", "automountServiceAccountToken")
_HOST = ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace")
_APPENDED = ("tolerations", "imagePullSecrets")


def gateway_names(shape: Shape) -> tuple[str, ...]:
    """What a template may call the gateway's container: hivegate's name, and ToolHive's for the kind."""
    extra = {"MCPRemoteProxy": ("toolhive",), "VirtualMCPServer": ("vmcp",)}.get(shape.kind, ())
    return ("gateway", *extra)


def _named(items: list[Any], where: str, key: str = "name") -> list[tuple[str, Mapping[str, Any], str]]:
    out = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get(key), str) or not item.get(key):
            raise ConfigError(f"{at}.{key}: required")
        out.append((str(item[key]), item, at))
    return out


def _merge_metadata(meta: dict[str, Any], extra: Mapping[str, Any], where: str, notes: list[str]) -> None:
    """Add `extra`'s labels and annotations to `meta`; the keys already there (the operator's) stay."""
    for part in ("labels", "annotations"):
        given = as_mapping(extra.get(part), f"{where}.{part}")
        current = meta.setdefault(part, {})
        for key, value in given.items():
            if key in current and current[key] != str(value):
                notes.append(f"{where}.{part}.{key}: the operator's own; kept")
                continue
            current[key] = str(value)
        if not current:
            meta.pop(part)


def _merge_env(container: dict[str, Any], entries: list[Any], where: str, notes: list[str], *, strict: bool) -> None:
    env = container.setdefault("env", [])
    have = {e.get("name") for e in env}
    for name, entry, at in _named(entries, where):
        if name in have:
            if strict:
                raise ConfigError(f"{at}: {name} is set by the operator")
            notes.append(f"{at}: {name} is set by the resource; kept")
            continue
        env.append(dict(entry))


def _merge_mounts(container: dict[str, Any], mounts: list[Any], where: str) -> None:
    current = container.setdefault("volumeMounts", [])
    paths = {m.get("mountPath") for m in current}
    for path, mount, at in _named(mounts, where, "mountPath"):
        if path in paths:
            raise ConfigError(f"{at}.mountPath: {path} is mounted by the operator")
        current.append(dict(mount))


def _merge_context(current: Mapping[str, Any] | None, given: Any, where: str, notes: list[str]) -> dict[str, Any]:
    """A `securityContext` merged key by key, the template's winning; each setting it replaces is noted."""
    context = dict(current or {})
    for field, setting in as_mapping(given, where).items():
        if field in context and context[field] != setting:
            notes.append(f"{where}.{field}: the template's {setting!r} replaces the operator's {context[field]!r}")
        context[field] = setting
    return context


def _merge_shared(container: dict[str, Any], key: str, value: Any, where: str, notes: list[str], *,
                  strict: bool) -> bool:  # fmt: skip
    """`env`, `volumeMounts` or `resources` of a container merged; False for any other key."""
    if key == "env":
        _merge_env(container, as_list(value, where), where, notes, strict=strict)
    elif key == "volumeMounts":
        _merge_mounts(container, as_list(value, where), where)
    elif key == "resources":
        resources = dict(container.get("resources") or {})
        for part, quantities in as_mapping(value, where).items():
            resources[part] = {**(resources.get(part) or {}), **as_mapping(quantities, f"{where}.{part}")}
        container["resources"] = resources
    else:
        return False
    return True


def _merge_server(container: dict[str, Any], given: Mapping[str, Any], where: str, notes: list[str],
                  shared: bool) -> None:  # fmt: skip
    for key, value in given.items():
        at = f"{where}.{key}"
        if key == "name":
            continue
        if key in _SERVER_OWN:
            raise ConfigError(f"{at}: set by the resource (spec.image, spec.args, the ports and transport)")
        if _merge_shared(container, key, value, at, notes, strict=False):
            continue
        if key == "securityContext":
            if shared and as_mapping(value, at).get("privileged") is True:
                raise ConfigError(f"{at}.privileged: the server shares the gateway's pod; it may not be privileged")
            container["securityContext"] = _merge_context(container.get("securityContext"), value, at, notes)
        else:
            container[key] = copy.deepcopy(value)


def _merge_gateway(container: dict[str, Any], given: Mapping[str, Any], where: str, notes: list[str]) -> None:
    for key, value in given.items():
        at = f"{where}.{key}"
        if key != "name" and not _merge_shared(container, key, value, at, notes, strict=True):
            raise ConfigError(f"{at}: the gateway container's {key} is the operator's (resources, env and "
                              "volumeMounts may be set)")  # fmt: skip


def merge_template(
    pod: dict[str, Any],
    template: Any,
    *,
    server: str | None,
    gateway: tuple[str, ...],
    where: str = "spec.podTemplateSpec",
) -> list[str]:
    """Merge `template` into the pod template `pod` (in place); the notes on what the template changed that the
    operator had set. `server`: the name of the server's container in this pod (None: there is none); `gateway`:
    the names of the gateway's container (empty: the gateway is not in this pod)."""
    notes: list[str] = []
    given = as_mapping(template, where)
    for key in given:
        if key not in ("metadata", "spec"):
            raise ConfigError(f"{where}.{key}: a pod template has metadata and spec only")
    meta = as_mapping(given.get("metadata"), f"{where}.metadata")
    for key in meta:
        if key not in ("labels", "annotations"):
            raise ConfigError(f"{where}.metadata.{key}: only labels and annotations may be set")
    _merge_metadata(pod.setdefault("metadata", {}), meta, f"{where}.metadata", notes)
    spec = pod.setdefault("spec", {})
    at = f"{where}.spec"
    for key, value in as_mapping(given.get("spec"), at).items():
        here = f"{at}.{key}"
        if key in _NO_SA:
            raise ConfigError(f"{here}: set spec.serviceAccount instead")
        if key in _HOST and gateway and value:
            raise ConfigError(f"{here}: the gateway's pod keeps its own namespaces")
        if key == "containers":
            _merge_containers(spec, as_list(value, here), here, notes, server=server, gateway=gateway)
        elif key == "initContainers":
            current = spec.setdefault("initContainers", [])
            current.extend(copy.deepcopy(c) for _, c, _ in _named(as_list(value, here), here))
        elif key == "volumes":
            current = spec.setdefault("volumes", [])
            taken = {v.get("name") for v in current}
            for name, volume, spot in _named(as_list(value, here), here):
                if name in taken:
                    raise ConfigError(f"{spot}.name: {name} is a volume of the operator's")
                current.append(copy.deepcopy(volume))
        elif key in _APPENDED:
            current = spec.setdefault(key, [])
            current.extend(copy.deepcopy(v) for v in as_list(value, here) if v not in current)
        elif key == "nodeSelector":
            spec[key] = {**(spec.get(key) or {}), **as_mapping(value, here)}
        elif key == "securityContext":
            context = dict(spec.get("securityContext") or {})
            for field, setting in as_mapping(value, here).items():
                if field in context and context[field] != setting:
                    notes.append(
                        f"{here}.{field}: the template's {setting!r} replaces the operator's {context[field]!r}"
                    )
                context[field] = setting
            spec["securityContext"] = context
        else:
            spec[key] = copy.deepcopy(value)
    return notes


def _merge_containers(spec: dict[str, Any], given: list[Any], where: str, notes: list[str], *, server: str | None,
                      gateway: tuple[str, ...]) -> None:  # fmt: skip
    containers: list[dict[str, Any]] = spec.setdefault("containers", [])
    by_name = {c["name"]: c for c in containers}
    for name, container, at in _named(given, where):
        if name in gateway:
            _merge_gateway(by_name["gateway"], container, at, notes)
        elif name == "mcp" and server is None:
            raise ConfigError(f"{at}.name: this pod has no mcp container (the server does not run in it)")
        elif name == "mcp":
            _merge_server(by_name["mcp"], container, at, notes, shared=bool(gateway))
        elif name in by_name:
            raise ConfigError(f"{at}.name: {name} is a container of the operator's")
        elif not container.get("image"):
            raise ConfigError(f"{at}.image: required (a container of the template's own; the gateway's is "
                              f"{'/'.join(gateway) or 'not in this pod'}, the server's mcp)")  # fmt: skip
        else:
            containers.append(copy.deepcopy(dict(container)))
            by_name[name] = containers[-1]


def apply_overrides(objects: list[dict[str, Any]], overrides: Any) -> list[str]:
    """Apply `spec.resourceOverrides` to the gateway's Deployment and Service (in place); the notes."""
    where = "spec.resourceOverrides"
    given = as_mapping(overrides, where)
    notes: list[str] = []
    for key in given:
        if key not in ("proxyDeployment", "proxyService"):
            raise ConfigError(f"{where}.{key}: proxyDeployment and proxyService may be set")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    service = next(o for o in objects if o["kind"] == "Service")
    proxy = as_mapping(given.get("proxyDeployment"), f"{where}.proxyDeployment")
    at = f"{where}.proxyDeployment"
    for key, value in proxy.items():
        if key in ("labels", "annotations"):
            _merge_metadata(deployment["metadata"], {key: value}, at, notes)
        elif key == "podTemplateMetadataOverrides":
            _merge_metadata(deployment["spec"]["template"]["metadata"], as_mapping(value, f"{at}.{key}"),
                            f"{at}.{key}", notes)  # fmt: skip
        elif key == "env":
            gateway = deployment["spec"]["template"]["spec"]["containers"][0]
            _merge_env(gateway, as_list(value, f"{at}.env"), f"{at}.env", notes, strict=True)
        elif key == "imagePullSecrets":
            pod = deployment["spec"]["template"]["spec"]
            current = pod.setdefault("imagePullSecrets", [])
            current.extend(
                dict(v) for _, v, _ in _named(as_list(value, f"{at}.{key}"), f"{at}.{key}") if v not in current
            )
        else:
            raise ConfigError(f"{at}.{key}: labels, annotations, podTemplateMetadataOverrides, env and "
                              "imagePullSecrets may be set")  # fmt: skip
    svc = as_mapping(given.get("proxyService"), f"{where}.proxyService")
    for key in svc:
        if key not in ("labels", "annotations"):
            raise ConfigError(f"{where}.proxyService.{key}: labels and annotations may be set")
    _merge_metadata(service["metadata"], svc, f"{where}.proxyService", notes)
    return notes

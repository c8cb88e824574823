"""The operator's Kubernetes API client: get, list, create, merge-patch, delete of the kinds it manages.

One small client over aiohttp, so the whole operator talks to one transport boundary (tests point it at `kmock`).
`apply(obj)` creates the object or merge-patches it (RFC 7386) with the desired fields, and leaves it alone when
it already has them: no write (no new generation, no watch event) when nothing changed.

Credentials come from kopf's `ConnectionInfo` (the in-cluster service account or a kubeconfig); a token file is
read again on every request, since the kubelet rotates projected service-account tokens.
"""

from __future__ import annotations

import copy
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from hivegate.errors import HivegateError

__all__ = ["APPLIED_ANNOTATION", "GROUP", "KINDS", "ApiError", "KubeClient", "contains", "recorded", "with_removals"]

APPLIED_ANNOTATION = "hivegate.dev/applied-fields"
_NEVER_REMOVED = {("spec", "replicas")}

GROUP = "toolhive.stacklok.dev"
VERSION = "v1beta1"  # the stored version; v1alpha1 manifests are served as it
# kind → (apiVersion, plural, namespaced)
KINDS: Mapping[str, tuple[str, str, bool]] = {
    "MCPServer": (f"{GROUP}/{VERSION}", "mcpservers", True),
    "VirtualMCPServer": (f"{GROUP}/{VERSION}", "virtualmcpservers", True),
    "MCPRemoteProxy": (f"{GROUP}/{VERSION}", "mcpremoteproxies", True),
    "MCPGroup": (f"{GROUP}/{VERSION}", "mcpgroups", True),
    "MCPExternalAuthConfig": (f"{GROUP}/{VERSION}", "mcpexternalauthconfigs", True),
    "MCPOIDCConfig": (f"{GROUP}/{VERSION}", "mcpoidcconfigs", True),
    "ConfigMap": ("v1", "configmaps", True),
    "Secret": ("v1", "secrets", True),
    "Service": ("v1", "services", True),
    "ServiceAccount": ("v1", "serviceaccounts", True),
    "Event": ("v1", "events", True),
    "Pod": ("v1", "pods", True),
    "Deployment": ("apps/v1", "deployments", True),
    "StatefulSet": ("apps/v1", "statefulsets", True),
    "Role": ("rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", "rolebindings", True),
    "Lease": ("coordination.k8s.io/v1", "leases", True),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies", True),
}


class ApiError(HivegateError):
    """The API server answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API: {status}: {message}")
        self.status = status


@dataclass(frozen=True, slots=True)
class Credentials:
    server: str
    token: str | None = None
    token_file: str | None = None
    ca_path: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    cert_path: str | None = None
    key_path: str | None = None


def _path(kind: str, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
    api_version, plural, namespaced = KINDS[kind]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespaced and namespace:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{plural}"
    if name is not None:
        base += f"/{quote(name, safe='')}"
    if sub is not None:
        base += f"/{sub}"
    return base


class KubeClient:
    """Async access to the API server at `credentials.server`."""

    def __init__(self, credentials: Credentials) -> None:
        self._creds = credentials
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_connection(cls, info: Any, *, token_file: str | None = None) -> KubeClient:
        """From a kopf `ConnectionInfo` (its server, token, CA and client certificate)."""
        return cls(
            Credentials(
                server=str(info.server).rstrip("/"),
                token=info.token,
                token_file=token_file,
                ca_path=info.ca_path,
                ca_data=info.ca_data,
                insecure=bool(info.insecure),
                cert_path=info.certificate_path,
                key_path=info.private_key_path,
            )
        )

    def _ssl(self) -> ssl.SSLContext | bool:
        c = self._creds
        if not c.server.startswith("https"):
            return False
        if c.insecure:
            return False
        context = ssl.create_default_context(cafile=c.ca_path, cadata=c.ca_data.decode() if c.ca_data else None)
        if c.cert_path:
            context.load_cert_chain(c.cert_path, c.key_path)
        return context

    def _headers(self) -> dict[str, str]:
        token = self._creds.token
        if self._creds.token_file:
            token = Path(self._creds.token_file).read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _request(self, method: str, path: str, body: Any = None, content_type: str | None = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl()))
        headers = self._headers()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type or "application/json"
        try:
            async with self._session.request(
                method, self._creds.server + path, data=data, headers=headers, timeout=aiohttp.ClientTimeout(30)
            ) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    try:
                        message = str(json.loads(text).get("message", ""))[:300]
                    except (ValueError, AttributeError):
                        message = text[:300]
                    raise ApiError(resp.status, f"{method} {path}: {message}")
                return json.loads(text) if text else {}
        except aiohttp.ClientError as exc:
            raise ApiError(0, f"{method} {path}: {exc}") from exc

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none."""
        try:
            result: dict[str, Any] = await self._request("GET", _path(kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    async def list(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        try:
            result = await self._request("GET", _path(kind, namespace))
        except ApiError as exc:
            if exc.status == 404:
                return []
            raise
        items = result.get("items") or []
        for item in items:  # a list's items carry no kind; callers compare kinds
            item.setdefault("kind", kind)
        return [i for i in items if namespace is None or (i.get("metadata") or {}).get("namespace") == namespace]

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        result: dict[str, Any] = await self._request("POST", _path(obj["kind"], meta.get("namespace")), obj)
        return result

    async def patch(
        self, kind: str, namespace: str | None, name: str, patch: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386); `status`: of the status subresource."""
        path = _path(kind, namespace, name, "status" if status else None)
        result: dict[str, Any] = await self._request("PATCH", path, patch, "application/merge-patch+json")
        return result

    async def delete(self, kind: str, namespace: str | None, name: str) -> None:
        try:
            await self._request("DELETE", _path(kind, namespace, name))
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def apply(self, obj: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create `obj`, or merge it into the existing one; True when something was written. What an earlier
        `apply` set and `obj` no longer says is removed (`APPLIED_ANNOTATION` records what was set)."""
        obj = recorded(obj)
        meta = obj["metadata"]
        current = await self.get(obj["kind"], meta.get("namespace"), meta["name"])
        if current is not None:
            obj = with_removals(obj, current)
        if current is None:
            try:
                return await self.create(obj), True
            except ApiError as exc:
                if exc.status != 409:  # created meanwhile: merge into it
                    raise
                current = await self.get(obj["kind"], meta.get("namespace"), meta["name"]) or {}
        if contains(current, obj):
            return current, False
        return await self.patch(obj["kind"], meta.get("namespace"), meta["name"], obj), True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _leaves(obj: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The paths of `obj`'s values that are not mappings (or are empty ones): what a merge patch sets."""
    if isinstance(obj, Mapping) and obj:
        return {path for k, v in obj.items() for path in _leaves(v, (*prefix, str(k)))}
    return {prefix}


def recorded(obj: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` with the annotation that records the paths it sets."""
    paths = json.dumps(sorted(list(p) for p in _leaves(obj)), separators=(",", ":"))
    meta = dict(obj["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), APPLIED_ANNOTATION: paths}
    return {**obj, "metadata": meta}


def with_removals(desired: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """`desired` with `None` (a merge patch's removal) at each path an earlier `apply` recorded and `desired` no
    longer sets; `spec.replicas` excepted (not given: an autoscaler's, as in ToolHive)."""
    try:
        before = json.loads(((current.get("metadata") or {}).get("annotations") or {}).get(APPLIED_ANNOTATION, "[]"))
    except ValueError:
        return dict(desired)
    out: dict[str, Any] = copy.deepcopy(dict(desired))
    for path in before:
        if not isinstance(path, list) or not path or tuple(path) in _NEVER_REMOVED:
            continue
        node: Any = out
        for key in path[:-1]:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            if isinstance(node, dict) and path[-1] not in node:
                node[path[-1]] = None
            continue
        if isinstance(node, dict) and key not in node:
            node[key] = None  # the whole branch is gone
    return out


def contains(current: Any, desired: Any) -> bool:
    """Whether `current` already holds everything `desired` says (dicts: a subset; lists and scalars: equal)."""
    if isinstance(desired, Mapping):
        return isinstance(current, Mapping) and all(contains(current.get(k), v) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(current, list)
            and len(current) == len(desired)
            and all(contains(c, d) for c, d in zip(current, desired, strict=True))
        )
    return bool(current == desired)

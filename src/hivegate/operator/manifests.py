"""The manifests a gateway pod reads: the resource, rewritten for the pod, and what it references (never a Secret).

The ConfigMap the operator writes holds one key, `manifests.yaml`: the documents `hivegate run -f` (or `hivegate
vmcp serve -f`) reads in the pod, in this order:
- the resource itself (`apiVersion`, `kind`, `metadata.name/namespace/annotations`, `spec`), with the backend
  rewritten to where it runs in the cluster: an HTTP `image:` is the `mcp` container of the same pod
  (`spec.url: http://127.0.0.1:<port>/<mcp|sse>`); a stdio `image:` is the pod of its StatefulSet, reached through
  `pods/attach` (the annotation `hivegate.dev/attach: <namespace>/<pod>/<container>`);
- for a `VirtualMCPServer`: its `MCPGroup` and each member, as an `MCPServer` at the member's Service URL (what
  the member's own gateway serves), keeping its `externalAuthConfigRef` for `outgoingAuth.source: discovered`; a
  member whose upstream credential the vMCP applies is at its server instead (the Service's `mcp` port, or its
  `spec.url`), with its own `oidcConfig`/`oidcConfigRef`/`authzConfig` for the vMCP to enforce (`upstream`), and
  such a member's own gateway runs without that `externalAuthConfigRef`;
- the `MCPOIDCConfig`s, `MCPExternalAuthConfig`s and `ConfigMap`s referenced (their `spec` / `data` only).

Secrets stay out: the pod reads them from the volumes the Deployment mounts (`$HIVEGATE_SECRETS_DIR/<name>/<key>`).
`checksum(text)` is what the pod template's annotation carries, so a change of any of these rolls the pods.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from hivegate.vmcp.manifests.standalone import ATTACH_ANNOTATION

__all__ = ["ATTACH_ANNOTATION", "checksum", "clean", "dump", "spec_hash"]


def clean(obj: Mapping[str, Any], *, api_version: str | None = None) -> dict[str, Any]:
    """`obj` as written by its author: no status, no server-set metadata, no kopf or kubectl bookkeeping."""
    meta = obj.get("metadata") or {}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k.startswith("hivegate.dev/") and not k.startswith("hivegate.dev/kopf")
    }
    metadata: dict[str, Any] = {"name": meta.get("name"), "namespace": meta.get("namespace")}
    if annotations:
        metadata["annotations"] = annotations
    out: dict[str, Any] = {
        "apiVersion": api_version or obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": metadata,
    }
    for key in ("spec", "data"):
        if key in obj:
            out[key] = obj[key]
    return out


def dump(docs: Sequence[Mapping[str, Any]]) -> str:
    """The documents as one multi-document YAML text (stable: sorted keys)."""
    return yaml.safe_dump_all([dict(d) for d in docs], sort_keys=True, default_flow_style=False)


def checksum(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def spec_hash(obj: Mapping[str, Any]) -> str:
    """A config's `status.configHash`: SHA-256 of its `spec` (canonical JSON)."""
    return hashlib.sha256(json.dumps(obj.get("spec") or {}, sort_keys=True).encode()).hexdigest()

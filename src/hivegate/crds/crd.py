"""One kind's CustomResourceDefinition (apiextensions.k8s.io/v1) from its `Kind`: names, versions, columns, schema.

Both versions ToolHive's operator serves are served with the same schema: `v1beta1` is stored, `v1alpha1` (what
the seeds' manifests say) is served and marked deprecated, as ToolHive marks it. With one schema there is nothing to
convert, so the conversion strategy is `None`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hivegate.crds.schema import Node, obj, openapi, string

__all__ = ["GROUP", "SERVED", "STORED", "Column", "Kind", "crd", "file_name"]

GROUP = "toolhive.stacklok.dev"
STORED = "v1beta1"
SERVED = ("v1alpha1", "v1beta1")
_DEPRECATED = {"v1alpha1": f"{GROUP}/v1alpha1 is deprecated; use v1beta1"}


@dataclass(frozen=True, slots=True)
class Column:
    """A column of `kubectl get`."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""

    def openapi(self) -> dict[str, str]:
        described = {"description": self.description} if self.description else {}
        return {"name": self.name, "type": self.type, **described, "jsonPath": self.json_path}


READY = Column("Ready", ".status.conditions[?(@.type=='Ready')].status")
VALID = Column("Valid", ".status.conditions[?(@.type=='Valid')].status")
AGE = Column("Age", ".metadata.creationTimestamp", "date")
CHECKED = Column("Checked", ".status.conditions[?(@.type=='MCPServersChecked')].status")


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of resource: its names, its `spec` and `status` schemas, its `kubectl get` columns."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec: Node
    status: Node
    columns: tuple[Column, ...] = field(default=())

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"

    def schema(self) -> Node:
        """The whole object's schema, as `openAPIV3Schema` holds it (hivegate's own keys still in)."""
        return obj(
            self.description,
            {
                "apiVersion": string("The API group and version, toolhive.stacklok.dev/v1beta1 (or v1alpha1)."),
                "kind": string(self.kind),
                "metadata": {"type": "object"},
                "spec": self.spec,
                "status": self.status,
            },
        )


def crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition of `kind`, ready to be written as YAML."""
    schema = openapi(kind.schema())
    versions = []
    for version in SERVED:
        entry: dict[str, Any] = {"name": version, "served": True, "storage": version == STORED}
        if version in _DEPRECATED:
            entry["deprecated"] = True
            entry["deprecationWarning"] = _DEPRECATED[version]
        entry["subresources"] = {"status": {}}
        columns = kind.columns if any(c.name == AGE.name for c in kind.columns) else (*kind.columns, AGE)
        entry["additionalPrinterColumns"] = [c.openapi() for c in columns]
        entry["schema"] = {"openAPIV3Schema": schema}
        versions.append(entry)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.name,
            "labels": {"app.kubernetes.io/part-of": "hivegate"},
            "annotations": {"hivegate.dev/generated-by": "python -m hivegate.crds generate"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": ["toolhive"],
            },
            "scope": "Namespaced",
            "versions": versions,
        },
    }


def file_name(kind: Kind) -> str:
    """`deploy/crds/<file>`: the CRD's name, as ToolHive names its files."""
    return f"{GROUP}_{kind.plural}.yaml"

"""The CustomResourceDefinitions of ToolHive's kinds as hivegate reads them: `python -m hivegate.crds generate DIR`.

hivegate's operator takes the manifests ToolHive's operator takes (`toolhive.stacklok.dev`, `v1alpha1` and
`v1beta1`): `MCPServer`, `MCPRemoteProxy`, `VirtualMCPServer`, `MCPGroup`, `MCPExternalAuthConfig`,
`MCPOIDCConfig`. `KINDS` declares each kind's schema once, in Python (`schema` is the little language, `common`
the shared pieces, `servers`, `vmcp` and `configs` the kinds); `crd.crd(kind)` turns it into the CRD that
`deploy/crds/` holds, and `validate` checks a manifest against it offline as the API server would (the schema, the
defaults, the CEL rules).

Why the schema is declared here and held to the readers, not generated from them: hivegate reads manifests with
hand-written `Reader` code (`hivegate.vmcp.manifests`, `hivegate.authserver.settings`), which checks far more than a
schema can (URLs, references between resources, Secrets) and names the field in every error. Rewriting those readers
as models to generate a schema from would change every error message for the sake of the CRDs. Instead, the two are
kept from drifting by tests, both ways:
- `tests/unit/crds/test_crd_files.py`: the files in `deploy/crds/` equal what `generate` writes now;
- `tests/unit/crds/test_crd_drift.py`: the readers load a set of manifests (`tests/unit/crds/data/drift_*.yaml`,
  one resource per way of reading it) with `Reader` recording every field path it accepts; every path accepted is in
  the schema (or listed in the schema as local-only, such as a secret's value given as text), and every path of the
  schema is accepted by a reader (or lies below one a reader takes whole, such as `podTemplateSpec`). A field added
  to one side only fails that test, naming the path. Since a reader asks for every key it knows whether or not it is
  given, a field is caught as soon as its reader runs at all; a new way of reading (a new strategy `type`) needs a
  manifest of its own there, which the schema side forces: its block is "in the schema, accepted by no reader"
  until one is added;
- `tests/unit/crds/test_crd_validation.py`: those same manifests, and the seeds', are admitted by the CRDs.
"""

from __future__ import annotations

from hivegate.crds.configs import MCP_EXTERNAL_AUTH_CONFIG, MCP_OIDC_CONFIG
from hivegate.crds.crd import GROUP, SERVED, STORED, Kind, crd, file_name
from hivegate.crds.servers import MCP_REMOTE_PROXY, MCP_SERVER
from hivegate.crds.vmcp import MCP_GROUP, VIRTUAL_MCP_SERVER

__all__ = ["GROUP", "KINDS", "SERVED", "STORED", "Kind", "crd", "file_name", "kind_named"]

KINDS: tuple[Kind, ...] = (
    MCP_SERVER,
    MCP_REMOTE_PROXY,
    VIRTUAL_MCP_SERVER,
    MCP_GROUP,
    MCP_EXTERNAL_AUTH_CONFIG,
    MCP_OIDC_CONFIG,
)


def kind_named(name: str) -> Kind:
    """The `Kind` called `name` (`MCPServer`, …); `KeyError` for any other."""
    for kind in KINDS:
        if kind.kind == name:
            return kind
    raise KeyError(name)

"""The `MCPGroup` of a `VirtualMCPServer`: the group it names, and the group each `MCPServer` belongs to.

`GroupMixin._group` reads `spec.groupRef` (or `spec.config.groupRef`, which must agree) and checks that the
`MCPGroup` exists (its `spec` holds a `description` only); `_group_of` gives the group an `MCPServer`'s
`spec.groupRef` names, which makes it one of the vMCP's backends.
"""

from __future__ import annotations

from collections.abc import Mapping

from hivegate.config.reader import Reader
from hivegate.errors import ConfigError
from hivegate.vmcp.manifests.documents import BuilderBase, Doc

__all__ = ["GroupMixin"]


class GroupMixin(BuilderBase):
    """Reads the `MCPGroup` reference of a `VirtualMCPServer` and of each `MCPServer`."""

    def _group(self, spec: Reader, config: Reader) -> str:
        ref = spec.get("groupRef")
        name = ref.get("name") if isinstance(ref, Mapping) else ref
        if ref is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"{spec.at('groupRef')}: must be {{name: <MCPGroup>}}")
        from_config = config.text("groupRef")
        if name and from_config and name != from_config:
            raise ConfigError(f"{config.at('groupRef')}: {from_config!r} differs from spec.groupRef {name!r}")
        group = name or from_config
        if not group:
            raise ConfigError(f"{spec.at('groupRef')}: required")
        doc = self._lookup("MCPGroup", group, spec.at("groupRef"))
        g = Reader(doc.spec, f"{doc.origin}: spec")
        g.text("description")
        g.done()
        return str(group)

    @staticmethod
    def _group_of(doc: Doc) -> str | None:
        spec = doc.spec if isinstance(doc.spec, Mapping) else {}
        ref = spec.get("groupRef")
        name = ref.get("name") if isinstance(ref, Mapping) else ref
        return name if isinstance(name, str) else None

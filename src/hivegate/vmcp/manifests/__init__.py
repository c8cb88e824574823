"""Kubernetes-shaped manifests, run locally: ToolHive's vMCP resources turned into a `VMCPConfig`.

`load_manifests(paths)` reads files and folders (every `*.yaml`, `*.yml`, `*.json` below a folder, in name order;
`---`-separated documents) holding the resources as the ToolHive operator takes them, resolves the references
between them as the operator would, and returns the same `VMCPConfig` a vMCP config file gives. With several
`VirtualMCPServer`s, `name=` picks one. Errors read `<file>:doc<N> <Kind>/<name>: <field path>: <problem>`
(documents numbered from 1).

A map of the package, one module per kind:
- `virtualmcpserver`: `load_manifests` and the builder of one `VirtualMCPServer` (how its keys map);
- `documents`: reading the files and their YAML documents (the kinds read), and looking resources up by reference;
- `group`: the `MCPGroup` a `VirtualMCPServer` names, and the group of each `MCPServer`;
- `mcpserver`: how an `MCPServer` becomes a backend (a command annotation, a URL or a container image);
- `externalauth`: `spec.outgoingAuth` and the `MCPExternalAuthConfig`s it reaches;
- `oidcconfig`: `spec.incomingAuth`, the `MCPOIDCConfig` it names and its Cedar policies;
- `standalone` and `proxyfields`: one `MCPServer` or `MCPRemoteProxy` as its own gateway (`hivegate run -f`).
"""

from __future__ import annotations

from hivegate.vmcp.manifests.mcpserver import COMMAND_ANNOTATION, TRANSPORT_ANNOTATION
from hivegate.vmcp.manifests.virtualmcpserver import load_manifests

__all__ = ["COMMAND_ANNOTATION", "TRANSPORT_ANNOTATION", "load_manifests"]

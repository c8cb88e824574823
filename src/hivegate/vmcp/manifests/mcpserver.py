"""The backends of a `VirtualMCPServer`: each `MCPServer` of its group becomes a `BackendConfig`.

This module holds `MCPServerMixin`, which reads one `MCPServer` (the command annotation, `spec.url`, or `spec.image`
run with Docker or Podman, and the environment it gets), and the annotations that steer it.

How an `MCPServer` becomes a backend, first match wins:
1. annotation `hivegate.dev/command: "<command line>"` (split like a shell would, no shell run): hivegate starts it.
   With `hivegate.dev/transport` stdio (the default) it speaks MCP on stdin/stdout; with `sse` or
   `streamable-http` it must listen on `spec.url`.
2. `spec.url`: a server that is already running (`spec.transport` sse, else streamable-http).
3. `spec.image`: needs `docker` (or else `podman`) on PATH. stdio (`spec.transport`, default stdio) becomes the
   stdio backend `docker run -i --rm --network none … [-e NAME …] <image> <spec.args>` (the command line of
   `hivegate.backends.container`: read-only root, no network, as ToolHive's `none` profile); sse / streamable-http
   becomes a container
   backend (`ContainerSpec`) serving on `spec.mcpPort` (else `targetPort`, `port`, 8080), published on a port the
   runtime picks. With neither runtime, loading fails naming the resource and these alternatives.
`spec.env[{name, value}]` and `spec.secrets[{name, key, targetEnvName}]` become the process environment (passed to
the container as `-e NAME`, never on the command line).

`oidcConfig` / `oidcConfigRef` and `authzConfig` (same keys as on the `VirtualMCPServer`) are applied: the vMCP
checks every request it routes to this server as the server's own proxy would in ToolHive, on top of its own checks
(`hivegate.vmcp.ownproxy`): the credential the vMCP sends it (its outgoing auth) must be a bearer token this
`oidcConfig` accepts, or loading fails naming the server, and Cedar decides under the server's own tool, prompt
and resource names. The other fields that configure ToolHive's per-server proxy and pod (`audit`, `telemetry`,
`permissionProfile`, `resources`, `podTemplateSpec`, ports and the like) are not applied: the vMCP talks to the
server directly. Each one given is logged as a warning naming it, once per load, never silently dropped (a
`permissionProfile` that would open the network stays closed: an image runs without network).
`toolConfigRef` is not supported yet.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import shutil
from collections.abc import Mapping
from typing import Any

from hivegate.authserver.secrets import parse_secret_ref
from hivegate.backends.container import WORKLOAD_LABEL, ContainerRun, run_argv
from hivegate.config.reader import Reader
from hivegate.errors import ConfigError
from hivegate.vmcp.manifests.documents import Doc
from hivegate.vmcp.manifests.oidcconfig import OIDCConfigMixin
from hivegate.vmcp.spec import BackendConfig, ContainerSpec, backend_name, http_transport, http_url

__all__ = ["COMMAND_ANNOTATION", "TRANSPORT_ANNOTATION", "MCPServerMixin", "command_line_of"]

logger = logging.getLogger("hivegate.vmcp")

COMMAND_ANNOTATION = "hivegate.dev/command"
TRANSPORT_ANNOTATION = "hivegate.dev/transport"
_SERVER_PROXY_ONLY = ("audit", "telemetry", "telemetryConfigRef", "permissionProfile", "resources", "podTemplateSpec",
                      "resourceOverrides", "serviceAccount", "port", "targetPort", "proxyPort", "mcpPort", "proxyMode",
                      "volumes", "trustProxyHeaders", "authServerRef", "webhookConfigRef", "replicas",
                      "backendReplicas", "sessionStorage", "rateLimiting", "endpointPrefix", "sessionAffinity",
                      "imagePullSecrets")  # fmt: skip


class MCPServerMixin(OIDCConfigMixin):
    """Turns an `MCPServer` into a backend: started by hivegate, reached at its URL, or run in a container."""

    def _backend(self, doc: Doc) -> BackendConfig:
        s = Reader(doc.spec, f"{doc.origin}: spec")
        for key in _SERVER_PROXY_ONLY:
            if s.get(key) not in (None, "", {}, []):
                logger.warning("vmcp: %s: configures ToolHive's own proxy or pod of this server; behind a "
                               "VirtualMCPServer the vMCP talks to the server directly and does not apply it",
                               s.at(key))  # fmt: skip
        s.get("groupRef")
        s.get("externalAuthConfigRef")  # read by _outgoing
        own_auth = self._server_auth(s)  # enforced by the vMCP as its own proxy would (checked with outgoingAuth)
        if s.get("toolConfigRef") is not None:
            raise ConfigError(f"{s.at('toolConfigRef')}: MCPToolConfig is not supported yet; use aggregation.tools")
        name = backend_name(doc.name, f"{doc.origin}: metadata.name")
        url, image, transport = s.text("url"), s.text("image"), s.text("transport")
        env = self._environment(s) if command_line_of(doc) is not None or not url else _skip(s, "env", "secrets")
        args = tuple(s.strings("args"))
        annotations = doc.annotations
        command_line = command_line_of(doc)
        backend: BackendConfig
        if command_line is not None:
            where = f"{doc.origin}: metadata.annotations.{COMMAND_ANNOTATION}"
            try:
                argv = shlex.split(command_line) if isinstance(command_line, str) else []
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            if not argv:
                raise ConfigError(f"{where}: must be a command line")
            how = annotations.get(TRANSPORT_ANNOTATION) or "stdio"
            if how == "stdio":
                if url:
                    raise ConfigError(f"{s.at('url')}: not used with a stdio {COMMAND_ANNOTATION}")
                backend = BackendConfig(name, "stdio", command=argv[0], args=tuple(argv[1:]), env=env)
            else:
                at = f"{doc.origin}: metadata.annotations.{TRANSPORT_ANNOTATION}"
                if not url:
                    raise ConfigError(f"{s.at('url')}: required: where the {how} server started by the command listens")
                backend = BackendConfig(
                    name, http_transport(str(how), at), url=http_url(url, s.at("url")), command=argv[0],
                    args=tuple(argv[1:]), env=env,
                )  # fmt: skip
        elif url:
            backend = BackendConfig(name, http_transport(transport, s.at("transport")), url=http_url(url, s.at("url")))
        elif image:
            backend = self._container(doc, s, image, transport or "stdio", args, env)
        else:
            raise ConfigError(f"{s.at('image')}: required (or spec.url, or the annotation {COMMAND_ANNOTATION})")
        s.done()
        return dataclasses.replace(backend, own_auth=own_auth) if own_auth is not None else backend

    @staticmethod
    def _container(
        doc: Doc, s: Reader, image: str, transport: str, args: tuple[str, ...], env: Mapping[str, str]
    ) -> BackendConfig:
        runtime = shutil.which("docker") or shutil.which("podman")
        if runtime is None:
            raise ConfigError(
                f"{s.at('image')}: running {image!r} needs docker or podman on PATH, and neither was found; "
                f"set spec.url to where the server already runs, or the annotation {COMMAND_ANNOTATION} to a local "
                "command that starts it"
            )
        if transport == "stdio":
            run = ContainerRun(runtime, image, args, tuple(env), network="none")
            argv = run_argv(run, labels=[(WORKLOAD_LABEL, doc.name)])
            return BackendConfig(doc.name, "stdio", command=runtime, args=tuple(argv[1:]), env=env)
        port = next((s.get(k) for k in ("mcpPort", "targetPort", "port") if s.get(k) is not None), 8080)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError(f"{s.where}: the server's port must be a number between 1 and 65535, got {port!r}")
        container = ContainerSpec(runtime, image, port, args, env)
        return BackendConfig(doc.name, http_transport(transport, s.at("transport")), container=container)

    def _environment(self, s: Reader) -> dict[str, str]:
        env: dict[str, str] = {}
        for i, item in enumerate(s.items("env")):
            e = Reader(item, f"{s.at('env')}[{i}]")
            if e.get("valueFrom") is not None:
                raise ConfigError(f"{e.at('valueFrom')}: not supported; use spec.secrets for Secret values")
            env[e.text("name", required=True)] = e.text("value")
            e.done()
        for i, item in enumerate(s.items("secrets")):
            at = f"{s.at('secrets')}[{i}]"
            e = Reader(item, at)
            ref = {"name": e.text("name", required=True), "key": e.text("key", required=True)}
            env[e.text("targetEnvName") or ref["key"]] = self._resolver.resolve_text(parse_secret_ref(ref, at), at)
            e.done()
        return env


def command_line_of(doc: Doc) -> Any:
    """The `hivegate.dev/command` annotation, or None."""
    return doc.annotations.get(COMMAND_ANNOTATION)


def _skip(r: Reader, *keys: str) -> dict[str, str]:
    """Mark keys as read that mean nothing for this backend (the environment of a server hivegate does not start)."""
    for key in keys:
        r.get(key)
    return {}

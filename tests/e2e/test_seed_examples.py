"""The seeds' examples (../shared/seeds) that no other test runs, run as written, through real `hivegate` processes.

What is changed from the seed's text, and why, is said at each example: URLs of identity providers become a local
issuer (`support.issuer.local_issuer`, which signs the callers' tokens, or the npm `oidc-provider` of
`e2e.oidc_provider` where opaque tokens need introspection), and because that issuer is plain http on 127.0.0.1 its
config gains `insecureAllowHTTP` and `jwksAllowPrivateIP` (`--oidc-insecure-allow-http`, `--jwks-allow-private-ip`
on a command line); images run the repo's stdio fixture, through the `hivegate.dev/command` annotation or the fake
container runtime `support.fake_runtime` installed as `docker`; secrets' values are the stand-in IdP's; fixed ports
become free ones. Where each seed example is run is in tests/e2e/seeds/README.md.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from e2e.oidc_provider import MACHINE_CLIENT, start_oidc_provider, web_client
from e2e.test_run_manifest import COMMAND, call, text
from support import fake_runtime
from support.backend import free_port
from support.gateway import FIXTURE, hivegate_process
from support.issuer import local_issuer

pytestmark = [pytest.mark.e2e]

LOOPBACK_ISSUER = ("--oidc-insecure-allow-http", "--jwks-allow-private-ip")  # the stand-in issuer is http://127.0.0.1
_RUNNING = re.compile(r"^(?P<name>\S+): running at (?P<url>\S+) \(pid (?P<pid>\d+)\)$")


class CLI:
    """The `hivegate` command with a state directory of its own; stops every workload it started at the end."""

    def __init__(self, state: Path, env: dict[str, str] | None = None) -> None:
        self.env = {**os.environ, "HIVEGATE_STATE_DIR": str(state), **(env or {})}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "hivegate", *args]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=90, check=False)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    async def started(self, *args: str) -> dict[str, str]:
        """Run `hivegate ARGS` (a background start) in a thread, so that a stand-in issuer on this event loop
        answers meanwhile; the URL of each workload it says is running, by name."""
        done = await anyio.to_thread.run_sync(lambda: self(*args))
        assert done.returncode == 0, done.stderr
        found = {m["name"]: m["url"] for line in done.stdout.splitlines() if (m := _RUNNING.match(line))}
        assert found, done.stdout
        return found


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[CLI]:
    runner = CLI(tmp_path / "state")
    yield runner
    runner("stop", "--all", "--timeout", "5s")


async def acall(url: str, token: str | None, tool: str, arguments: dict[str, Any] | None = None) -> httpx.Response:
    """`call` in a thread: the gateway may fetch the stand-in issuer's keys, served on this event loop, meanwhile."""
    return await anyio.to_thread.run_sync(lambda: call(url, token, tool, arguments))


# -- seeds/004: the blog post's `thv run` line and pod spec --------------------------------------------------------


@pytest.mark.anyio
async def test_seed_004_thv_run_with_oidc_flags(cli: CLI) -> None:
    """`thv run --oidc-audience "some-audience" --oidc-client-id "some-client" --oidc-issuer … --oidc-jwks-url …
    $MY_MCP_SERVER`, as a shell would split it. Stand-ins: the issuer (its trailing slash kept: tokens carry the
    same `iss`) and its JWKS URL; `$MY_MCP_SERVER` is the stdio fixture (`-- python stdio_server.py`)."""
    async with local_issuer() as issuer:
        line = (f'run --oidc-audience "some-audience" --oidc-client-id "some-client" --oidc-issuer {issuer.url}/ '
                f"--oidc-jwks-url {issuer.jwks_url} {' '.join(LOOPBACK_ISSUER)} -- {COMMAND}")  # fmt: skip
        [(name, url)] = (await cli.started(*shlex.split(line))).items()
        assert name == "stdio-server"  # named after the command, as thv names a workload after its image
        token = issuer.token("some-audience", iss=f"{issuer.url}/")
        assert text(await acall(url, token, "echo", {"text": "hello"})) == "hello"
        assert (await acall(url, None, "echo")).status_code == 401
        assert (await acall(url, issuer.token("some-audience"), "echo")).status_code == 401  # `iss` without the slash


POD_ARGS = """
        - run
        - --foreground=true
        - --port=8080
        - --transport=stdio
        - --name=mcp-everything
        - --oidc-audience "toolhive"
        - --oidc-issuer=https://kubernetes.default.svc
        - --oidc-client-id=my-service.mcp-servers.svc.cluster.local
        - --oidc-jwks-url=https://kubernetes.default.svc/openid/v1/jwks
        - docker.io/mcp/everything
"""


def pod_args() -> list[str]:
    """The pod spec's `args`, as Kubernetes hands them to the container: one argument per list item."""
    return [line.strip().removeprefix("- ") for line in POD_ARGS.strip().splitlines()]


def test_seed_004_pod_spec_args_say_what_is_wrong_with_the_quoted_flag(tmp_path: Path) -> None:
    """Verbatim, the pod's arguments hold `--oidc-audience "toolhive"` as one argument: refused, naming it."""
    done = CLI(tmp_path / "state")(*pod_args())
    assert done.returncode == 2
    assert done.stderr == (
        "hivegate run: error: argument '--oidc-audience \"toolhive\"' is a flag and its value in one argument; "
        "did you mean --oidc-audience=toolhive?\n"
    )


@pytest.mark.anyio
async def test_seed_004_pod_spec_args_run_the_image_in_the_foreground(tmp_path: Path) -> None:
    """The same arguments with the fix the refusal suggests. Stand-ins: the cluster's issuer and JWKS URLs, port
    8080 (a free port), and `docker` (the fake runtime, which runs the fixture as docker.io/mcp/everything)."""
    bin_dir = tmp_path / "bin"
    fake_runtime.install(bin_dir, "docker")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_RUNTIME_LOG": str(tmp_path / "runtime.log"),
           "FAKE_RUNTIME_STATE": str(tmp_path / "containers")}  # fmt: skip
    port = free_port()
    async with local_issuer() as issuer:
        args = [arg.replace('--oidc-audience "toolhive"', "--oidc-audience=toolhive") for arg in pod_args()]
        args = [arg.replace("https://kubernetes.default.svc/openid/v1/jwks", issuer.jwks_url) for arg in args]
        args = [arg.replace("https://kubernetes.default.svc", issuer.url) for arg in args]
        args = [arg.replace("--port=8080", f"--port={port}") for arg in args]
        args[-1:-1] = LOOPBACK_ISSUER
        async with hivegate_process(args, env=env) as gateway:
            assert gateway.url == f"http://127.0.0.1:{port}/mcp"
            token = issuer.token("toolhive", sub="system:serviceaccount:mcp-servers:my-service")
            assert text(await acall(gateway.url, token, "echo", {"text": "from a pod"})) == "from a pod"
            assert (await acall(gateway.url, None, "echo")).status_code == 401
    runs = [argv for argv in fake_runtime.recorded(tmp_path / "runtime.log") if argv[:1] == ["run"]]
    assert runs
    assert runs[0][-1] == "docker.io/mcp/everything"


# -- seeds/001: the external IdP and the shared OIDC ConfigMap, each an MCPServer of `run -f` ----------------------


def seed_001_external_and_shared(issuer: str) -> str:
    """seeds/001 "Set up external identity provider authentication" step 1 and "Set up shared OIDC configuration"
    steps 1 and 2, verbatim but for the stand-ins: the annotation (the image), the issuer's URLs, the two loopback
    keys."""
    return f"""
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata:
  name: weather-server-external
  namespace: toolhive-system
  annotations: {{hivegate.dev/command: "{COMMAND}"}}
spec:
  image: ghcr.io/stackloklabs/weather-mcp/server
  transport: sse
  port: 8080
  permissionProfile:
    type: builtin
    name: network
  # Authentication configuration for external IdP
  oidcConfig:
    type: inline
    inline:
      issuer: '{issuer}'
      audience: 'your-audience'
      clientId: 'your-client-id'
      jwksUrl: '{issuer}/jwks'
      insecureAllowHTTP: true
      jwksAllowPrivateIP: true
  resources:
    limits:
      cpu: '100m'
      memory: '128Mi'
    requests:
      cpu: '50m'
      memory: '64Mi'
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: shared-oidc-config
  namespace: toolhive-system
data:
  oidc.json: |
    {{
      "issuer": "{issuer}",
      "audience": "https://mcp.example.com",
      "clientId": "shared-client-id",
      "jwksUrl": "{issuer}/jwks",
      "insecureAllowHTTP": true,
      "jwksAllowPrivateIP": true
    }}
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata:
  name: weather-server-shared-oidc
  namespace: toolhive-system
  annotations: {{hivegate.dev/command: "{COMMAND}"}}
spec:
  image: ghcr.io/stackloklabs/weather-mcp/server
  transport: sse
  port: 8080
  permissionProfile:
    type: builtin
    name: network
  # Reference shared OIDC configuration
  oidcConfig:
    type: configMap
    configMap:
      name: shared-oidc-config
      key: oidc.json
  resources:
    limits:
      cpu: '100m'
      memory: '128Mi'
    requests:
      cpu: '50m'
      memory: '64Mi'
"""


@pytest.mark.anyio
async def test_seed_001_external_idp_and_shared_oidc_configmap(cli: CLI, tmp_path: Path) -> None:
    """Both MCPServers from one folder, each a background workload. Both say `port: 8080`, which two processes on
    one machine cannot share (in Kubernetes each pod has its own): each is started with `--resource NAME --port 0`
    for a free port."""
    async with local_issuer() as issuer:
        folder = tmp_path / "manifests"
        folder.mkdir()
        (folder / "servers.yaml").write_text(seed_001_external_and_shared(issuer.url))
        urls = {}
        for name in ("weather-server-external", "weather-server-shared-oidc"):
            urls |= await cli.started("run", "-f", str(folder), "--resource", name, "--port", "0")
        assert sorted(urls) == ["weather-server-external", "weather-server-shared-oidc"]
        for name, audience in (("weather-server-external", "your-audience"),
                               ("weather-server-shared-oidc", "https://mcp.example.com")):  # fmt: skip
            url = urls[name]
            answer = await acall(url, issuer.token(audience), "weather", {"city": "Lisbon"})
            assert text(answer) == "sunny in Lisbon"
            assert (await acall(url, None, "weather")).status_code == 401
            assert (await acall(url, issuer.token("another-audience"), "weather")).status_code == 401


# -- seeds/000: the VirtualMCPServer's incoming authentication ------------------------------------------------------

GROUP_AND_BACKEND = f"""
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPGroup
metadata: {{name: tools, namespace: toolhive-system}}
spec:
  description: Tools behind the vMCP
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata:
  name: fixture
  namespace: toolhive-system
  annotations: {{hivegate.dev/command: "{sys.executable} {FIXTURE}"}}
spec:
  groupRef: tools
  image: localhost/fixture
"""


def vmcp(name: str, spec: str) -> str:
    """A VirtualMCPServer around one of seeds/000's `spec:` fragments (indented as in the seed), with the group
    and backend it needs (added)."""
    head = "apiVersion: toolhive.stacklok.dev/v1alpha1\nkind: VirtualMCPServer\n"
    head += f"metadata: {{name: {name}, namespace: toolhive-system}}\n"
    return head + "spec:\n  groupRef: {name: tools}\n" + spec + "---\n" + GROUP_AND_BACKEND


@pytest.mark.anyio
async def test_seed_000_anonymous_and_inline_oidc_incoming_auth(tmp_path: Path) -> None:
    """ "Anonymous" verbatim; "OIDC authentication" with the issuer's URL (and `<YOUR_CLIENT_ID>`) stood in."""
    anonymous = tmp_path / "anonymous.yaml"
    anonymous.write_text(vmcp("anonymous", "  incomingAuth:\n    type: anonymous\n"))
    async with hivegate_process(["vmcp", "serve", "-f", str(anonymous), "--port", "0"]) as gateway:
        assert text(call(gateway.url, None, "fixture_echo", {"text": "anyone"})) == "anyone"
    async with local_issuer() as issuer:
        oidc = tmp_path / "oidc.yaml"
        oidc.write_text(vmcp("oidc-inline", f"""  incomingAuth:
    type: oidc
    oidcConfig:
      type: inline
      inline:
        issuer: {issuer.url}
        clientId: vmcp-client
        audience: vmcp
        insecureAllowHTTP: true
        jwksAllowPrivateIP: true
"""))  # fmt: skip
        async with hivegate_process(["vmcp", "serve", "-f", str(oidc), "--port", "0"]) as gateway:
            signed = await acall(gateway.url, issuer.token("vmcp"), "fixture_echo", {"text": "signed"})
            assert text(signed) == "signed"
            assert (await acall(gateway.url, issuer.token("another"), "fixture_echo")).status_code == 401
            assert (await acall(gateway.url, None, "fixture_echo")).status_code == 401


@pytest.mark.anyio
async def test_seed_000_opaque_tokens_with_client_secret_ref(tmp_path: Path) -> None:
    """ "OIDC authentication" with `clientSecretRef` and the Secret, for an IdP that issues opaque tokens: the
    introspection endpoint comes from the issuer's discovery. Stand-ins: the npm `oidc-provider` (its issuer, its
    client `hivegate-machine` and that client's secret); the audience is the vMCP's URL, since oidc-provider issues
    opaque tokens only for a URL resource."""
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    redirect = "http://127.0.0.1:9/callback"
    clients = [MACHINE_CLIENT, web_client("mcp-client", [redirect])]
    async with start_oidc_provider(clients=clients, opaque_resources=[resource]) as idp:
        manifests = tmp_path / "vmcp.yaml"
        manifests.write_text(vmcp("oidc-introspection", f"""  incomingAuth:
    type: oidc
    oidcConfig:
      type: inline
      inline:
        issuer: {idp.issuer}
        clientId: hivegate-machine
        audience: {resource}
        clientSecretRef:
          name: oidc-client-secret
          key: clientSecret
        insecureAllowHTTP: true
        jwksAllowPrivateIP: true
""") + """---
apiVersion: v1
kind: Secret
metadata:
  name: oidc-client-secret
  namespace: toolhive-system
type: Opaque
stringData:
  clientSecret: machine-secret
""")  # fmt: skip
        async with hivegate_process(["vmcp", "serve", "-f", str(manifests), "--port", str(port)]) as gateway:
            tokens = await idp.authorization_code_token("mcp-client", redirect, resource=resource)
            token = tokens["access_token"]
            assert token.count(".") != 2  # opaque: only introspection can tell
            assert text(call(gateway.url, token, "fixture_echo", {"text": "introspected"})) == "introspected"
            assert call(gateway.url, "not-a-token", "fixture_echo").status_code == 401


# -- seeds/002: the checks of "Manual verification with curl" on a vMCP with its embedded authorization server -----


@pytest.mark.anyio
async def test_seed_002_curl_checks_on_a_vmcp_with_an_embedded_authorization_server(tmp_path: Path) -> None:
    """seeds/002 gives no manifest, only what to set (audience and resourceUrl, authServerConfig.issuer,
    upstreamProviders[0].clientId, its clientSecretRef, redirectUri): those, with the local issuer as Okta and
    `localhost:9091` (kubectl port-forward) as a free port on 127.0.0.1. Both curl lines, as the seed expects."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with local_issuer() as okta:
        manifests = tmp_path / "vmcp.yaml"
        manifests.write_text(vmcp("engineering-tools", f"""  incomingAuth:
    type: oidc
    oidcConfig:
      type: inline
      resourceUrl: {base}/mcp
      inline:
        issuer: {base}
        audience: {base}/mcp
        insecureAllowHTTP: true
        jwksAllowPrivateIP: true
  authServerConfig:
    issuer: {base}
    upstreamProviders:
      - name: okta
        type: oidc
        oidcConfig:
          issuerUrl: {okta.url}
          clientId: engineering-tools-client
          clientSecretRef: {{name: okta-engineering-tools, key: client-secret}}
          redirectUri: {base}/oauth/callback
""") + """---
apiVersion: v1
kind: Secret
metadata: {name: okta-engineering-tools, namespace: toolhive-system}
type: Opaque
stringData:
  client-secret: okta-secret-value
""")  # fmt: skip
        async with (
            hivegate_process(["vmcp", "serve", "-f", str(manifests), "--port", str(port)]),
            httpx.AsyncClient(timeout=10) as http,
        ):
            # curl -s http://localhost:9091/.well-known/oauth-authorization-server | jq .
            metadata = await http.get(f"{base}/.well-known/oauth-authorization-server")
            assert metadata.status_code == 200
            assert metadata.json()["issuer"] == base
            assert metadata.json()["registration_endpoint"] == f"{base}/oauth/register"
            # curl -s -o /dev/null -w "%{http_code}" http://localhost:9091/mcp
            assert (await http.get(f"{base}/mcp")).status_code == 401


# -- seeds/001: "Set up embedded authorization server authentication", steps 1 to 5 --------------------------------

SEED_001_EMBEDDED = """
apiVersion: v1
kind: Secret
metadata:
  name: upstream-idp-secret
  namespace: toolhive-system
type: Opaque
stringData:
  client-secret: '{upstream_secret}'
---
apiVersion: v1
kind: Secret
metadata:
  name: auth-server-signing-key
  namespace: toolhive-system
type: Opaque
stringData:
  signing-key: |
{signing_key}
---
apiVersion: v1
kind: Secret
metadata:
  name: auth-server-hmac-secret
  namespace: toolhive-system
type: Opaque
stringData:
  hmac-key: '{hmac_key}'
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPExternalAuthConfig
metadata:
  name: embedded-auth-server
  namespace: toolhive-system
spec:
  type: embeddedAuthServer
  embeddedAuthServer:
    issuer: '{base}'
    signingKeySecretRefs:
      - name: auth-server-signing-key
        key: signing-key
    hmacSecretRefs:
      - name: auth-server-hmac-secret
        key: hmac-key
    tokenLifespans:
      accessTokenLifespan: '1h'
      refreshTokenLifespan: '168h'
      authCodeLifespan: '10m'
    upstreamProviders:
      - name: okta
        type: oidc
        oidcConfig:
          issuerUrl: '{okta}'
          clientId: '{okta_client}'
          clientSecretRef:
            name: upstream-idp-secret
            key: client-secret
          scopes:
            - openid
            - offline_access
            - profile
            - email
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata:
  name: weather-server-embedded
  namespace: toolhive-system
  annotations: {{hivegate.dev/command: "{command}"}}
spec:
  image: ghcr.io/stackloklabs/weather-mcp/server
  transport: streamable-http
  port: 8080
  permissionProfile:
    type: builtin
    name: network
  # Reference the embedded authorization server configuration
  externalAuthConfigRef:
    name: embedded-auth-server
  # Validate JWTs issued by the embedded authorization server
  oidcConfig:
    type: inline
    resourceUrl: '{base}/mcp'
    inline:
      issuer: '{base}'
  resources:
    limits:
      cpu: '100m'
      memory: '128Mi'
    requests:
      cpu: '50m'
      memory: '64Mi'
"""


def openssl(*args: str, cwd: Path) -> str:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.anyio
async def test_seed_001_embedded_authorization_server_as_written(tmp_path: Path) -> None:
    """The keys are made by the seed's own commands (`openssl genpkey …`, `openssl rand -base64 32`). Stand-ins:
    `https://mcp.example.com` is the gateway on 127.0.0.1, Okta is the npm `oidc-provider` (its client and secret in
    place of the placeholders), port 8080 a free one. Then "Test embedded authorization server authentication": the
    discovery endpoint answers, a call without a token gets 401, and an MCP client logs in and calls a tool."""
    from e2e.test_embedded_auth_server import Browser, MemoryTokens, sdk_client

    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "signing-key.pem", cwd=tmp_path)
    pem = (tmp_path / "signing-key.pem").read_text()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    okta_client = web_client("okta-client", [f"{base}/oauth/callback"], secret="okta-client-secret")
    async with start_oidc_provider(clients=[okta_client]) as okta:
        manifests = tmp_path / "embedded.yaml"
        manifests.write_text(SEED_001_EMBEDDED.format(
            upstream_secret="okta-client-secret", signing_key="\n".join("    " + line for line in pem.splitlines()),
            hmac_key=openssl("rand", "-base64", "32", cwd=tmp_path), base=base, okta=okta.issuer,
            okta_client="okta-client", command=COMMAND,
        ))  # fmt: skip
        async with hivegate_process(["run", "--foreground", "-f", str(manifests), "--port", str(port)]) as gateway:
            async with httpx.AsyncClient(timeout=10) as http:
                metadata = await http.get(f"{base}/.well-known/oauth-authorization-server")
                assert metadata.json()["issuer"] == base
                assert (
                    await http.post(gateway.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
                ).status_code == 401
            browser, storage = Browser(), MemoryTokens()
            async with sdk_client(gateway.url, browser, storage) as client:
                result = await client.call_tool("weather", {"city": "Oslo"})
                assert result.content[0].text == "sunny in Oslo"  # type: ignore[union-attr]

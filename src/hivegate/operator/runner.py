"""`hivegate operator`: log in, wait for leadership, serve `/healthz` and `/metrics`, run kopf until stopped.

Credentials: inside a pod the service account (its token file read on every request); else the kubeconfig
(`$KUBECONFIG` or ~/.kube/config), both through kopf's own login helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hivegate.errors import ConfigError
from hivegate.operator.health import OperatorMetrics, serve_health
from hivegate.operator.kube import KubeClient
from hivegate.operator.lease import LeaderElector
from hivegate.operator.objects import Settings
from hivegate.operator.reconcile import Reconciler

__all__ = ["OperatorOptions", "connect", "run_operator"]

logger = logging.getLogger("hivegate.operator")
_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 (a path)


@dataclass(frozen=True, slots=True)
class OperatorOptions:
    namespaces: Sequence[str] = ()  # none: the whole cluster
    settings: Settings = field(default_factory=Settings)
    health_host: str = "0.0.0.0"
    health_port: int = 8081
    leader_election: bool = True
    lease_namespace: str | None = None
    lease_name: str = "hivegate-operator"
    resync: float = 60.0
    exit_timeout: float = 2.0  # on stop: how long kopf's workers may finish what they have queued


def connect() -> tuple[Any, KubeClient]:
    """How kopf logs in (a `ConnectionInfo`, or a function giving a fresh one) and the client to the cluster this
    process is in (or its kubeconfig names)."""
    import kopf

    if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(_TOKEN_FILE):
        info = kopf.login_with_service_account(settings=kopf.OperatorSettings())
        if info is not None:  # kopf logs in again on a 401: the kubelet has rotated the token file by then

            def fresh() -> Any:
                return kopf.login_with_service_account(settings=kopf.OperatorSettings())

            return fresh, KubeClient.from_connection(info, token_file=_TOKEN_FILE)
    try:
        info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a kubeconfig that is missing or not one
        where = os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ConfigError(f"kubeconfig {where}: {getattr(exc, 'strerror', None) or exc}") from None
    if info is None:
        raise ConfigError("no cluster to talk to: not in a pod, and no kubeconfig ($KUBECONFIG, ~/.kube/config)")
    return info, KubeClient.from_connection(info)


async def run_operator(
    options: OperatorOptions,
    connection: Any,
    api: KubeClient,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run until `stop` is set (or the process is signalled, or leadership is lost)."""
    import kopf

    from hivegate.operator.handlers import build_registry

    metrics = OperatorMetrics()
    reconciler = Reconciler(api, options.settings, metrics)
    registry = build_registry(reconciler, connection)
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # the reconciler posts its own Events, each naming what happened and why
    settings.watching.server_timeout = 300
    settings.batching.exit_timeout = options.exit_timeout
    operator: asyncio.Task[None] | None = None

    def alive() -> bool:
        return operator is None or not operator.done()

    runner, port = await serve_health(options.health_host, options.health_port, metrics, alive)
    logger.info("operator: /healthz and /metrics on port %d", port)
    elector = None
    if options.leader_election:
        namespace = options.lease_namespace or _own_namespace() or "default"
        elector = LeaderElector(api, namespace, options.lease_name, f"{socket.gethostname()}-{os.getpid()}")
        logger.info("operator: waiting to lead (Lease %s/%s)", namespace, options.lease_name)
        await elector.acquire()
        metrics.leader.set(1)
    flag = stop or asyncio.Event()
    kopf_stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    # our own tasks first: kopf, stopping, waits for the tasks started after it (all of the loop's, not only its)
    waits: list[asyncio.Task[Any]] = [
        asyncio.create_task(flag.wait()),
        asyncio.create_task(_resync(reconciler, options)),
    ]
    if elector is not None:
        waits.append(asyncio.create_task(elector.hold()))
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=settings,
            standalone=True,
            clusterwide=not options.namespaces,
            namespaces=list(options.namespaces),
            stop_flag=kopf_stop,
            ready_flag=ready,
        )
    )
    try:
        await asyncio.wait([operator, *waits], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not kopf_stop.done():
            kopf_stop.set_result(None)
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(operator, 10)
        for task in waits:
            task.cancel()
        if elector is not None:
            metrics.leader.set(0)
            with contextlib.suppress(Exception):
                await elector.release()
        await runner.cleanup()
        await api.close()


async def _resync(reconciler: Reconciler, options: OperatorOptions) -> None:
    namespaces: list[str | None] = list(options.namespaces) or [None]
    while True:
        await asyncio.sleep(options.resync)
        try:
            await reconciler.resync(namespaces)
        except Exception:
            logger.exception("operator: resync failed; next in %ss", options.resync)


def _own_namespace() -> str | None:
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None

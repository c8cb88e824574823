"""An emulated Kubernetes API (`kmock`) with the operator's kinds, and the real operator running against it.

`emulated_cluster()` starts kmock's `KubernetesEmulator` on 127.0.0.1 with every resource the operator reads or
writes registered (verbs, `namespaced`, the `status` subresource of ToolHive's kinds). `running_operator(url)` runs
`hivegate operator`'s entry point in process (kopf's `operator()` through `run_operator`) until the block ends.
`until(check)` waits for a condition with a deadline (the operator works asynchronously; no fixed sleeps).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hivegate.operator.kube import KINDS, KubeClient
from hivegate.operator.objects import Settings
from hivegate.operator.runner import OperatorOptions, run_operator

T = TypeVar("T")
SEEDS = Path(__file__).parent.parent / "unit" / "vmcp_config" / "data"
_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


def _emulator() -> Any:
    import kmock

    class Emulator(kmock.KubernetesEmulator):  # type: ignore[misc]
        """kmock's emulator without its request log: matching a request walks the whole log (quadratic); these
        tests look at the objects, never at the log."""

        async def _handle(self, request: Any) -> Any:
            del self._requests[:-1]
            return await super()._handle(request)

    return Emulator()


async def _serve(started: concurrent.futures.Future[str], stop: asyncio.Event) -> None:
    import kmock

    async with _emulator() as k8s, kmock.Server(k8s):
        for kind, (api_version, plural, namespaced) in KINDS.items():
            subresources = {"status"} if api_version.startswith("toolhive") else set()
            k8s.resources[f"{api_version}/{plural}"] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, verbs=_VERBS, subresources=subresources
            )
        # what kopf watches for itself: CRDs (new resources) and namespaces
        k8s.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
            kind="CustomResourceDefinition", namespaced=False, verbs=_VERBS
        )
        k8s.resources["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", namespaced=False, verbs=_VERBS)
        started.set_result(str(k8s.url).rstrip("/"))
        await stop.wait()


@asynccontextmanager
async def emulated_cluster() -> AsyncIterator[str]:
    """kmock's API server on a thread and event loop of its own (as a real one would be: kopf, stopping, waits
    for every task of its loop); yields its URL."""
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[str] = concurrent.futures.Future()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(_serve(started, stop),), daemon=True)
    thread.start()
    try:
        yield await asyncio.wrap_future(started)
    finally:
        loop.call_soon_threadsafe(stop.set)
        await asyncio.to_thread(thread.join, 20)
        loop.close()


def client_for(url: str) -> tuple[Any, KubeClient]:
    import kopf

    info = kopf.ConnectionInfo(server=url, insecure=True)
    return info, KubeClient.from_connection(info)


@asynccontextmanager
async def running_operator(
    url: str, settings: Settings | None = None, *, health_port: int = 0
) -> AsyncIterator[KubeClient]:
    """The operator against the API at `url` until the block ends; yields a client of the tests' own."""
    info, api = client_for(url)
    _, own = client_for(url)
    options = OperatorOptions(
        settings=settings or Settings(image="hivegate:test"),
        health_host="127.0.0.1",
        health_port=health_port,
        leader_election=False,
        resync=3600,
        exit_timeout=0.1,
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    # kopf logs in through a function, as in a pod (where it reads the rotated token anew)
    task = asyncio.create_task(run_operator(options, lambda: info, api, stop=stop, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 20)
        yield own
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await own.close()


async def until(check: Callable[[], Awaitable[T | None]], *, timeout: float = 15.0, what: str = "") -> T:
    """The first truthy result of `check()`, polled until `timeout` (AssertionError naming `what` then)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


def seed_docs(name: str) -> list[dict[str, Any]]:
    """The documents of a seed file, as the API server serves them (the stored version, v1beta1)."""
    docs = [d for d in yaml.safe_load_all((SEEDS / name).read_text()) if d]
    for d in docs:
        if str(d.get("apiVersion", "")).startswith("toolhive.stacklok.dev/"):
            d["apiVersion"] = "toolhive.stacklok.dev/v1beta1"
        d.setdefault("metadata", {}).setdefault("namespace", "default")
        d["metadata"].setdefault("generation", 1)
        d["metadata"].setdefault("uid", f"uid-{d['kind']}-{d['metadata']['name']}")
    return docs


async def apply_docs(api: KubeClient, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["kind"] in KINDS:
            await api.create(doc)

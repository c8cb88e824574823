"""Parts of the operator against the emulated API without kopf: leader election over a Lease, config validation,
an MCPRemoteProxy's objects, readiness."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from hivegate.operator.lease import LeaderElector
from hivegate.operator.reconcile import Reconciler
from support.cluster import client_for, emulated_cluster

pytestmark = pytest.mark.anyio
NS = "tools"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


async def test_one_replica_leads_until_its_lease_expires() -> None:
    clock = Clock()
    async with emulated_cluster() as url:
        _, api = client_for(url)
        first = LeaderElector(api, NS, "hivegate-operator", "pod-a", duration=15, clock=clock)
        second = LeaderElector(api, NS, "hivegate-operator", "pod-b", duration=15, clock=clock)
        assert await first.try_acquire()
        assert not await second.try_acquire()
        clock.now += datetime.timedelta(seconds=10)
        assert await first.try_acquire()  # renewed
        clock.now += datetime.timedelta(seconds=10)
        assert not await second.try_acquire()  # 10 s after the renewal: still held
        clock.now += datetime.timedelta(seconds=6)
        assert await second.try_acquire()  # expired: taken over
        lease = await api.get("Lease", NS, "hivegate-operator")
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == "pod-b"
        assert lease["spec"]["leaseTransitions"] == 1
        assert not await first.try_acquire()
        await second.release()
        assert await first.try_acquire()  # released: no need to wait for it to expire
        await api.close()


def _oidc(name: str, inline: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": name, "namespace": NS, "generation": 2}
    return {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPOIDCConfig", "metadata": meta,
            "spec": {"type": "inline", "inline": inline}}  # fmt: skip


async def test_configs_are_validated_with_hivegates_readers() -> None:
    async with emulated_cluster() as url:
        _, api = client_for(url)
        reconciler = Reconciler(api)
        await api.create(_oidc("good", {"issuer": "https://idp.example", "clientId": "gw"}))
        await api.create(_oidc("bad-url", {"issuer": "not a url"}))
        await api.create(_oidc("no-secret", {"issuer": "https://idp.example", "clientId": "gw",
                                             "clientSecretRef": {"name": "idp", "key": "secret"}}))  # fmt: skip
        for name in ("good", "bad-url", "no-secret"):
            await reconciler.config("MCPOIDCConfig", NS, name)
        statuses = {
            n: (await api.get("MCPOIDCConfig", NS, n) or {})["status"] for n in ("good", "bad-url", "no-secret")
        }
        assert statuses["good"]["conditions"][0]["status"] == "True"
        assert statuses["good"]["observedGeneration"] == 2
        assert len(statuses["good"]["configHash"]) == 64
        bad = statuses["bad-url"]["conditions"][0]
        assert (bad["status"], bad["reason"]) == ("False", "ValidationFailed")
        assert (
            bad["message"]
            == "spec.inline (MCPOIDCConfig/bad-url): issuer must be an absolute https URL (got 'not a url')"
        )
        missing = statuses["no-secret"]["conditions"][0]["message"]
        assert (
            missing == "MCPOIDCConfig/no-secret: spec.inline.clientSecretRef: Secret 'idp' not found in namespace tools"
        )
        await api.close()


async def test_a_remote_proxy_and_its_readiness() -> None:
    async with emulated_cluster() as url:
        _, api = client_for(url)
        reconciler = Reconciler(api)
        proxy = {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRemoteProxy",
                 "metadata": {"name": "github", "namespace": NS, "uid": "u1", "generation": 1},
                 "spec": {"remoteUrl": "https://api.example.com/mcp", "proxyPort": 9000, "replicas": 2,
                          "oidcConfig": {"type": "kubernetes", "kubernetes": {"audience": "toolhive"}}}}  # fmt: skip
        await api.create(proxy)
        await reconciler.workload("MCPRemoteProxy", NS, "github")
        deployment = await api.get("Deployment", NS, "github")
        assert deployment is not None
        await api.patch("MCPRemoteProxy", NS, "github", {"status": None}, status=True)
        await reconciler.readiness(deployment)  # its event came before the proxy's first status write
        assert not (await api.get("MCPRemoteProxy", NS, "github") or {}).get("status")  # no half status
        await reconciler.workload("MCPRemoteProxy", NS, "github")
        deployment = await api.get("Deployment", NS, "github")
        assert deployment is not None
        assert deployment["spec"]["replicas"] == 2
        assert len(deployment["spec"]["template"]["spec"]["containers"]) == 1  # the gateway only
        assert await api.get("NetworkPolicy", NS, "github-gateway-only") is None  # no server beside it to fence
        assert "--anonymous" not in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        status = (await api.get("MCPRemoteProxy", NS, "github") or {})["status"]
        assert status["url"] == "http://mcp-github-remote-proxy.tools.svc.cluster.local:9000/mcp"
        assert status["phase"] == "Pending"

        await api.patch("Deployment", NS, "github", {"status": {"readyReplicas": 1}})
        await reconciler.readiness(await api.get("Deployment", NS, "github") or {})
        status = (await api.get("MCPRemoteProxy", NS, "github") or {})["status"]
        assert (status["phase"], status["readyReplicas"]) == ("Ready", 1)
        assert [c["type"] for c in status["conditions"]] == ["Valid", "SessionStorageWarning", "FieldsNotApplied",
                                                             "Ready"]  # fmt: skip
        sessions = next(c for c in status["conditions"] if c["type"] == "SessionStorageWarning")
        assert (sessions["status"], sessions["reason"]) == ("False", "SessionStorageNotNeeded")
        assert "hivegate_operator_reconciles_total" in _metrics(reconciler)
        await api.close()


def _metrics(reconciler: Reconciler) -> str:
    from prometheus_client import generate_latest

    return generate_latest(reconciler.metrics.registry).decode()

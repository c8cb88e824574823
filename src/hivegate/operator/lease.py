"""Leader election over a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it.

A replica leads while it holds the Lease: it takes a Lease that is free or expired (`renewTime` older than
`leaseDurationSeconds`), renews it every `renew` seconds, and stops leading when a renewal fails for longer than the
lease lasts (the operator then exits and its pod restarts as a follower). Writes carry the Lease's
`resourceVersion`, so two replicas racing for it get one success and one 409 from the API server.
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass

from hivegate.operator.kube import ApiError, KubeClient
from hivegate.operator.status import Clock, utc_now

__all__ = ["LeaderElector"]

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _parse(value: object) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    for fmt in (_FORMAT, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.datetime.strptime(value, fmt).replace(tzinfo=datetime.UTC)
        except ValueError:
            continue
    return None


@dataclass
class LeaderElector:
    api: KubeClient
    namespace: str
    name: str
    identity: str
    duration: float = 15.0
    renew: float = 5.0
    clock: Clock = utc_now

    async def try_acquire(self) -> bool:
        """Take or renew the Lease if it is ours, free or expired; False when another replica holds it."""
        now = self.clock()
        stamp = now.strftime(_FORMAT)
        lease = await self.api.get("Lease", self.namespace, self.name)
        spec: dict[str, object] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.duration),
            "renewTime": stamp,
        }
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {**spec, "acquireTime": stamp, "leaseTransitions": 0}}  # fmt: skip
            try:
                await self.api.create(body)
            except ApiError as exc:
                if exc.status == 409:
                    return False
                raise
            return True
        current = lease.get("spec") or {}
        holder = current.get("holderIdentity")
        renewed = _parse(current.get("renewTime"))
        lasts = float(current.get("leaseDurationSeconds") or self.duration)
        expired = renewed is None or now > renewed + datetime.timedelta(seconds=lasts)
        if holder and holder != self.identity and not expired:
            return False
        if holder != self.identity:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0) + 1
        patch = {"metadata": {"resourceVersion": (lease.get("metadata") or {}).get("resourceVersion")}, "spec": spec}
        try:
            await self.api.patch("Lease", self.namespace, self.name, patch)
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def acquire(self) -> None:
        """Wait until this replica leads."""
        while not await self._attempt():  # noqa: ASYNC110 (polling the API server: there is nothing to wait on)
            await asyncio.sleep(self.renew)

    async def hold(self) -> None:
        """Renew the Lease until it is lost; returns when this replica no longer leads."""
        last = self.clock()
        while True:
            await asyncio.sleep(self.renew)
            try:
                if not await self.try_acquire():
                    return  # another replica holds it
                last = self.clock()
            except ApiError:
                if (self.clock() - last).total_seconds() > self.duration:
                    return

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire()
        except ApiError:
            return False

    async def release(self) -> None:
        """Give the Lease up (on a clean shutdown), so another replica takes over without waiting for it to expire."""
        lease = await self.api.get("Lease", self.namespace, self.name)
        if lease is not None and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
            await self.api.patch("Lease", self.namespace, self.name, {"spec": {"holderIdentity": None}})

"""Refresh token rotation without forks: concurrent refreshes of one token within the grace window all get the same
successor, and a use of a superseded token after the window revokes the family, successors included."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from authserver_fakes import claims_of, login, redeem, refresh, server

from hivegate.authserver.errors import OAuthError
from hivegate.authserver.grants.refresh import REFRESH_GRACE
from hivegate.authserver.revocation import FAMILY_CLAIM
from hivegate.storage.base import KeyValueStore
from hivegate.storage.memory import MemoryStore
from hivegate.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio


def store_of(kind: str, tmp_path: Path) -> KeyValueStore:
    return MemoryStore() if kind == "memory" else SQLiteStore(str(tmp_path / "as.db"))


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_twenty_concurrent_refreshes_of_one_token_give_one_successor(kind: str, tmp_path: Path) -> None:
    store = store_of(kind, tmp_path)
    s = server(store=store)
    try:
        first = await redeem(s, (await login(s))["code"])
        answers = await asyncio.gather(*(refresh(s, first["refresh_token"]) for _ in range(20)))
        successors = {a["refresh_token"] for a in answers}
        assert len(successors) == 1
        assert first["refresh_token"] not in successors
        jwks = s.keys.jwks()
        families = {claims_of(jwks, a["access_token"])[FAMILY_CLAIM] for a in answers}
        assert families == {claims_of(jwks, first["access_token"])[FAMILY_CLAIM]}
        (successor,) = successors
        again = await refresh(s, successor)  # the one successor works
        assert again["refresh_token"] not in (successor, first["refresh_token"])
    finally:
        await store.aclose()


async def test_a_replay_within_the_window_gives_the_same_successor_even_after_it_rotated() -> None:
    now = [1_000_000.0]
    s = server(clock=lambda: now[0])
    first = await redeem(s, (await login(s))["code"])
    second = await refresh(s, first["refresh_token"])
    third = await refresh(s, second["refresh_token"])
    now[0] += REFRESH_GRACE / 2
    replayed = await refresh(s, first["refresh_token"])
    assert replayed["refresh_token"] == second["refresh_token"]  # no new branch
    assert (await refresh(s, second["refresh_token"]))["refresh_token"] == third["refresh_token"]


async def test_a_replay_after_the_window_revokes_the_family_and_its_successor() -> None:
    now = [1_000_000.0]
    s = server(clock=lambda: now[0])
    first = await redeem(s, (await login(s))["code"])
    second = await refresh(s, first["refresh_token"])
    now[0] += REFRESH_GRACE + 1
    with pytest.raises(OAuthError) as reused:
        await refresh(s, first["refresh_token"])
    assert reused.value.error == "invalid_grant"
    assert "already used" in reused.value.description
    with pytest.raises(OAuthError) as successor:
        await refresh(s, second["refresh_token"])
    assert successor.value.error == "invalid_grant"
    assert "revoked" in successor.value.description
    assert await s.token_revoked(claims_of(s.keys.jwks(), second["access_token"]))

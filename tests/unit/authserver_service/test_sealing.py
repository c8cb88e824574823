"""Credentials at rest (`authserver.sealing`): what the store holds for a sealed namespace opens only under the key
it was written for, with a configured HMAC secret; rotation and records written in clear by older versions are
migrated on first read; an altered record is absent, never an error. And after a whole login, the raw store holds
none of the upstream's tokens nor the login's PKCE verifier."""

from __future__ import annotations

import logging

import pytest
from authserver_fakes import APP, CHALLENGE, CLIENT, Upstream, claims_of, form, login, redeem, server

from hivegate.authserver.keys import HMACKeys
from hivegate.authserver.sealing import SEAL_INFO, SealedStore, Sealer
from hivegate.authserver.service import Redirect
from hivegate.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

OLD, NEW = b"o" * 32, b"n" * 32
SESSION = {
    "subject": "alice",
    "upstream_tokens": {"corp": {"access_token": "upstream-at-123", "refresh_token": "rt-9"}},
}


def sealer(*secrets: bytes) -> Sealer:
    return Sealer.from_hmac_keys(HMACKeys(list(secrets)))


def raw_bytes(store: MemoryStore) -> bytes:
    return b"".join(data for records in store._data.values() for _, data in records.values())


def test_hkdf_gives_one_distinct_key_per_secret_and_purpose() -> None:
    keys = HMACKeys([NEW, OLD])
    sealing = keys.hkdf(SEAL_INFO)
    assert len(sealing) == 2
    assert all(len(k) == 32 for k in sealing)
    assert sealing[0] != sealing[1]
    assert sealing == HMACKeys([NEW, OLD]).hkdf(SEAL_INFO)
    assert keys.hkdf(b"another purpose")[0] != sealing[0]
    assert NEW not in sealing


async def test_a_sealed_record_round_trips_and_the_raw_store_holds_no_secret() -> None:
    raw = MemoryStore()
    store = SealedStore(raw, sealer(NEW), {"session": 600})
    await store.put("session", "s-1", SESSION, 600)
    assert await store.get("session", "s-1") == SESSION
    stored = await raw.get("session", "s-1")
    assert stored is not None
    assert set(stored) == {"sealed"}
    assert stored["sealed"].startswith("hgs1.")
    for secret in (b"upstream-at-123", b"rt-9", b"alice"):
        assert secret not in raw_bytes(raw)
    assert await store.add("session", "s-1", SESSION, 600) is False
    assert await store.take("session", "s-1") == SESSION
    assert await store.get("session", "s-1") is None


async def test_other_namespaces_pass_through_in_clear() -> None:
    raw = MemoryStore()
    store = SealedStore(raw, sealer(NEW), {"session": 600})
    await store.put("refresh", "r-1", {"family": "f"}, 600)
    assert await raw.get("refresh", "r-1") == {"family": "f"}


async def test_a_record_copied_under_another_key_does_not_open(caplog: pytest.LogCaptureFixture) -> None:
    raw = MemoryStore()
    store = SealedStore(raw, sealer(NEW), {"session": 600, "login": 600})
    await store.put("session", "victim", SESSION, 600)
    copied = await raw.get("session", "victim")
    assert copied is not None
    await raw.put("session", "attacker", copied, 600)
    await raw.put("login", "victim", copied, 600)  # same key, another namespace
    with caplog.at_level(logging.WARNING, "hivegate.authserver"):
        assert await store.get("session", "attacker") is None
        assert await store.get("login", "victim") is None
        assert await store.take("session", "attacker") is None
    assert await store.get("session", "victim") == SESSION
    assert len([r for r in caplog.records if "does not open" in r.getMessage()]) == 3
    assert "attacker" not in caplog.text
    assert copied["sealed"] not in caplog.text


async def test_rotation_opens_old_records_and_reseals_them_with_the_current_key() -> None:
    raw = MemoryStore()
    await SealedStore(raw, sealer(OLD), {"session": 600}).put("session", "s-1", SESSION, 600)
    before = await raw.get("session", "s-1")
    rotated = SealedStore(raw, sealer(NEW, OLD), {"session": 600})
    assert await rotated.get("session", "s-1") == SESSION
    after = await raw.get("session", "s-1")
    assert after is not None
    assert after != before  # written back under the new key
    only_new = SealedStore(raw, sealer(NEW), {"session": 600})
    assert await only_new.get("session", "s-1") == SESSION  # the old secret can now be removed
    assert await SealedStore(raw, sealer(OLD), {"session": 600}).get("session", "s-1") is None


async def test_a_record_sealed_with_a_removed_key_is_absent() -> None:
    raw = MemoryStore()
    await SealedStore(raw, sealer(OLD), {"session": 600}).put("session", "s-1", SESSION, 600)
    assert await SealedStore(raw, sealer(NEW), {"session": 600}).get("session", "s-1") is None


async def test_a_record_written_in_clear_by_an_older_version_is_read_once_and_sealed() -> None:
    raw = MemoryStore()
    await raw.put("session", "s-1", SESSION, 600)  # as hivegate wrote it before sealing
    store = SealedStore(raw, sealer(NEW), {"session": 600})
    assert await store.get("session", "s-1") == SESSION
    assert b"upstream-at-123" not in raw_bytes(raw)
    migrated = await raw.get("session", "s-1")
    assert migrated is not None
    assert set(migrated) == {"sealed"}
    assert await store.get("session", "s-1") == SESSION


@pytest.mark.parametrize("where", [8, 30, -1])
async def test_an_altered_record_is_absent_not_an_error(where: int) -> None:
    raw = MemoryStore()
    store = SealedStore(raw, sealer(NEW), {"session": 600})
    await store.put("session", "s-1", SESSION, 600)
    stored = await raw.get("session", "s-1")
    assert stored is not None
    text = list(stored["sealed"])
    text[where] = "A" if text[where] != "A" else "B"
    await raw.put("session", "s-1", {"sealed": "".join(text)}, 600)
    assert await store.get("session", "s-1") is None
    for garbage in ("hgs1.", "hgs1.!!!", "hgs1.AAAA", 42, None):
        await raw.put("session", "s-1", {"sealed": garbage}, 600)
        assert await store.get("session", "s-1") is None


async def test_after_a_login_the_raw_store_holds_no_upstream_token_nor_verifier() -> None:
    raw = MemoryStore()
    s = server(Upstream("okta"), store=raw)
    params = {"response_type": "code", "client_id": CLIENT, "redirect_uri": APP, "code_challenge": CHALLENGE,
              "code_challenge_method": "S256"}  # fmt: skip
    assert isinstance(await s.authorize(form(**params), "b-1"), Redirect)
    pending = b"".join(data for _, data in raw._data["login"].values())
    assert b"verifier" not in pending
    assert b"nonce" not in pending
    tokens = await redeem(s, (await login(s))["code"])
    assert b"okta-access" not in raw_bytes(raw)
    tsid = claims_of(s.keys.jwks(), tokens["access_token"])["tsid"]
    upstream = await s.upstream_tokens(tsid, "okta")  # the backend still gets it
    assert upstream is not None
    assert upstream.access_token == "okta-access"

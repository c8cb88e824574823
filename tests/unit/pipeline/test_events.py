"""Event ids sealed to the session that received them: only that session may resume after them."""

from __future__ import annotations

from hivegate.pipeline.events import EventIds


def test_a_sealed_id_opens_for_its_session_only() -> None:
    ids = EventIds()
    sealed = ids.seal("session-a", "17")
    assert sealed.endswith(".17")
    assert ids.open("session-a", sealed) == "17"
    assert ids.open("session-b", sealed) is None
    assert ids.open(None, sealed) is None


def test_a_raw_or_tampered_id_is_refused() -> None:
    ids = EventIds()
    sealed = ids.seal("s", "17")
    tag = sealed.split(".")[0]
    assert ids.open("s", "17") is None  # the backend's own id, as another caller would guess it
    assert ids.open("s", f"{tag}.18") is None  # a valid tag on another event
    other = "y" if sealed[0] == "x" else "x"  # the tag is random: a change of its first character must be a change
    assert ids.open("s", other + sealed[1:]) is None


def test_another_gateways_key_does_not_open_it() -> None:
    sealed = EventIds(b"k" * 32).seal("s", "1")
    assert EventIds(b"k" * 32).open("s", sealed) == "1"
    assert EventIds().open("s", sealed) is None

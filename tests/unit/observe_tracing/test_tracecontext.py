"""W3C Trace Context parsing: which `traceparent`/`tracestate` values a caller may send, and which one a call uses."""

from __future__ import annotations

import pytest

from hivegate.observe.tracecontext import (
    RemoteParent,
    format_traceparent,
    incoming_parent,
    parse_traceparent,
    valid_tracestate,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"00-{TRACE}-{SPAN}-01", (int(TRACE, 16), int(SPAN, 16), True)),
        (f"00-{TRACE}-{SPAN}-00", (int(TRACE, 16), int(SPAN, 16), False)),
        (f"00-{TRACE}-{SPAN}-03", (int(TRACE, 16), int(SPAN, 16), True)),  # unknown flags are ignored
        (f"01-{TRACE}-{SPAN}-01-later-fields", (int(TRACE, 16), int(SPAN, 16), True)),  # a later version
    ],
)
def test_a_valid_traceparent(value: str, expected: tuple[int, int, bool]) -> None:
    assert parse_traceparent(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        f"00-{TRACE}-{SPAN}-1",
        f"00-{TRACE}-{SPAN}-011",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"ff-{TRACE}-{SPAN}-01",
        f"0g-{TRACE}-{SPAN}-01",
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01-extra",
        f"00_{TRACE}_{SPAN}_01",
        f"00-{TRACE}-{SPAN}-01\r\nx-injected: 1",
        f"01-{TRACE}-{SPAN}-01x",
        None,
        42,
        "00-" + "a" * 600,
    ],
)
def test_an_invalid_traceparent_is_none(value: object) -> None:
    assert parse_traceparent(value) is None


def test_tracestate() -> None:
    assert valid_tracestate("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7") == (
        ("congo", "t61rcWkgMzE"),
        ("rojo", "00f067aa0ba902b7"),
    )
    assert valid_tracestate(" a=1 ,, tenant@vendor=x y") == (("a", "1"), ("tenant@vendor", "x y"))
    assert valid_tracestate("") == ()
    for bad in ("Upper=1", "a=1,a=2", "a", "a=b=c", "a=1\n", "a=" + "x" * 600, ",".join(f"k{i}=v" for i in range(33))):
        assert valid_tracestate(bad) is None, bad


def test_the_meta_traceparent_wins_over_the_header_and_an_invalid_one_falls_back() -> None:
    header = f"00-{TRACE}-{SPAN}-01"
    other = f"00-{'1' * 32}-{'2' * 16}-00"
    from_meta = incoming_parent({"_meta": {"traceparent": other, "tracestate": "m=1"}}, header, "h=1")
    assert from_meta == RemoteParent(int("1" * 32, 16), int("2" * 16, 16), False, (("m", "1"),))
    from_header = incoming_parent({"_meta": {"traceparent": "garbage"}}, header, "h=1")
    assert from_header == RemoteParent(int(TRACE, 16), int(SPAN, 16), True, (("h", "1"),))
    assert incoming_parent({"name": "echo"}, None, "h=1") is None
    assert incoming_parent(["positional"], header, "not valid") == RemoteParent(int(TRACE, 16), int(SPAN, 16), True)


def test_format_traceparent_round_trips() -> None:
    value = format_traceparent(int(TRACE, 16), int(SPAN, 16), True)
    assert value == f"00-{TRACE}-{SPAN}-01"
    assert parse_traceparent(value) == (int(TRACE, 16), int(SPAN, 16), True)
    assert format_traceparent(1, 2, False) == f"00-{'0' * 31}1-{'0' * 15}2-00"

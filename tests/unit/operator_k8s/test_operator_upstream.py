"""Which vMCPs apply a group member's upstream credential, and the group label their pods carry."""

from __future__ import annotations

from hivegate.operator.upstream import applies_discovered, group_label


def test_a_vmcp_applies_the_members_strategy_only_when_it_discovers_it() -> None:
    assert applies_discovered({}, "kubernetes")  # source discovered by default
    assert applies_discovered({"outgoingAuth": {"source": "discovered"}}, "kubernetes")
    assert not applies_discovered({"outgoingAuth": {"source": "inline"}}, "kubernetes")
    inline = {"source": "inline", "backends": {"kubernetes": {"type": "discovered"}}}
    assert applies_discovered({"outgoingAuth": inline}, "kubernetes")
    assert not applies_discovered({"outgoingAuth": inline}, "github")
    other = {"backends": {"kubernetes": {"type": "externalAuthConfigRef", "externalAuthConfigRef": {"name": "x"}}}}
    assert not applies_discovered({"outgoingAuth": other}, "kubernetes")  # it sends another config's credential


def test_a_group_name_becomes_a_label_value() -> None:
    assert group_label("engineering-tools") == "engineering-tools"
    long = "g" * 64
    assert group_label(long).startswith("g-")
    assert len(group_label(long)) <= 63
    assert group_label(long) != group_label("h" * 64)

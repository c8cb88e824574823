"""Loading ToolHive-format authorization configs: strict decoding and one-line errors naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from authz_helpers import config, okta

from hivegate.authz import CedarAuthorizer, load_authz_config, parse_authz_config
from hivegate.errors import ConfigError

WEATHER = 'permit(principal, action == Action::"call_tool", resource == Tool::"weather");'


def doc(**cedar: Any) -> dict[str, Any]:
    return {"version": "1.0", "type": "cedarv1", "cedar": {"policies": [WEATHER], **cedar}}


def test_loads_json_file(tmp_path: Path) -> None:
    path = tmp_path / "authz.json"
    path.write_text(json.dumps(doc(entities_json="[]", group_claim_name="grp", role_claim_name="roles")))
    cfg = load_authz_config(path)
    assert cfg.version == "1.0"
    assert cfg.cedar.policies == (WEATHER,)
    assert cfg.cedar.group_claim_name == "grp"
    assert cfg.cedar.group_entity_type == "THVGroup"


def test_loads_yaml_by_extension(tmp_path: Path) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text(
        "version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n    - " + json.dumps(WEATHER) + "\n"
        "  group_entity_type: Team\n"
    )
    cfg = load_authz_config(path)
    assert cfg.cedar.policies == (WEATHER,)
    assert cfg.cedar.group_entity_type == "Team"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({**doc(), "extra": 1}, "unknown key extra"),
        (doc(polices=[]), "unknown key cedar.polices"),
        ({"type": "cedarv1", "cedar": {"policies": [WEATHER]}}, "version is required"),
        ({**doc(), "version": ""}, "version is required"),
        ({**doc(), "type": "httpv1"}, "type must be 'cedarv1'"),
        ({"version": "1", "type": "cedarv1"}, "cedar is required"),
        ({"version": "1", "type": "cedarv1", "cedar": {"policies": []}}, "cedar.policies must be a non-empty list"),
        ({"version": "1", "type": "cedarv1", "cedar": {"policies": [WEATHER, 3]}}, "cedar.policies[1]"),
        (doc(entities_json="{"), "cedar.entities_json is not valid JSON"),
        (doc(entities_json="{}"), "cedar.entities_json must be a JSON array"),
        (doc(entities_json='[{"attrs": {}}]'), "cedar.entities_json[0] needs uid"),
        (doc(group_claim_name=5), "cedar.group_claim_name must be a string"),
        ([], "must be an object"),
    ],
)
def test_config_errors_name_the_field(data: Any, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_authz_config(data, source="authz.json")
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_authz_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_authz_config(bad)
    bad_yaml = tmp_path / "bad.yml"
    bad_yaml.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_authz_config(bad_yaml)


@pytest.mark.parametrize(
    ("policy", "where"),
    [
        ('permit(principal, action == Action::"call_tool", resource)\n  when { principal.x = };', "line 2, column 24"),
        ("permit(principal, action, resource)\n  when { foo(1) };", "line 2, column 10"),
        ("pormit(principal, action, resource);", "line 1, column 1"),
        ('permit(principal, action, resource)\n when { principal.x == "a };', "line 2, column 24"),
    ],
)
def test_policy_syntax_errors_name_index_line_and_column(policy: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        CedarAuthorizer.from_config(config([WEATHER, policy]), "srv")
    message = str(info.value)
    assert message.startswith(f"cedar.policies[1], {where}: ")
    assert "\n" not in message


def test_templates_and_empty_policies_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"cedar.policies\[0\]: policy templates"):
        CedarAuthorizer.from_config(config(["permit(principal == ?principal, action, resource);"]), "srv")
    with pytest.raises(ConfigError, match=r"cedar.policies\[1\]: contains no policy"):
        CedarAuthorizer.from_config(config([WEATHER, "// only a comment"]), "srv")


def test_several_policies_in_one_string_get_sequential_ids() -> None:
    authz = CedarAuthorizer.from_config(config([WEATHER + "\n" + WEATHER.replace("weather", "news"), WEATHER]), "s")
    assert authz.policy_count == 3
    assert authz.decide(okta("u", []), "call_tool", "news").reasons == ("policy1",)
    assert authz.decide(okta("u", []), "call_tool", "weather").reasons in {
        ("policy0", "policy2"),
        ("policy2", "policy0"),
    }


def test_invalid_entities_json_content_is_a_config_error() -> None:
    bad = (
        '[{"uid": {"type": "Tool", "id": "x"}, "attrs": {"a": {"__extn": {"fn": "nope", "arg": "1"}}}, "parents": []}]'
    )
    with pytest.raises(ConfigError, match=r"cedar\.entities_json"):
        CedarAuthorizer.from_config(config([WEATHER], entities_json=bad), "srv")

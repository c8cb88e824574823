"""Loading, reloading and watching a policy file: a broken file never replaces working policies."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from authz_helpers import okta

from hivegate.authz.policy_config import AuthzConfig, CedarConfig
from hivegate.authz.store import PolicyStore, config_source, file_source
from hivegate.errors import ConfigError

pytestmark = pytest.mark.anyio

USER = okta("00u1user", ["Everyone"])


def write(path: Path, *policies: str) -> None:
    path.write_text(json.dumps({"version": "1.0", "type": "cedarv1", "cedar": {"policies": list(policies)}}))


def allows(store: PolicyStore, tool: str) -> bool:
    return store.current.decide(USER, "call_tool", tool).allowed


def permit(tool: str) -> str:
    return f'permit(principal, action == Action::"call_tool", resource == Tool::"{tool}");'


async def test_reload_swaps_in_the_new_policies(tmp_path: Path) -> None:
    path = tmp_path / "authz.json"
    write(path, permit("weather"))
    store = PolicyStore(file_source(path), "srv")
    assert allows(store, "weather")
    assert not allows(store, "news")
    write(path, permit("news"))
    assert await store.changed()
    assert await store.reload()
    assert allows(store, "news")
    assert not allows(store, "weather")
    assert store.reloads == 1
    assert not await store.changed()


async def test_a_broken_file_keeps_the_old_policies_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "authz.json"
    write(path, permit("weather"))
    store = PolicyStore(file_source(path), "srv")
    write(path, permit("news"), "permit(principal, action, resource")
    assert await store.changed()
    assert not await store.reload()
    assert allows(store, "weather")
    assert "cedar.policies[1]" in caplog.text
    assert "keeping the 1 policies in force" in caplog.text
    assert not await store.changed()  # the same broken content is not retried (nor logged) again and again
    path.write_text("{not json")
    assert await store.changed()
    assert not await store.reload()
    path.unlink()
    assert not await store.changed()  # a missing file is not a change to act on
    assert not await store.reload()
    assert allows(store, "weather")


def test_a_broken_file_at_start_up_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "authz.json"
    write(path, permit("weather"), 'permit(principal, action == Action::"call_tool", resource == Tool::weather);')
    with pytest.raises(ConfigError, match=r"cedar\.policies\[1\], line 1, column \d+"):
        PolicyStore(file_source(path), "srv")
    with pytest.raises(ConfigError, match="cannot read"):
        PolicyStore(file_source(tmp_path / "missing.json"), "srv")


async def test_watch_reloads_when_the_content_changes(tmp_path: Path) -> None:
    path = tmp_path / "authz.yaml"
    path.write_text(f"version: '1'\ntype: cedarv1\ncedar:\n  policies:\n    - '{permit('weather')}'\n")
    store = PolicyStore(file_source(path), "srv")
    watcher = asyncio.create_task(store.watch(interval=0.02))
    try:
        path.write_text(f"version: '1'\ntype: cedarv1\ncedar:\n  policies:\n    - '{permit('news')}'\n")
        async with asyncio.timeout(10):
            while not allows(store, "news"):
                await asyncio.sleep(0.02)
        assert not allows(store, "weather")
    finally:
        watcher.cancel()


async def test_policies_held_in_memory_load_and_never_change() -> None:
    """An `MCPServer`'s `authzConfig`, read with its manifest (`hivegate run -f`)."""
    config = AuthzConfig(version="1.0", cedar=CedarConfig(policies=(permit("weather"),)))
    store = PolicyStore(config_source(config, "m.yaml:doc1 MCPServer/s: spec.authzConfig"), "srv")
    assert allows(store, "weather")
    assert not allows(store, "news")
    assert store.source.name == "m.yaml:doc1 MCPServer/s: spec.authzConfig"
    assert not await store.changed()
    bad = AuthzConfig(version="1.0", cedar=CedarConfig(policies=("permit(principal, action",)))
    with pytest.raises(ConfigError) as err:
        PolicyStore(config_source(bad, "m.yaml:doc1 MCPServer/s: spec.authzConfig"), "srv")
    assert str(err.value).startswith("authz config m.yaml:doc1 MCPServer/s: spec.authzConfig: ")

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import hivegate.storage as storage
from hivegate.storage import MemoryStore, RedisStore, SQLiteStore, open_store

pytestmark = pytest.mark.anyio


def test_the_package_exports_its_api() -> None:
    assert sorted(storage.__all__) == [
        "KeyValueStore",
        "MemoryStore",
        "Record",
        "RedisStore",
        "SQLiteStore",
        "StorageError",
        "open_store",
    ]
    for name in storage.__all__:
        assert getattr(storage, name) is not None


async def test_open_store_builds_each_kind(tmp_path: Path) -> None:
    memory = open_store("memory")
    assert isinstance(memory, MemoryStore)
    sqlite = open_store("sqlite", path=str(tmp_path / "auth.db"))
    assert isinstance(sqlite, SQLiteStore)
    await sqlite.put("ns", "k", {"v": 1}, ttl=60)
    assert await sqlite.get("ns", "k") == {"v": 1}
    redis = open_store("redis", url="redis://127.0.0.1:1/0", key_prefix="x:")  # connects on first use only
    assert isinstance(redis, RedisStore)
    for store in (memory, sqlite, redis):
        await store.aclose()


@pytest.mark.parametrize(
    ("kind", "arguments", "message"),
    [
        ("sqlite", {}, "needs a path"),
        ("redis", {}, "needs a url"),
        ("redis", {"url": "http://127.0.0.1"}, "redis://"),
        ("postgres", {}, "unknown storage kind 'postgres'"),
    ],
)
def test_open_store_refuses_what_it_cannot_build(kind: str, arguments: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(kind, **arguments)


def test_redis_is_imported_only_for_a_redis_store(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from hivegate.storage import open_store\n"
        f"open_store('sqlite', path={str(tmp_path / 'auth.db')!r})\n"
        "open_store('memory')\n"
        "assert 'redis' not in sys.modules, 'redis imported early'\n"
        "open_store('redis', url='redis://127.0.0.1:1/0')\n"
        "assert 'redis' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_redis_without_its_extra_is_a_one_line_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from hivegate.errors import ConfigError
    from hivegate.storage import open_store

    for name in [n for n in sys.modules if n == "redis" or n.startswith("redis.")] + ["redis"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if the package were not installed
    monkeypatch.delitem(sys.modules, "hivegate.storage.redis", raising=False)
    with pytest.raises(
        ConfigError, match=r"^storage type redis needs the redis extra: pip install 'hivegate\[redis\]'$"
    ):
        open_store("redis", url="redis://127.0.0.1:6379/0")

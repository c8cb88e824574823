"""Every exception hivegate defines derives from `HivegateError` and is listed in `hivegate.errors`' docstring."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import hivegate
import hivegate.errors
from hivegate.errors import HivegateError


def defined_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(hivegate.__path__, "hivegate."):
        if info.name.endswith("__main__"):  # runs the CLI when imported
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{module.__name__.removeprefix('hivegate.')}.{name}"] = value
    return found


def test_every_public_exception_is_rooted_at_hivegate_error_and_listed() -> None:
    listed = hivegate.errors.__doc__ or ""
    public = {path: cls for path, cls in defined_exceptions().items() if not cls.__name__.startswith("_")}
    assert len(public) > 20
    assert [path for path, cls in public.items() if not issubclass(cls, HivegateError)] == []
    assert [
        path for path, cls in public.items() if f"`{cls.__name__}`" not in listed and f".{cls.__name__}`" not in listed
    ] == []


def test_private_exceptions_do_not_escape_their_module() -> None:
    for path, cls in defined_exceptions().items():
        if cls.__name__.startswith("_"):
            module = importlib.import_module("hivegate." + path.rsplit(".", 1)[0])
            assert cls.__name__ not in getattr(module, "__all__", ()), path

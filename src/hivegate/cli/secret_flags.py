"""Secret references on the command line, as `thv run` takes them, resolved the same way for every flag.

A reference is `env:VARIABLE`, `file:PATH` (relative to the working directory) or a bare secret name, read from
`$HIVEGATE_SECRET_<NAME>` (upper-cased, other characters as `_`). hivegate has no secret store of its own; a
ToolHive secret name maps to that variable. `--secret NAME,target=ENV` (ToolHive's spelling) puts a secret in
the stdio server's environment, so its value is never on the command line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from hivegate.authserver.secrets import SecretRef, SecretResolver, secret_env_name
from hivegate.errors import ConfigError

__all__ = ["resolve_secret", "secret_env", "secret_ref"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def secret_ref(ref: str, where: str) -> SecretRef:
    """Where the secret `ref` is read from; `ConfigError` naming `where` when `ref` says nothing usable."""
    ref = ref.strip()
    kind, colon, rest = ref.partition(":")
    if colon and kind in ("env", "file"):
        if not rest:
            raise ConfigError(f"{where}: {kind}: needs a {'variable' if kind == 'env' else 'path'}")
        return SecretRef(env=rest) if kind == "env" else SecretRef(file=rest)
    if not ref:
        raise ConfigError(f"{where}: needs env:VARIABLE, file:PATH or a secret name")
    return SecretRef(env=secret_env_name(ref))


def resolve_secret(ref: str, where: str) -> str:
    """The value of the secret `ref` (not empty); `ConfigError` naming `where` and the source, never the value."""
    source = secret_ref(ref, where)
    value = SecretResolver(base_dir=Path.cwd()).resolve_text(source, where)
    if not value:
        raise ConfigError(f"{where}: {source.describe()} is empty")
    return value


def secret_env(items: Sequence[str]) -> dict[str, str]:
    """`--secret NAME,target=ENV` (repeatable) as the environment variables they set."""
    env: dict[str, str] = {}
    for item in items:
        name, comma, target = item.partition(",")
        key, eq, variable = target.partition("=")
        if not comma or key.strip() != "target" or not eq or not name.strip():
            raise ConfigError(f"--secret {item[:80]!r}: expected NAME,target=ENV_VARIABLE")
        variable = variable.strip()
        if not _ENV_NAME.fullmatch(variable):
            raise ConfigError(f"--secret {name.strip()}: target {variable[:40]!r} is not an environment variable name")
        if variable in env:
            raise ConfigError(f"--secret: target {variable} is given twice")
        env[variable] = resolve_secret(name, f"--secret {name.strip()}")
    return env

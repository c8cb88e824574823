"""Secret references, resolved locally the way Kubernetes would resolve a `secretKeyRef`.

A reference is `{name, key}` (the shape in ToolHive's manifests). Outside Kubernetes it resolves, in order, from:
1. an explicit `file:` or `env:` in the reference (hivegate's own, for configs that are not manifests);
2. the environment variable `HIVEGATE_SECRET_<NAME>_<KEY>` (upper-cased, other characters as `_`), e.g.
   `{name: upstream-idp-secret, key: client-secret}` → `HIVEGATE_SECRET_UPSTREAM_IDP_SECRET_CLIENT_SECRET`;
3. the file `<secrets dir>/<name>/<key>` (the layout of a mounted Secret), with the directory from
   `$HIVEGATE_SECRETS_DIR`, else `secrets/` next to the config file;
4. `Secret` manifests loaded alongside (their `stringData` / base64 `data`).

Values are never logged; errors name the reference and where it was looked for, never a value.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hivegate.errors import ConfigError

__all__ = ["SecretRef", "SecretResolver", "parse_secret_ref", "secret_env_name", "secret_manifest_data"]

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def secret_env_name(*parts: str) -> str:
    """The environment variable a secret is read from: `HIVEGATE_SECRET_` and the parts (a Secret's name and key,
    or a bare secret name) upper-cased, other characters as `_`, joined by `_`."""
    return "HIVEGATE_SECRET_" + "_".join(_NOT_ALNUM.sub("_", part).upper() for part in parts)


@dataclass(frozen=True, slots=True)
class SecretRef:
    name: str = ""
    key: str = ""
    file: str | None = None
    env: str | None = None

    def describe(self) -> str:
        if self.file:
            return f"file {self.file}"
        if self.env:
            return f"${self.env}"
        return f"secret {self.name}/{self.key}"


def parse_secret_ref(value: Any, where: str) -> SecretRef:
    """A reference from config: `{name, key}`, `{file}` or `{env}`; `ConfigError` naming `where` otherwise."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: must be a mapping with name and key (or file, or env)")
    unknown = set(value) - {"name", "key", "file", "env"}
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown field")
    for field in ("name", "key", "file", "env"):
        if field in value and (not isinstance(value[field], str) or not value[field]):
            raise ConfigError(f"{where}.{field}: must be a non-empty string")
    ref = SecretRef(value.get("name", ""), value.get("key", ""), value.get("file"), value.get("env"))
    if ref.file and ref.env:
        raise ConfigError(f"{where}: give file or env, not both")
    if not (ref.file or ref.env) and not (ref.name and ref.key):
        raise ConfigError(f"{where}: needs name and key (or file, or env)")
    return ref


class SecretResolver:
    """Resolves `SecretRef`s; `secrets_dir` is the mounted-Secrets layout, `manifests` Secrets given as documents."""

    def __init__(
        self,
        *,
        base_dir: Path | None = None,
        secrets_dir: Path | None = None,
        manifests: Mapping[str, Mapping[str, bytes]] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._env = os.environ if environ is None else environ
        self._base = base_dir or Path.cwd()
        configured = self._env.get("HIVEGATE_SECRETS_DIR")
        self._dir = secrets_dir or (Path(configured) if configured else self._base / "secrets")
        self._manifests = dict(manifests or {})

    @staticmethod
    def env_name(ref: SecretRef) -> str:
        return secret_env_name(ref.name, ref.key)

    def resolve(self, ref: SecretRef, where: str) -> bytes:
        """The secret's bytes; `ConfigError` naming `where` and the places looked at when it is nowhere."""
        if ref.file:
            return self._read(self._base / ref.file, where)
        if ref.env:
            value = self._env.get(ref.env)
            if value is None:
                raise ConfigError(f"{where}: environment variable {ref.env} is not set")
            return value.encode()
        variable = self.env_name(ref)
        if variable in self._env:
            return self._env[variable].encode()
        path = self._dir / ref.name / ref.key
        if path.is_file():
            return self._read(path, where)
        manifest = self._manifests.get(ref.name)
        if manifest is not None:
            if ref.key not in manifest:
                raise ConfigError(f"{where}: Secret {ref.name!r} has no key {ref.key!r}")
            return manifest[ref.key]
        raise ConfigError(f"{where}: secret {ref.name}/{ref.key} not found (set {variable}, or create {path})")

    def resolve_text(self, ref: SecretRef, where: str) -> str:
        try:
            return self.resolve(ref, where).decode().strip()
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: {ref.describe()} is not UTF-8 text") from None

    @staticmethod
    def _read(path: Path, where: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None


def secret_manifest_data(doc: Mapping[str, Any], where: str) -> dict[str, bytes]:
    """The keys of a `kind: Secret` manifest: `stringData` as text, `data` base64-decoded."""
    out: dict[str, bytes] = {}
    data = doc.get("data") or {}
    string_data = doc.get("stringData") or {}
    if not isinstance(data, Mapping) or not isinstance(string_data, Mapping):
        raise ConfigError(f"{where}: data and stringData must be mappings")
    for key, value in data.items():
        try:
            out[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}.data.{key}: not valid base64") from None
    for key, value in string_data.items():
        out[str(key)] = str(value).encode()
    return out

"""The CRDs' schema and the readers of the manifests cannot drift: each field one takes, the other takes.

The readers (`hivegate vmcp serve`'s and `hivegate run -f`'s) load `data/drift_vmcp.yaml`, `data/drift_runf.yaml`
and the seeds while `Reader.get` records the path of every field they accept (a reader asks for each key it knows,
given or not; `done()` refuses the rest). Then, per kind:
- every path accepted lies in the schema: a declared property, a key of a map, the inside of a node the schema keeps
  as given (`opaque`), or a key the schema lists as local-only (read from files on one machine, never from a cluster);
- every path of the schema is accepted, or lies inside a field a reader takes whole (`resources`, a pod template).
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from hivegate.config.reader import Reader
from hivegate.crds import KINDS, Kind
from hivegate.crds.schema import LOCAL_ONLY, OPAQUE, Node, string
from hivegate.vmcp.manifests import load_manifests
from hivegate.vmcp.manifests.standalone import _NOT_OF, build_server, read_servers

HERE = Path(__file__).parent
SEEDS = HERE.parent / "vmcp_config" / "data"
_ORIGIN = re.compile(r"^\S+:doc\d+ (\w+)/\S+: spec(.*)$")  # "<file>:doc<N> <Kind>/<name>: spec.<path>"
_PART = re.compile(r"\[\d+\]|[^.\[]+")

Path_ = tuple[str, ...]


def accepted_paths(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[Path_]]:
    """Kind → the `spec` paths the readers accepted while loading the manifests (list indices as `[]`)."""
    seen: dict[str, set[Path_]] = defaultdict(set)
    get = Reader.get

    def recording_get(self: Reader, key: str) -> Any:
        found = _ORIGIN.match(self.at(key))
        if found:
            parts = tuple("[]" if p.startswith("[") else p for p in _PART.findall(found.group(2)))
            seen[found.group(1)].add(parts)
        return get(self, key)

    monkeypatch.setattr(Reader, "get", recording_get)
    for path in (HERE / "data" / "drift_vmcp.yaml", SEEDS / "seed_000.yaml", SEEDS / "seed_002.yaml"):
        for name in _names(path, "VirtualMCPServer"):
            load_manifests([path], name=name)
    for path in (HERE / "data" / "drift_runf.yaml",):
        manifests = read_servers([path])
        for doc in manifests.servers:
            build_server(manifests, doc)
    monkeypatch.setattr(Reader, "get", get)
    # A field of the other kind is refused by run -f before it is read as the fields of both kinds are.
    for kind, keys in _NOT_OF.items():
        seen[kind] -= {(key,) for key in keys}
    return seen


def _names(path: Path, kind: str) -> list[str]:
    return [d["metadata"]["name"] for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == kind]


def locate(schema: Node, parts: Path_) -> Path_ | None:
    """`parts` as a path of the schema (map keys as `*`), cut at an opaque node; None when the schema lacks it."""
    node, out = schema, list[str]()
    for i, part in enumerate(parts):
        if node.get(OPAQUE):
            return tuple(out)
        if part == "[]" and isinstance(node.get("items"), dict):
            node = node["items"]
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), dict):
            node, part = node["additionalProperties"], "*"
        elif part in node.get(LOCAL_ONLY, ()) and i == len(parts) - 1:
            return (*out, part)
        else:
            return None
        out.append(part)
    return tuple(out)


def schema_paths(node: Node, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every path of the schema below `node` (not inside opaque nodes), local-only keys included."""
    if prefix:
        yield prefix
    if node.get(OPAQUE):
        return
    for key, sub in node.get("properties", {}).items():
        yield from schema_paths(sub, (*prefix, key))
    for key in node.get(LOCAL_ONLY, ()):
        yield (*prefix, key)
    if isinstance(node.get("additionalProperties"), dict):
        yield from schema_paths(node["additionalProperties"], (*prefix, "*"))
    if isinstance(node.get("items"), dict):
        yield from schema_paths(node["items"], (*prefix, "[]"))


def drift(kind: Kind, spec: Node, accepted: Iterable[Path_]) -> list[str]:
    """What one side has and the other lacks, each `<Kind>: spec.<path>: …`."""
    problems, read = [], set()
    for parts in sorted(accepted):
        where = locate(spec, parts)
        if where is None:
            problems.append(f"{kind.kind}: spec.{'.'.join(parts)}: accepted by a reader, not in the schema")
        else:
            read.add(where)
    read |= {p[:i] for p in read for i in range(1, len(p))}
    whole = {p for p in read if not any(len(q) > len(p) and q[: len(p)] == p for q in read)}
    for path in schema_paths(spec):
        if path not in read and not any(path[: len(w)] == w for w in whole):
            problems.append(f"{kind.kind}: spec.{'.'.join(path)}: in the schema, accepted by no reader")
    return problems


@pytest.fixture(scope="module")
def accepted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[Path_]]:
    """The paths accepted, with a `docker` of its own on PATH: seeds/002's images load whatever this machine has."""
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "docker").chmod(0o755)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("PATH", str(bin_dir))
        return accepted_paths(monkeypatch)


def test_the_schema_and_the_readers_take_the_same_fields(accepted: Mapping[str, set[Path_]]) -> None:
    assert [p for kind in KINDS for p in drift(kind, kind.spec, accepted[kind.kind])] == []


def test_every_kind_is_read(accepted: Mapping[str, set[Path_]]) -> None:
    assert {k.kind for k in KINDS} <= set(accepted)
    assert ("description",) in accepted["MCPGroup"]


def test_a_field_missing_from_the_schema_is_found(accepted: Mapping[str, set[Path_]]) -> None:
    kind = next(k for k in KINDS if k.kind == "MCPServer")
    spec = copy.deepcopy(kind.spec)
    del spec["properties"]["oidcConfig"]["properties"]["inline"]["properties"]["jwksUrl"]
    assert drift(kind, spec, accepted["MCPServer"]) == [
        "MCPServer: spec.oidcConfig.inline.jwksUrl: accepted by a reader, not in the schema"
    ]


def test_a_field_no_reader_takes_is_found(accepted: Mapping[str, set[Path_]]) -> None:
    kind = next(k for k in KINDS if k.kind == "MCPExternalAuthConfig")
    spec = copy.deepcopy(kind.spec)
    spec["properties"]["tokenExchange"]["properties"]["resource"] = string("RFC 8707 resource.")
    assert drift(kind, spec, accepted["MCPExternalAuthConfig"]) == [
        "MCPExternalAuthConfig: spec.tokenExchange.resource: in the schema, accepted by no reader"
    ]


def test_a_local_only_key_is_not_in_the_crd_but_is_read(accepted: Mapping[str, set[Path_]]) -> None:
    from hivegate.crds import crd

    external = next(k for k in KINDS if k.kind == "MCPExternalAuthConfig")
    header = crd(external)["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert "headerValue" not in header["headerInjection"]["properties"]
    assert ("headerInjection", "headerValue") in accepted["MCPExternalAuthConfig"]

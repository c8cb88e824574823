"""`deploy/crds/`: what `python -m hivegate.crds generate` writes, and CustomResourceDefinitions the API server takes.

The API server's own checks of a CRD that matter here, done on the files: the apiextensions.k8s.io/v1 shape (names,
scope, versions with one stored), a structural schema (every node typed, unless it keeps unknown fields or is an
int-or-string), defaults valid against their node, CEL rules that parse and name only declared fields, and printer
columns whose paths exist.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from hivegate.crds import GROUP, KINDS
from hivegate.crds.__main__ import main
from hivegate.crds.generate import render
from hivegate.crds.validate import cel_program, json_schema

ROOT = Path(__file__).resolve().parents[3]
CRDS = ROOT / "deploy" / "crds"
FILES = sorted(CRDS.glob("*.yaml"))
_TYPES = {"object", "array", "string", "integer", "number", "boolean"}


@functools.cache
def load(path: Path) -> dict[str, Any]:
    docs = [d for d in yaml.load_all(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if d]
    assert len(docs) == 1
    return docs[0]  # type: ignore[no-any-return]


def test_the_files_are_what_generate_writes() -> None:
    wanted = render()
    assert {p.name for p in FILES} == set(wanted)
    for path in FILES:
        assert path.read_text() == wanted[path.name], f"{path}: run python -m hivegate.crds generate deploy/crds"


def test_check_fails_on_a_stale_file_and_generate_repairs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "crds"
    shutil.copytree(CRDS, folder)
    assert main(["check", str(folder)]) == 0
    stale = folder / FILES[0].name
    stale.write_text(stale.read_text().replace("served: true", "served: false", 1))
    assert main(["check", str(folder)]) == 1
    assert capsys.readouterr().out == (
        f"{stale}: out of date; run python -m hivegate.crds generate {folder}\n"
    )  # fmt: skip
    main(["generate", str(folder)])
    assert main(["check", str(folder)]) == 0


def test_one_file_per_kind_in_the_toolhive_group() -> None:
    kinds = {load(p)["spec"]["names"]["kind"] for p in FILES}
    assert kinds == {"MCPServer", "VirtualMCPServer", "MCPExternalAuthConfig", "MCPGroup", "MCPOIDCConfig",
                     "MCPRemoteProxy"}  # fmt: skip


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_the_crd_shape(path: Path) -> None:
    crd = load(path)
    assert (crd["apiVersion"], crd["kind"]) == ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    spec, names = crd["spec"], crd["spec"]["names"]
    assert crd["metadata"]["name"] == f"{names['plural']}.{GROUP}"
    assert path.name == f"{GROUP}_{names['plural']}.yaml"
    assert spec["group"] == GROUP
    assert spec["scope"] == "Namespaced"
    assert names["listKind"] == names["kind"] + "List"
    assert names["singular"] == names["kind"].lower()
    assert names["shortNames"]
    assert all(re.fullmatch(r"[a-z0-9]+", s) for s in names["shortNames"])
    # `kubectl apply` (client side) keeps the whole object in an annotation of at most 256 KiB
    assert len(json.dumps(crd, separators=(",", ":"))) < 256 * 1024
    versions = {v["name"]: v for v in spec["versions"]}
    assert set(versions) == {"v1alpha1", "v1beta1"}
    assert all(v["served"] for v in versions.values())
    assert [n for n, v in versions.items() if v["storage"]] == ["v1beta1"]
    assert versions["v1alpha1"]["deprecated"] is True
    for version in versions.values():
        assert version["subresources"] == {"status": {}}
        schema = version["schema"]["openAPIV3Schema"]
        assert schema == versions["v1beta1"]["schema"]["openAPIV3Schema"]  # one schema: nothing to convert
        assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
        for column in version["additionalPrinterColumns"]:
            assert {"name", "type", "jsonPath"} <= set(column) <= {"name", "type", "jsonPath", "description"}
            assert column["type"] in {"string", "integer", "date", "boolean", "number"}
            assert _column_exists(schema, column["jsonPath"]), column


def _column_exists(schema: dict[str, Any], json_path: str) -> bool:
    if json_path == ".metadata.creationTimestamp":
        return True
    node = schema
    for part in re.sub(r"\[\?\(@\.type=='\w+'\)\]", ".[]", json_path).strip(".").split("."):
        node = node["items"] if part == "[]" else node.get("properties", {}).get(part, {})
        if not node:
            return False
    return True


def test_kubectl_get_shows_what_toolhive_shows() -> None:
    columns = {
        k.kind: [c["name"] for c in _crd(k.kind)["spec"]["versions"][1]["additionalPrinterColumns"]] for k in KINDS
    }
    assert columns["MCPServer"] == ["Status", "Ready", "Replicas", "URL", "Age"]
    assert columns["VirtualMCPServer"] == ["Phase", "URL", "Backends", "Age", "Ready"]
    assert columns["MCPRemoteProxy"] == ["Phase", "Remote URL", "URL", "Ready", "Age"]
    assert columns["MCPGroup"] == ["Servers", "Proxies", "Phase", "Checked", "Age"]
    checked = _crd("MCPGroup")["spec"]["versions"][1]["additionalPrinterColumns"][3]["jsonPath"]
    assert checked == ".status.conditions[?(@.type=='MCPServersChecked')].status"  # the condition the group sets
    assert columns["MCPExternalAuthConfig"] == ["Type", "Valid", "Age"]
    assert columns["MCPOIDCConfig"] == ["Source", "Valid", "Age"]
    short = {k.kind: _crd(k.kind)["spec"]["names"]["shortNames"] for k in KINDS}
    assert short["VirtualMCPServer"] == ["vmcp", "virtualmcp"]
    assert short["MCPRemoteProxy"] == ["rp", "mcprp"]


def _crd(kind: str) -> dict[str, Any]:
    return next(load(p) for p in FILES if load(p)["spec"]["names"]["kind"] == kind)


def _nodes(node: dict[str, Any], path: str = "") -> Any:
    yield path, node
    for key, sub in node.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _nodes(node[key], f"{path}.{key}")


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_the_schema_is_structural(path: Path) -> None:
    import jsonschema

    schema = load(path)["spec"]["versions"][1]["schema"]["openAPIV3Schema"]
    for where, node in _nodes(schema):
        assert not any(k.startswith("x-hivegate") for k in node), where
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, where
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], where
        elif not node.get("x-kubernetes-preserve-unknown-fields"):
            assert node.get("type") in _TYPES, f"{where}: no type"
        if node.get("type") == "array":
            assert isinstance(node.get("items"), dict), f"{where}: an array needs items"
        assert set(node.get("required", [])) <= set(node.get("properties", {})), where
        if "default" in node:
            jsonschema.validate(node["default"], json_schema(node))
        if where.startswith(".metadata"):
            assert node == {"type": "object"}


def _rules(path: Path) -> list[tuple[str, dict[str, Any], str]]:
    schema = load(path)["spec"]["versions"][1]["schema"]["openAPIV3Schema"]
    return [
        (where, node, r["rule"]) for where, node in _nodes(schema) for r in node.get("x-kubernetes-validations", [])
    ]


ALL_RULES = [(p.name, *r) for p in FILES for r in _rules(p)]


@pytest.mark.parametrize(("file", "where", "node", "rule"), ALL_RULES, ids=[f"{r[0]}{r[1]}" for r in ALL_RULES])
def test_every_cel_rule_parses_and_names_declared_fields(
    file: str, where: str, node: dict[str, Any], rule: str
) -> None:
    """The API server type-checks a rule against the schema when the CRD is applied: `self.a.b` must be declared."""
    cel_program(rule)
    for chain in re.findall(r"self((?:\.\w+)+)", rule):
        at = node
        for part in chain.strip(".").split("."):
            if part in ("size", "all", "exists", "startsWith", "matches"):
                break
            assert part in at.get("properties", {}), f"{file}{where}: {rule!r} names {part!r}, not declared"
            at = at["properties"][part]


def test_there_are_rules_for_each_strategy_block_and_the_exclusive_refs() -> None:
    rules = {r[3] for r in ALL_RULES}
    for block in ("tokenExchange", "headerInjection", "bearerToken", "upstreamInject", "embeddedAuthServer"):
        assert f"self.type == '{block}' ? has(self.{block}) : !has(self.{block})" in rules
    assert "!(has(self.oidcConfig) && has(self.oidcConfigRef))" in rules
    assert "!(has(self.authzConfig) && has(self.authzConfigRef))" in rules

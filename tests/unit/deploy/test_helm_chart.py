"""The Helm chart in deploy/helm/hivegate-operator, rendered by `support.helm` (a renderer of the Go-template subset
the chart uses; helm is not packaged here): what `helm install` would create, and that it agrees with the operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hivegate.cli.main import build_parser
from hivegate.operator.kube import GROUP, KINDS
from support.helm import render_chart

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "hivegate-operator"


def _one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, [(o["kind"], o["metadata"]["name"]) for o in objects]
    return found[0]


def test_the_default_install() -> None:
    objects = render_chart(CHART, name="hg", namespace="hivegate-system")
    assert sorted(o["kind"] for o in objects) == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Role",
                                                  "RoleBinding", "Service", "ServiceAccount"]  # fmt: skip
    deployment = _one(objects, "Deployment")
    assert deployment["metadata"]["namespace"] == "hivegate-system"
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "ghcr.io/hivegate/hivegate:0.1.0"
    args = build_parser().parse_args(container["args"])  # the real CLI accepts what the chart passes
    assert args.command == "operator"
    assert args.image == "ghcr.io/hivegate/hivegate:0.1.0"
    assert args.namespace == []
    assert not args.no_leader_election
    assert args.health_port == 8081
    assert (args.log_format, args.log_output) == ("json", "stdout")  # one stream of JSON lines
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["limits"] == {"memory": "384Mi"}
    lease = _one(objects, "Role")
    assert lease["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                               "verbs": ["get", "create", "patch", "update"]}]  # fmt: skip
    binding = _one(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hg", "namespace": "hivegate-system"}]


def test_values_for_namespaces_image_and_one_replica() -> None:
    values = {"namespaces": ["team-a", "team-b"], "gatewayImage": "registry.local/hivegate:dev", "replicaCount": 1,
              "leaderElection": {"enabled": False}, "podAnnotations": {"team": "mcp"}, "metrics": {"service": False},
              "nodeSelector": {"kubernetes.io/os": "linux"}}  # fmt: skip
    objects = render_chart(CHART, values=values)
    assert "Role" not in [o["kind"] for o in objects]
    assert "Service" not in [o["kind"] for o in objects]
    deployment = _one(objects, "Deployment")
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"]["team"] == "mcp"
    assert template["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    args = build_parser().parse_args(template["spec"]["containers"][0]["args"])
    assert args.namespace == ["team-a", "team-b"]
    assert args.image == "registry.local/hivegate:dev"
    assert args.no_leader_election


def test_the_cluster_role_covers_what_the_operator_does() -> None:
    rules = _one(render_chart(CHART), "ClusterRole")["rules"]
    granted = {(group, resource, verb) for r in rules for group in r["apiGroups"] for resource in r["resources"]
               for verb in r["verbs"]}  # fmt: skip
    for kind, (api_version, plural, _) in KINDS.items():
        group = api_version.rpartition("/")[0]
        if kind == "Lease":
            continue  # the leader Role, in the release's namespace
        writes = kind not in ("Secret", "Pod") and group != GROUP
        for verb in ("get", "list", "watch") if kind != "Event" else ():
            assert (group, plural, verb) in granted, (kind, verb)
        for verb in ("create", "patch") if writes else ():
            assert (group, plural, verb) in granted, (kind, verb)
        if group == GROUP:
            assert (group, f"{plural}/status", "patch") in granted
    assert ("", "pods/attach", "create") in granted  # to grant it to the gateways of stdio images


def test_the_charts_crds_are_deploy_crds() -> None:
    source = REPO / "deploy" / "crds"
    if not source.is_dir():
        pytest.skip("deploy/crds is not in this tree yet (the CRDs' own change adds it)")
    charted = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    assert charted == {p.name: p.read_text() for p in source.glob("*.yaml")}, "copy deploy/crds/*.yaml into crds/"


def test_the_charts_crds_serve_every_kind_the_operator_watches() -> None:
    import yaml

    served = set()
    for path in (CHART / "crds").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                versions = {v["name"]: v for v in doc["spec"]["versions"]}
                assert versions["v1beta1"]["storage"] is True
                assert "status" in versions["v1beta1"]["subresources"]
                served.add(doc["spec"]["names"]["kind"])
    assert served == {k for k, (v, _, _) in KINDS.items() if v.startswith(GROUP)}

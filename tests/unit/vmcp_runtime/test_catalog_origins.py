"""Where each advertised name comes from (`Catalog.route_of`, `BackendPool.locate`), for the policies' entity
hierarchy: the same backend whatever the naming strategy."""

from __future__ import annotations

from typing import Any

from hivegate.authserver.secrets import SecretResolver
from hivegate.authz.entities import Origin
from hivegate.vmcp.catalog import BackendLists, Route, build_catalog
from hivegate.vmcp.pool import BackendPool
from hivegate.vmcp.spec import Aggregation, ToolOverride, WorkloadTools, parse_vmcp_config


def tools(*names: str) -> tuple[dict[str, Any], ...]:
    return tuple({"name": n, "inputSchema": {"type": "object"}} for n in names)


LISTS = {
    "github": BackendLists(
        tools=tools("search", "create_issue"),
        prompts=({"name": "review"},),
        resources=({"uri": "file:///README.md", "name": "readme"},),
        templates=({"uriTemplate": "repo://{name}/issues", "name": "issues"},),
    ),
    "k8s": BackendLists(tools=tools("search", "get_pods")),
}
ORDER = ("github", "k8s")


def test_every_strategy_routes_each_name_to_its_backend() -> None:
    prefix = build_catalog(LISTS, Aggregation(), ORDER)
    assert prefix.route_of("call_tool", "k8s_search") == Route("k8s", "search")
    assert prefix.route_of("get_prompt", "github_review") == Route("github", "review")
    priority = build_catalog(LISTS, Aggregation(conflict_resolution="priority", priority_order=("k8s",)), ORDER)
    assert priority.route_of("call_tool", "search") == Route("k8s", "search")
    assert priority.route_of("call_tool", "github_search") == Route("github", "search")
    assert priority.route_of("call_tool", "create_issue") == Route("github", "create_issue")
    manual = Aggregation(
        conflict_resolution="manual",
        tools=(WorkloadTools("k8s", overrides={"search": ToolOverride(name="find_pods")}),),
    )
    catalog = build_catalog(LISTS, manual, ORDER)
    assert catalog.route_of("call_tool", "find_pods") == Route("k8s", "search")
    assert catalog.route_of("call_tool", "search") == Route("github", "search")
    # resources keep their URIs: an exact one, an advertised template, a URI the template expands to
    assert catalog.route_of("read_resource", "file:///README.md") == Route("github", "file:///README.md")
    assert catalog.route_of("read_resource", "repo://{name}/issues") == Route("github", "repo://{name}/issues")
    assert catalog.route_of("read_resource", "repo://hivegate/issues") == Route("github", "repo://hivegate/issues")
    assert catalog.route_of("call_tool", "nothing") is None
    assert catalog.names()["Tool"] == frozenset({"search", "create_issue", "find_pods", "get_pods"})


def test_the_pool_locates_names_of_client_sessions_catalogs_unless_they_disagree() -> None:
    """Caller-scoped backends are listed per client session: the names those catalogs showed are located too, and
    a name two sessions were shown from different backends is located nowhere (decided as the virtual server)."""
    cfg = parse_vmcp_config(
        {"name": "v", "backends": [{"name": "github", "url": "http://127.0.0.1:1/mcp"},
                                    {"name": "k8s", "url": "http://127.0.0.1:2/mcp"}],
         "incomingAuth": {"type": "anonymous"},
         "aggregation": {"conflictResolution": "priority", "conflictResolutionConfig": {"priorityOrder": ["k8s"]}}},
        resolver=SecretResolver(),
    )  # fmt: skip
    pool = BackendPool(cfg, {}, caller_scoped=frozenset({"github", "k8s"}))
    pool.build({"github": LISTS["github"]})
    assert pool.locate("call_tool", "search") == Origin("github", "search")
    assert pool.locate("get_prompt", "review") == Origin("github", "review")
    pool.build(LISTS)  # another caller is shown `search` from k8s (it has priority)
    assert pool.locate("call_tool", "search") is None
    assert pool.locate("call_tool", "get_pods") == Origin("k8s", "get_pods")

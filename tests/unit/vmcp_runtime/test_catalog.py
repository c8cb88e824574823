"""The virtual MCP server's catalog: what each conflict strategy advertises, per-backend filter / excludeAll /
overrides, resources and templates, and (property test) that every advertised name is unique and routes back to a
backend offering that tool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivegate.vmcp.catalog import BackendLists, ConflictError, Owners, Route, build_catalog, template_matcher
from hivegate.vmcp.spec import Aggregation, ToolOverride, WorkloadTools


def tools(*names: str) -> tuple[dict[str, Any], ...]:
    return tuple({"name": n, "description": f"{n} tool", "inputSchema": {"type": "object"}} for n in names)


def names(items: tuple[Mapping[str, Any], ...]) -> list[str]:
    return [str(i["name"]) for i in items]


LISTS = {
    "github": BackendLists(tools=tools("search", "create_issue"), prompts=({"name": "review"},)),
    "k8s": BackendLists(tools=tools("search", "get_pods"), prompts=({"name": "review"},)),
}
ORDER = ("github", "k8s")


def test_prefix_is_the_default_and_prefixes_every_tool_and_prompt() -> None:
    catalog = build_catalog(LISTS, Aggregation(), ORDER)
    assert names(catalog.tools) == ["github_search", "github_create_issue", "k8s_search", "k8s_get_pods"]
    assert names(catalog.prompts) == ["github_review", "k8s_review"]
    assert catalog.tool_routes["k8s_search"] == Route("k8s", "search")
    assert catalog.prompt_routes["github_review"] == Route("github", "review")


def test_prefix_format_is_configurable() -> None:
    catalog = build_catalog(LISTS, Aggregation(prefix_format="{workload}."), ORDER)
    assert "k8s.get_pods" in names(catalog.tools)
    assert catalog.tool_routes["github.search"] == Route("github", "search")


def test_priority_gives_a_clashing_name_to_the_first_listed_backend() -> None:
    catalog = build_catalog(LISTS, Aggregation("priority", priority_order=("k8s", "github")), ORDER)
    assert sorted(names(catalog.tools)) == ["create_issue", "get_pods", "search"]
    assert catalog.tool_routes["search"] == Route("k8s", "search")
    assert catalog.tool_routes["create_issue"] == Route("github", "create_issue")


def test_priority_prefixes_a_clashing_backend_missing_from_the_order() -> None:
    lists = {**LISTS, "jira": BackendLists(tools=tools("search"))}
    catalog = build_catalog(lists, Aggregation("priority", priority_order=("github",)), (*ORDER, "jira"))
    assert catalog.tool_routes["search"] == Route("github", "search")
    assert catalog.tool_routes["k8s_search"] == Route("k8s", "search")
    assert catalog.tool_routes["jira_search"] == Route("jira", "search")


def test_manual_refuses_an_unresolved_clash_naming_tool_and_backends() -> None:
    with pytest.raises(ConflictError, match=r"tool 'search' is offered by backends github, k8s"):
        build_catalog(LISTS, Aggregation("manual"), ORDER)


def test_manual_accepts_a_clash_resolved_by_an_override() -> None:
    rules = (WorkloadTools("k8s", overrides={"search": ToolOverride(name="k8s_search", description="Find pods")}),)
    catalog = build_catalog(LISTS, Aggregation("manual", tools=rules), ORDER)
    assert names(catalog.tools) == ["search", "create_issue", "k8s_search", "get_pods"]
    assert catalog.tool_routes["k8s_search"] == Route("k8s", "search")
    renamed = next(t for t in catalog.tools if t["name"] == "k8s_search")
    assert renamed["description"] == "Find pods"


def test_manual_prefixes_a_clashing_prompt_and_keeps_a_unique_one_bare() -> None:
    lists = {
        "github": BackendLists(prompts=({"name": "review"}, {"name": "triage"})),
        "k8s": BackendLists(prompts=({"name": "review"},)),
    }
    catalog = build_catalog(lists, Aggregation("manual"), ORDER)
    assert names(catalog.prompts) == ["github_review", "triage", "k8s_review"]
    assert catalog.prompt_routes["k8s_review"] == Route("k8s", "review")
    assert catalog.prompt_routes["triage"] == Route("github", "triage")


def test_manual_refuses_a_new_catalog_that_would_rename_a_prompt_served_bare() -> None:
    before = build_catalog({"github": BackendLists(prompts=({"name": "review"},))}, Aggregation("manual"), ORDER)
    assert names(before.prompts) == ["review"]
    later = {
        "github": BackendLists(prompts=({"name": "review"},)),
        "k8s": BackendLists(prompts=({"name": "review"},)),  # e.g. a backend that was down at start-up
    }
    with pytest.raises(ConflictError, match=r"prompt 'review' is offered by backends github, k8s"):
        build_catalog(later, Aggregation("manual"), ORDER, previous=before)
    # a prompt that was already prefixed stays so: the same lists rebuild without complaint
    both = build_catalog(later, Aggregation("manual"), ORDER)
    assert names(build_catalog(later, Aggregation("manual"), ORDER, previous=both).prompts) == [
        "github_review",
        "k8s_review",
    ]


def test_manual_refuses_a_prefixed_prompt_equal_to_another_bare_one() -> None:
    lists = {
        "github": BackendLists(prompts=({"name": "review"},)),
        "k8s": BackendLists(prompts=({"name": "review"}, {"name": "github_review"})),
    }
    with pytest.raises(ConflictError, match=r"prompt 'github_review' of backend .* also the name"):
        build_catalog(lists, Aggregation("manual"), ORDER)


def test_manual_accepts_a_clash_resolved_by_a_filter() -> None:
    rules = (WorkloadTools("github", filter=("create_issue",)),)
    lists = {b: BackendLists(tools=lists.tools) for b, lists in LISTS.items()}
    catalog = build_catalog(lists, Aggregation("manual", tools=rules), ORDER)
    assert names(catalog.tools) == ["create_issue", "search", "get_pods"]
    assert catalog.tool_routes["search"] == Route("k8s", "search")


def test_filter_matches_the_original_or_the_overridden_name() -> None:
    rules = (
        WorkloadTools("github", filter=("issue",), overrides={"create_issue": ToolOverride(name="issue")}),
        WorkloadTools("k8s", filter=("get_pods",)),
    )
    catalog = build_catalog(LISTS, Aggregation(tools=rules), ORDER)
    assert names(catalog.tools) == ["github_issue", "k8s_get_pods"]
    assert catalog.tool_routes["github_issue"] == Route("github", "create_issue")


def test_exclude_all_hides_a_backend_tools_but_not_its_prompts() -> None:
    catalog = build_catalog(LISTS, Aggregation(tools=(WorkloadTools("github", exclude_all=True),)), ORDER)
    assert names(catalog.tools) == ["k8s_search", "k8s_get_pods"]
    assert names(catalog.prompts) == ["github_review", "k8s_review"]


def test_exclude_all_tools_hides_every_tool() -> None:
    catalog = build_catalog(LISTS, Aggregation(exclude_all_tools=True), ORDER)
    assert catalog.tools == ()
    assert catalog.tool_routes == {}


def test_override_description_without_a_new_name() -> None:
    rules = (WorkloadTools("k8s", overrides={"get_pods": ToolOverride(description="List pods")}),)
    catalog = build_catalog(LISTS, Aggregation(tools=rules), ORDER)
    pods = next(t for t in catalog.tools if t["name"] == "k8s_get_pods")
    assert pods["description"] == "List pods"
    assert pods["inputSchema"] == {"type": "object"}


def test_a_backend_without_lists_offers_nothing() -> None:
    catalog = build_catalog({"github": LISTS["github"]}, Aggregation(), ORDER)
    assert names(catalog.tools) == ["github_search", "github_create_issue"]


def test_a_prefixed_name_equal_to_a_bare_one_is_a_conflict_never_a_silent_winner(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lists = {"a": BackendLists(tools=tools("b_x")), "b": BackendLists(tools=tools("x"))}
    catalog = build_catalog(lists, Aggregation("priority", priority_order=("a",), prefix_format="{workload}_"), "ab")
    # no clash, so both stay bare: a's "b_x" and b's "x"
    assert catalog.tool_routes == {"b_x": Route("a", "b_x"), "x": Route("b", "x")}
    lists = {"a": BackendLists(tools=tools("b_x", "x")), "b": BackendLists(tools=tools("x"))}
    catalog = build_catalog(lists, Aggregation("priority", priority_order=("a",)), "ab")
    # b loses "x" to a and would be advertised as "b_x", which a offers too: neither gets "b_x"
    assert catalog.tool_routes == {"x": Route("a", "x")}
    assert "tool 'b_x' is the name of backends a, b: a conflict, so none of them is advertised" in caplog.text


def test_a_name_once_advertised_never_moves_to_another_backend(caplog: pytest.LogCaptureFixture) -> None:
    """The review's attack: with `{workload}-`, backend github starts to offer `enterprise-create_issue`, the name
    of backend github-enterprise's `create_issue` (the configuration refuses such names; here a list change)."""
    owners = Owners()
    before = {"a": BackendLists(tools=tools("x")), "b": BackendLists(tools=tools("y"))}
    owners.record(build_catalog(before, Aggregation("manual"), "ab", owners=owners))
    later = {"a": BackendLists(tools=tools("y")), "b": BackendLists()}  # b went away and a now offers "y"
    catalog = build_catalog(later, Aggregation("manual"), "ab", owners=owners)
    assert catalog.tool_routes == {}
    assert "tool 'y' of backend a is not advertised: the name was advertised for backend 'b'" in caplog.text
    back = {"a": BackendLists(tools=tools("x")), "b": BackendLists(tools=tools("y"))}
    assert build_catalog(back, Aggregation("manual"), "ab", owners=owners).tool_routes == {
        "x": Route("a", "x"),
        "y": Route("b", "y"),
    }


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "an empty name"),
        ("x" * 129, "a name of 129 characters (at most 128)"),
        ("evil\nname", "a name with characters other than A-Z, a-z, 0-9, '_', '-' and '.'"),
        ("wеather", "a name with characters other than A-Z, a-z, 0-9, '_', '-' and '.'"),  # a Cyrillic "е"
        ("has space", "a name with characters other than A-Z, a-z, 0-9, '_', '-' and '.'"),
    ],
)
def test_names_breaking_the_mcp_naming_rule_are_never_advertised(
    name: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    lists = {"a": BackendLists(tools=tools(name, "ok.name-1_2"), prompts=({"name": name}, {"name": "fine"}))}
    catalog = build_catalog(lists, Aggregation(), "a")
    assert names(catalog.tools) == ["a_ok.name-1_2"]
    assert names(catalog.prompts) == ["a_fine"]
    assert problem in caplog.text


def test_a_name_that_grows_too_long_with_its_prefix_is_not_advertised() -> None:
    lists = {"a": BackendLists(tools=tools("x" * 128))}
    assert build_catalog(lists, Aggregation(), "a").tools == ()
    assert names(build_catalog(lists, Aggregation("manual"), "a").tools) == ["x" * 128]


def test_resources_and_templates_keep_their_uris_first_backend_in_priority_wins() -> None:
    lists = {
        "a": BackendLists(
            resources=({"uri": "file:///shared"}, {"uri": "file:///a"}), templates=({"uriTemplate": "t://{id}"},)
        ),
        "b": BackendLists(
            resources=({"uri": "file:///shared"},),
            templates=({"uriTemplate": "t://{id}"}, {"uriTemplate": "u://{+path}"}),
        ),
    }
    catalog = build_catalog(lists, Aggregation("priority", priority_order=("b",)), "ab")
    assert [r["uri"] for r in catalog.resources] == ["file:///shared", "file:///a"]
    assert catalog.resource_backend("file:///shared") == "b"
    assert catalog.resource_backend("file:///a") == "a"
    assert catalog.resource_backend("t://42") == "b"
    assert catalog.resource_backend("u://deep/path/here") == "b"
    assert catalog.resource_backend("t://a/b") is None
    assert catalog.resource_backend("nothing://here") is None


@pytest.mark.parametrize(
    ("template", "uri", "matches"),
    [
        ("users://{id}/profile", "users://42/profile", True),
        ("users://{id}/profile", "users://4/2/profile", False),
        ("files://{+path}", "files://a/b/c.txt", True),
        ("search://q{?term,limit}", "search://q?term=x&limit=3", True),
        ("plain://fixed", "plain://fixed", True),
        ("plain://fixed", "plain://fixedX", False),
        ("dots://a.b/{x}", "dots://aXb/1", False),
    ],
)
def test_template_matcher(template: str, uri: str, matches: bool) -> None:
    assert (template_matcher(template).fullmatch(uri) is not None) is matches


# A property: whatever the backends offer, the advertised names are unique and each routes to a backend that really
# offers the tool under that original name; `prefix` loses no tool; `manual` either refuses or keeps names bare.

BACKENDS = ("alpha", "beta", "gamma")
tool_names = st.sampled_from(["search", "get", "list", "alpha_search", "beta_get", "x"])
offers = st.dictionaries(st.sampled_from(BACKENDS), st.lists(tool_names, unique=True, max_size=5), max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    offered=offers,
    strategy=st.sampled_from(["prefix", "priority", "manual"]),
    order=st.permutations(BACKENDS),
    listed=st.lists(st.sampled_from(BACKENDS), unique=True, min_size=1),
)
def test_advertised_names_are_unique_and_route_back(
    offered: dict[str, list[str]], strategy: str, order: list[str], listed: list[str]
) -> None:
    lists = {b: BackendLists(tools=tools(*ns)) for b, ns in offered.items()}
    aggregation = Aggregation(strategy, priority_order=tuple(listed))  # type: ignore[arg-type]
    try:
        catalog = build_catalog(lists, aggregation, order)
    except ConflictError:
        all_names = [n for ns in offered.values() for n in ns]
        assert strategy == "manual"
        assert len(all_names) > len(set(all_names))
        return
    advertised = names(catalog.tools)
    assert len(advertised) == len(set(advertised))
    assert set(advertised) == set(catalog.tool_routes)
    for route in catalog.tool_routes.values():
        assert route.name in offered[route.backend]
    routed = {(r.backend, r.name) for r in catalog.tool_routes.values()}
    assert len(routed) == len(catalog.tool_routes)  # no backend tool advertised twice
    if strategy == "manual":
        assert sorted(advertised) == sorted(n for ns in offered.values() for n in ns)
        assert all(catalog.tool_routes[n].name == n for n in advertised)
    if strategy == "prefix":
        expected = {f"{b}_{n}" for b, ns in offered.items() for n in ns}
        assert set(advertised) == expected

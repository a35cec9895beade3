"""The operator's ClusterRole grants exactly what docs/operator.md "RBAC needed" lists, by name.

One verb short and the operator fails on a real cluster; one verb too many and the chart asks a
platform team for more than it uses. The e2e tests exercise the same rules against a real API server
by running the operator under the chart's ServiceAccount.
"""

from __future__ import annotations

import re

from test_chart_common import ROOT, one, render

from hermes_operator.routing import EPP_CLUSTER_ROLE, epp_cluster_role_rules

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)
OPERATOR_ROLE = "hermes-cache-operator"

# The cluster-scoped grants kopf needs, which docs/operator.md describes in prose below its table.
KOPF_DISCOVERY: set[Grant] = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
}


def _granted() -> set[Grant]:
    role = one(render(), "ClusterRole", OPERATOR_ROLE)
    return {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def _documented() -> set[Grant]:
    text = (ROOT / "docs" / "operator.md").read_text()
    section = text.split("### RBAC needed", 1)[1]
    grants: set[Grant] = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("API group", "") or set(cells[0]) <= {"-"}:
            continue
        if not line.lstrip().startswith("|"):
            continue
        group = "" if cells[0].startswith('""') else cells[0]
        for resource in re.split(r",\s*", cells[1]):
            for verb in re.split(r",\s*", cells[2]):
                grants.add((group, resource, verb))
    assert grants, "no RBAC table found under '### RBAC needed' in docs/operator.md"
    for g, r, _ in KOPF_DISCOVERY:
        assert f"`{r}` list, watch" in section, (
            f"docs/operator.md no longer names {g or 'core'} {r} list, watch"
        )
    return grants | KOPF_DISCOVERY


def test_no_wildcards() -> None:
    role = one(render(), "ClusterRole", OPERATOR_ROLE)
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
            assert all("*" not in item for item in rule[key]), rule
        assert "resourceNames" not in rule or "*" not in rule["resourceNames"]
        # The one grant by name: binding the endpoint picker's ClusterRole (spec.routing).
        if "clusterroles" in rule["resources"]:
            assert (rule["resources"], rule["verbs"]) == (["clusterroles"], ["bind"]), rule
            assert rule["resourceNames"] == [EPP_CLUSTER_ROLE], rule
        assert "nonResourceURLs" not in rule


def test_the_cluster_role_grants_exactly_what_the_operator_documents() -> None:
    granted, documented = _granted(), _documented()
    assert sorted(documented - granted) == [], "the operator needs these and the chart does not grant them"
    assert sorted(granted - documented) == [], "the chart grants these and the operator does not use them"


def test_pods_only_listed_and_secrets_only_by_name() -> None:
    granted = _granted()
    resources = {r for _, r, _ in granted}
    assert not resources & {"pods/exec", "pods/log", "serviceaccounts/token", "roles", "clusterrolebindings"}
    # ClusterRoles only bound (the endpoint picker's, by name: test_no_wildcards), never written.
    assert {v for _, r, v in granted if r == "clusterroles"} == {"bind"}
    # Pods are listed to say why a policy is not ready; never changed, execed into or watched.
    assert {v for _, r, v in granted if r == "pods"} == {"list"}
    # A policy's Redis password (passwordSecretRef) is read by name; list/watch would hand out every Secret.
    assert {v for _, r, v in granted if r == "secrets"} <= {"get"}


def test_rbac_create_false_leaves_rbac_to_the_platform_team() -> None:
    objs = render({"rbac": {"create": False}})
    assert not [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]


def test_the_endpoint_picker_role_is_what_the_operator_binds() -> None:
    """spec.routing binds each EPP to this ClusterRole by name; its rules are upstream's EPP reads."""
    role = one(render(), "ClusterRole", EPP_CLUSTER_ROLE)
    assert role["rules"] == epp_cluster_role_rules()
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"get", "watch", "list"}

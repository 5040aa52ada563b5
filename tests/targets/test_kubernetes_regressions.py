"""Regressions found in review, each reduced to the smallest policy that showed it."""

from __future__ import annotations

import pytest

import netpol_dsl as n
from netpol_dsl.compiler import compile_policy
from netpol_dsl.verify import verify

SHOP = n.namespace("shop")
WEB = SHOP.pods(app="web")
CLUSTER = n.cluster_info(pod_cidrs=["10.244.0.0/16"], node_cidrs=["10.224.0.0/16"])


def test_cidr_entirely_inside_the_pod_cidr_allows_nothing_rather_than_everything() -> None:
    """An empty `to:` list means *all peers*; a peer carved away completely must drop the rule."""
    policy = n.Policy("p", cluster=CLUSTER, rules=[n.allow(WEB >> n.cidr("10.244.1.0/24"), n.tcp(443),
                                                            direction="egress")])
    [m] = compile_policy(policy, "kubernetes").manifests
    assert m.body["spec"]["policyTypes"] == ["Egress"]
    assert "egress" not in m.body["spec"]  # isolated, nothing allowed


def test_world_carves_pod_service_and_node_cidrs() -> None:
    policy = n.Policy("p", cluster=n.cluster_info(pod_cidrs=["10.244.0.0/16"], service_cidrs=["10.96.0.0/12"],
                                                  node_cidrs=["10.224.0.0/16"]),
                      rules=[n.allow(WEB >> n.world(), n.tcp(443), direction="egress")])
    [m] = compile_policy(policy, "kubernetes").manifests
    blocks = [p["ipBlock"] for p in m.body["spec"]["egress"][0]["to"]]
    assert blocks[0] == {"cidr": "0.0.0.0/0", "except": ["10.96.0.0/12", "10.224.0.0/16", "10.244.0.0/16"]}


def test_private_cidr_without_node_cidrs_is_refused() -> None:
    policy = n.Policy("p", cluster=n.cluster_info(pod_cidrs=["10.244.0.0/16"]),
                      rules=[n.allow(WEB >> n.world(), n.tcp(443), direction="egress")])
    with pytest.raises(n.CompileError) as exc:
        compile_policy(policy, "kubernetes")
    assert [d.code.name for d in exc.value.diagnostics] == ["NPD207", "NPD207"]  # IPv4 and IPv6 halves of world


def test_ingress_only_default_deny_is_not_widened_to_egress_in_its_object() -> None:
    policy = n.Policy("p", owns=[SHOP], baseline=n.baseline(default_deny="ingress"))
    manifests = compile_policy(policy, "kubernetes").manifests
    by_name = {m.name: m.body["spec"] for m in manifests}
    assert by_name["default-deny"]["policyTypes"] == ["Ingress"]
    assert by_name["allow-dns"]["policyTypes"] == ["Egress"]


def test_one_diagnostic_per_rule_not_per_half() -> None:
    policy = n.Policy("p", rules=[n.allow(WEB >> SHOP.pods(app="api"), n.tcp(80), http=n.get("/"))])
    with pytest.raises(n.CompileError) as exc:
        compile_policy(policy, "kubernetes")
    assert [d.code.name for d in exc.value.diagnostics] == ["NPD202"]


def test_blocked_domains_are_deny_rules_that_kubernetes_refuses() -> None:
    policy = n.Policy("p", owns=[SHOP], baseline=n.baseline(blocked_domains=["evil.example.com"]))
    with pytest.raises(n.CompileError) as exc:
        compile_policy(policy, "kubernetes")
    assert [d.code.name for d in exc.value.diagnostics] == ["NPD209"]


def test_absent_requirement_on_an_undeclared_namespace_label_is_not_assumed() -> None:
    """A subject carved by a namespace-label deny depends on labels the module never declared: refuse."""
    policy = n.Policy("repro", owns=[SHOP], baseline=n.baseline(default_deny="egress", dns=None), rules=[
        n.deny(n.namespaces(n.label("env").exists(), {"kubernetes.io/metadata.name": "shop"})
               >> SHOP.pods(app="db"), tier="security", direction="egress"),
        n.allow(SHOP >> SHOP.pods(app="db"), n.tcp(5432), direction="egress"),
    ])
    with pytest.raises(n.CompileError) as exc:
        compile_policy(policy, "kubernetes")
    assert {d.code.name for d in exc.value.diagnostics} == {"NPD204"}


def test_service_accounts_are_refused_once_per_rule_whichever_side_names_them() -> None:
    """NetworkPolicy selects pods only by labels (NPD211): as subject, as peer, in a deny."""
    account = n.service_account("shop", "web")
    for rule in (n.allow(account >> SHOP.pods(app="api"), n.tcp(80)),
                 n.allow(SHOP.pods(app="api") >> WEB.service_account("web"), n.tcp(80), direction="egress"),
                 n.deny(account >> n.anything())):
        with pytest.raises(n.CompileError) as exc:
            compile_policy(n.Policy("p", owns=[SHOP], baseline=n.baseline(), rules=[rule]), "kubernetes")
        [d] = exc.value.diagnostics
        assert d.code.name == "NPD211" and d.location == rule.location
        assert "selects pods by service account" in d.message and "'cilium' or 'calico'" in d.hint


def test_expectations_may_name_service_accounts_on_kubernetes() -> None:
    """Only rules go to the target: an expectation about an account is checked on the synthesized pods."""
    api = SHOP.pods(app="api")
    policy = n.Policy("p", owns=[SHOP], baseline=n.baseline(), rules=[n.allow(WEB >> api, n.tcp(8080))],
                      expectations=[n.expect(WEB.service_account("web")).reaches(api, n.tcp(8080)),
                                    n.expect(n.service_account("shop", "web")).reaches(api, n.tcp(8080))])
    [failure] = verify(policy, "kubernetes")
    assert "expectation 'shop/serviceAccount=web reaches shop/app=api on tcp/8080' fails" in failure.message

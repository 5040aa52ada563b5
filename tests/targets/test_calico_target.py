"""The calico target: structure, options and errors (semantics: test_calico_properties.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import netpol_dsl as n
from netpol_dsl.compiler import compile_policy, make_target
from netpol_dsl.diagnostics import Code, CompileError
from netpol_dsl.ir.selectors import Constraint, Selector, Shape
from netpol_dsl.render.yaml import dump_all
from netpol_dsl.targets.calico import CalicoTarget
from netpol_dsl.targets.calico.selectors import Unquotable, expression, quote

SHOP = n.namespace("shop")
WEB, API = SHOP.pods(app="web"), SHOP.pods(app="api")


def _bodies(policy: n.Policy, target: CalicoTarget | str = "calico") -> dict[str, dict[str, Any]]:
    return {m.filename: dict(m.body) for m in compile_policy(policy, target).manifests}


def _codes(policy: n.Policy, target: CalicoTarget | str = "calico") -> list[Code]:
    with pytest.raises(CompileError) as exc:
        compile_policy(policy, target)
    return [d.code for d in exc.value.diagnostics]


def test_selector_expressions_cover_every_constraint_shape() -> None:
    sel = Selector((
        Constraint("a", Shape.IN, ("1",)),
        Constraint("b", Shape.IN, ("x", "y")),
        Constraint("c", Shape.ABSENT),
        Constraint("d", Shape.NOT_IN, ("z",), True),
        Constraint("e", Shape.NOT_IN, ("p", "q"), False),
        Constraint("f", Shape.NOT_IN, (), True),
    ))
    assert expression(sel) == ('a == "1" && b in {"x", "y"} && !has(c) && has(d) && d != "z" && '
                               'e not in {"p", "q"} && has(f)')
    assert expression(Selector()) == "all()"


def test_values_are_quoted_with_the_quote_they_do_not_contain() -> None:
    assert quote("plain") == '"plain"'
    assert quote('say "hi"') == "'say \"hi\"'"
    with pytest.raises(Unquotable):
        quote("both ' and \"")


def test_tiers_policies_and_default_deny_are_laid_out_for_calicos_walk() -> None:
    policy = n.Policy("shop", owns=[SHOP], baseline=n.baseline(default_deny="both"), rules=[
        n.allow(WEB >> API, n.tcp(8080)),
        n.deny(SHOP.pods(quarantine="true") >> n.anything(), tier="security", direction="egress"),
        n.pass_(WEB >> API, n.tcp(9090), tier="security"),
    ])
    bodies = _bodies(policy)
    tiers = {b["metadata"]["name"]: b["spec"] for b in bodies.values() if b["kind"] == "Tier"}
    assert tiers["security"] == {"order": 100, "defaultAction": "Pass"}
    assert tiers["application"] == {"order": 300, "defaultAction": "Pass"}
    by_name = {b["metadata"]["name"]: b["spec"] for b in bodies.values() if b["kind"] == "NetworkPolicy"}
    assert by_name["security.quarantine-deny"]["order"] == 100
    assert by_name["security.web-pass"]["order"] == 200
    assert by_name["security.web-pass"]["egress"][0]["action"] == "Pass"
    assert by_name["application.web"]["order"] == 300
    deny = by_name["default-deny"]
    assert deny == {"tier": "default", "order": 1000, "selector": "all()", "types": ["Ingress", "Egress"]}


def test_an_allow_list_isolates_its_subject_in_the_default_tier() -> None:
    bodies = _bodies(n.Policy("p", rules=[n.allow(WEB >> API, n.tcp(80))]))
    isolation = sorted((b["spec"]["selector"], b["spec"]["types"]) for b in bodies.values()
                       if b["kind"] == "NetworkPolicy" and b["spec"]["tier"] == "default")
    assert isolation == [('app == "api"', ["Ingress"]), ('app == "web"', ["Egress"])]


def test_workloads_in_several_namespaces_get_a_global_policy_limited_to_pods() -> None:
    teams = n.namespaces(team="a").pods(app="web")
    bodies = _bodies(n.Policy("p", rules=[n.allow(teams >> API, n.tcp(80))]))
    gnps = {b["metadata"]["name"]: b["spec"] for b in bodies.values() if b["kind"] == "GlobalNetworkPolicy"}
    assert sorted(gnps) == ["application.p-a-web", "p-default-deny-a-web"]
    gnp = {"spec": gnps["application.p-a-web"]}
    assert gnp["spec"]["namespaceSelector"] == 'team == "a"'
    assert gnp["spec"]["selector"] == 'projectcalico.org/orchestrator == "k8s" && app == "web"'
    [rule] = gnp["spec"]["egress"]
    assert rule["destination"]["namespaceSelector"] == 'projectcalico.org/name == "shop"'


def test_peers_in_other_namespaces_name_them_and_cidrs_carve_the_cluster() -> None:
    policy = n.Policy("p", cluster=n.cluster_info(pod_cidrs=["10.244.0.0/16"], node_cidrs=["10.224.0.0/16"]),
                      rules=[n.allow(WEB >> n.namespace("db").pods(app="pg"), n.tcp(5432)),
                             n.allow(WEB >> n.cidr("10.0.0.0/8"), n.tcp(443))])
    [web] = [b for b in _bodies(policy).values() if b["metadata"]["name"] == "application.web"]
    rules = web["spec"]["egress"]
    assert {"selector": 'projectcalico.org/orchestrator == "k8s" && app == "pg"',
            "namespaceSelector": 'projectcalico.org/name == "db"', "ports": [5432]} in [r["destination"] for r in rules]
    nets = [r["destination"] for r in rules if "nets" in r["destination"]]
    assert nets == [{"nets": ["10.0.0.0/8"], "notNets": ["10.224.0.0/16", "10.244.0.0/16"], "ports": [443]}]


def test_a_private_cidr_without_declared_cluster_cidrs_is_refused() -> None:
    assert _codes(n.Policy("p", rules=[n.allow(WEB >> n.cidr("10.1.0.0/16"), n.tcp(443))])) == [Code.NPD207]


def test_ports_are_split_per_protocol_with_ranges_and_names() -> None:
    policy = n.Policy("p", rules=[n.allow(WEB >> API, n.tcp(80, n.port_range(8000, 8080), "http"), n.udp(53))])
    [web] = [b for b in _bodies(policy).values() if b["metadata"]["name"] == "application.web"]
    got = [(r["protocol"], r["destination"]["ports"]) for r in web["spec"]["egress"]]
    assert got == [("TCP", [80, "8000:8080", "http"]), ("UDP", [53])]


def test_world_is_one_rule_per_ip_family() -> None:
    policy = n.Policy("p", cluster=n.cluster_info(pod_cidrs=["10.244.0.0/16"], node_cidrs=["10.224.0.0/16"]),
                      rules=[n.allow(WEB >> n.world(), n.tcp(443))])
    [web] = [b for b in _bodies(policy).values() if b["metadata"]["name"] == "application.web"]
    nets = [r["destination"]["nets"] for r in web["spec"]["egress"]]
    assert nets == [["0.0.0.0/0"], ["::/0"]]
    assert "notNets" not in web["spec"]["egress"][1]["destination"]


def test_the_blocklist_is_a_global_network_set_selected_with_global() -> None:
    policy = n.Policy("p", owns=[SHOP], baseline=n.baseline(default_deny="both", dns=None,
                                                            blocked_cidrs=["203.0.113.0/24", "2001:db8::/32"]))
    bodies = _bodies(policy)
    [gns] = [b for b in bodies.values() if b["kind"] == "GlobalNetworkSet"]
    assert gns["spec"]["nets"] == ["203.0.113.0/24", "2001:db8::/32"]
    assert gns["metadata"]["labels"]["netpol-dsl.dev/network-set"] == "p-blocklist"
    [block] = [b for b in bodies.values() if b["metadata"]["name"] == "security.blocklist"]
    assert block["spec"]["egress"] == [{"action": "Deny", "destination": {
        "selector": 'netpol-dsl.dev/network-set == "p-blocklist"', "namespaceSelector": "global()"}}]


def test_fqdn_entities_and_http_are_errors_that_name_the_alternative() -> None:
    assert _codes(n.Policy("p", rules=[n.allow(WEB >> n.fqdn("a.example.com"), n.tcp(443))])) == [Code.NPD201]
    assert _codes(n.Policy("p", rules=[n.allow(WEB >> n.kube_apiserver(), n.tcp(443))])) == [Code.NPD203]
    http = n.Policy("p", rules=[n.allow(WEB >> API, n.tcp(8080), http=[n.http("GET", "/api")])])
    assert set(_codes(http)) == {Code.NPD202}


def test_http_with_application_layer_policy_is_one_rule_per_request_shape() -> None:
    http = n.Policy("p", rules=[n.allow(WEB >> API, n.tcp(8080),
                                        http=[n.http("GET", "/api/.*"), n.http("POST", "/login")])])
    bodies = _bodies(http, CalicoTarget(alp=True))
    [api] = [b for b in bodies.values() if b["metadata"]["name"] == "application.api"]
    assert [r["http"] for r in api["spec"]["ingress"]] == [
        {"methods": ["GET"], "paths": [{"prefix": "/api/"}]},
        {"methods": ["POST"], "paths": [{"exact": "/login"}]},
    ]
    [web] = [b for b in bodies.values() if b["metadata"]["name"] == "application.web"]
    assert all("http" not in r for r in web["spec"]["egress"])  # enforced at the destination
    regex = n.Policy("p", rules=[n.allow(WEB >> API, n.tcp(8080), http=[n.http("GET", "/v[0-9]+/x")])])
    assert set(_codes(regex, CalicoTarget(alp=True))) == {Code.NPD202}


def test_staged_emits_audit_only_kinds_and_keeps_tiers() -> None:
    bodies = _bodies(n.Policy("p", rules=[n.allow(WEB >> API, n.tcp(80))]), make_target("calico", {"staged": "true"}))
    kinds = sorted({b["kind"] for b in bodies.values()})
    assert kinds == ["StagedNetworkPolicy", "Tier"]
    assert all(b["spec"]["stagedAction"] == "Set" for b in bodies.values() if b["kind"] != "Tier")


def test_names_follow_the_tier_prefix_option() -> None:
    policy = n.Policy("p", rules=[n.allow(WEB >> API, n.tcp(80))])
    plain = sorted(b["metadata"]["name"] for b in _bodies(policy, CalicoTarget(version="3.32", tier_prefix=False))
                   .values())
    assert plain == ["application", "application-api", "application-web", "default-deny-api", "default-deny-web"]


def test_options_are_checked_against_the_version() -> None:
    with pytest.raises(ValueError, match=r"3\.32"):
        CalicoTarget(version="3.31", tier_prefix=False)
    with pytest.raises(ValueError, match=r"3\.30"):
        make_target("calico", {"version": "3.29", "staged": "true"})
    with pytest.raises(ValueError, match="no option 'colour'"):
        make_target("calico", {"colour": "blue"})
    with pytest.raises(ValueError, match="expected one of"):
        make_target("calico", {"version": "4.0"})


def test_calicos_own_tier_names_are_refused() -> None:
    policy = n.Policy("p", tiers=[n.Tier("default", order=100)], rules=[n.allow(WEB >> API, n.tcp(80), tier="default")])
    assert Code.NPD017 in _codes(policy)


def test_every_option_combination_validates(validator: Path, tmp_path: Path) -> None:
    policy = n.Policy("shop", owns=[SHOP], cluster=n.cluster_info(pod_cidrs=["10.244.0.0/16"],
                                                                   node_cidrs=["10.224.0.0/16"]),
                      baseline=n.baseline(default_deny="both", blocked_cidrs=["203.0.113.0/24"]),
                      rules=[n.allow(WEB >> API, n.tcp(8080), http=[n.http("GET", "/api/.*")]),
                             n.allow(WEB >> n.world(), n.tcp(443)),
                             n.deny(SHOP.pods(quarantine="true") >> n.anything(), tier="security")])
    for i, (target, flags) in enumerate(((CalicoTarget(alp=True), []),
                                         (CalicoTarget(alp=True, staged=True), []),
                                         (CalicoTarget(alp=True, version="3.32", tier_prefix=False),
                                          ["--no-legacy-calico-names"]))):
        out = tmp_path / f"{i}.yaml"
        out.write_text(dump_all([m.body for m in compile_policy(policy, target).manifests], "test"), encoding="utf-8")
        result = subprocess.run([sys.executable, str(validator), *flags, str(out)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_zone_of_many_cidrs_becomes_one_network_set_for_its_flow() -> None:
    partners = (n.cidr("198.51.100.0/24") | n.cidr("203.0.113.0/25") | n.cidr("192.0.2.0/24")).named("partners")
    bodies = _bodies(n.Policy("p", rules=[n.allow(WEB >> partners, n.tcp(443)),
                                          n.allow(WEB >> n.cidr("198.18.0.0/15"), n.tcp(80))]))
    [gns] = [b for b in bodies.values() if b["kind"] == "GlobalNetworkSet"]
    assert gns["metadata"]["name"] == "p-shop-app-web-partners"
    assert gns["spec"]["nets"] == ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/25"]
    [web] = [b for b in bodies.values() if b["metadata"]["name"] == "application.web"]
    assert [r["destination"] for r in web["spec"]["egress"]] == [
        {"selector": 'netpol-dsl.dev/network-set == "p-shop-app-web-partners"', "namespaceSelector": "global()",
         "ports": [443]},
        {"nets": ["198.18.0.0/15"], "ports": [80]},
    ]


def test_one_cidr_zone_in_two_flows_is_one_network_set() -> None:
    partners = (n.cidr("198.51.100.0/24") | n.cidr("203.0.113.0/25") | n.cidr("192.0.2.0/24")).named("partners")
    bodies = _bodies(n.Policy("p", rules=[n.allow(WEB >> partners, n.tcp(443)),
                                          n.allow(API >> partners, n.tcp(8443))]))
    assert [b["metadata"]["name"] for b in bodies.values() if b["kind"] == "GlobalNetworkSet"] == [
        "p-shop-app-api-partners"]


def test_log_puts_a_log_rule_with_the_same_match_before_the_rule() -> None:
    from netpol_dsl.endpoints import Connection, Pod
    from netpol_dsl.engines import EVALUATORS

    policy = n.Policy("p", rules=[n.deny(WEB >> API, n.tcp(22), log=True, direction="ingress"),
                                  n.allow(WEB >> API, n.tcp(80), http=[n.http("GET", "/")], log=True,
                                          direction="ingress")])
    bodies = _bodies(policy, CalicoTarget(alp=True))
    deny = next(b for b in bodies.values() if b["metadata"]["name"] == "security.api-deny")
    source = {"selector": 'projectcalico.org/orchestrator == "k8s" && app == "web"'}
    assert deny["spec"]["ingress"] == [
        {"action": "Log", "protocol": "TCP", "source": source, "destination": {"ports": [22]}},
        {"action": "Deny", "protocol": "TCP", "source": source, "destination": {"ports": [22]}},
    ]
    allow = next(b for b in bodies.values() if b["metadata"]["name"] == "application.api")
    assert [r["action"] for r in allow["spec"]["ingress"]] == ["Log", "Allow"]
    assert "http" not in allow["spec"]["ingress"][0]  # http matches belong to Allow rules only
    engine = EVALUATORS["calico"](list(bodies.values()))
    ns = {"kubernetes.io/metadata.name": "shop"}
    web, api = Pod("shop", "w", {"app": "web"}, ns), Pod("shop", "a", {"app": "api"}, ns)
    assert not engine.evaluate(Connection(web, api, "TCP", 22)).allowed  # Log goes on to the Deny
    assert engine.evaluate(Connection(web, api, "TCP", 80)).allowed


def test_log_blocked_logs_what_the_blocklist_denies() -> None:
    policy = n.Policy("p", owns=[SHOP], baseline=n.baseline(default_deny="both", dns=None, log_blocked=True,
                                                            blocked_cidrs=["203.0.113.0/24", "198.51.100.0/24"],
                                                            block_metadata=True))
    bodies = _bodies(policy)
    block = next(b for b in bodies.values() if b["metadata"]["name"] == "security.blocklist")
    assert [r["action"] for r in block["spec"]["egress"]] == ["Log", "Deny"]
    assert block["spec"]["egress"][0]["destination"] == block["spec"]["egress"][1]["destination"]
    metadata = next(b for b in bodies.values() if b["metadata"]["name"] == "security.block-metadata")
    assert [r["action"] for r in metadata["spec"]["egress"]] == ["Log", "Deny"]


def test_flows_whose_labels_read_alike_never_share_a_network_set() -> None:
    """Found in review: 'a-b -> c' and 'a -> b-c' gave both sets one name, so each flow allowed the other's CIDRs."""
    a, ab = SHOP.pods(app="a").named("a"), SHOP.pods(app="ab").named("a-b")
    c = (n.cidr("198.51.100.1/32") | n.cidr("198.51.100.2/32") | n.cidr("198.51.100.3/32")).named("c")
    bc = (n.cidr("203.0.113.1/32") | n.cidr("203.0.113.2/32") | n.cidr("203.0.113.3/32")).named("b-c")
    bodies = _bodies(n.Policy("t", rules=[n.allow(ab >> c, n.tcp(443), direction="egress"),
                                          n.allow(a >> bc, n.tcp(22), direction="egress")]))
    sets = {b["metadata"]["name"]: b["spec"]["nets"] for b in bodies.values() if b["kind"] == "GlobalNetworkSet"}
    assert sorted(sets.values()) == [["198.51.100.1/32", "198.51.100.2/32", "198.51.100.3/32"],
                                     ["203.0.113.1/32", "203.0.113.2/32", "203.0.113.3/32"]]


def test_a_cidr_with_more_exceptions_than_notnets_holds_becomes_a_network_set(validator: Path,
                                                                                tmp_path: Path) -> None:
    excepts = [f"198.51.{i // 256}.{i % 256}/32" for i in range(0, 600, 2)]
    policy = n.Policy("p", rules=[n.allow(WEB >> n.cidr("198.51.0.0/16", except_=excepts), n.tcp(443),
                                          direction="egress")])
    bodies = _bodies(policy)
    [gns] = [b for b in bodies.values() if b["kind"] == "GlobalNetworkSet"]
    assert "198.51.0.0/32" not in gns["spec"]["nets"] and "198.51.0.1/32" in gns["spec"]["nets"]
    out = tmp_path / "many.yaml"
    out.write_text(dump_all(list(bodies.values()), "test"), encoding="utf-8")
    result = subprocess.run([sys.executable, str(validator), str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_alp_refuses_an_http_flow_another_ingress_allow_would_bypass() -> None:
    """Found in review: the egress half is L4 under ALP, so a looser ingress allow at the destination
    would let web send any request."""
    policy = n.Policy("p", rules=[n.allow(WEB >> API, n.tcp(8080), http=[n.http("GET", "/status")]),
                                  n.allow(SHOP >> API, n.tcp(8080), direction="ingress")])
    assert set(_codes(policy, CalicoTarget(alp=True))) == {Code.NPD202}
    fine = n.Policy("p", rules=[n.allow(WEB >> API, n.tcp(8080), http=[n.http("GET", "/status")]),
                                n.allow(SHOP >> API, n.tcp(9090), direction="ingress")])
    [api] = [b for b in _bodies(fine, CalicoTarget(alp=True)).values() if b["metadata"]["name"] == "application.api"]
    assert sorted((r["destination"]["ports"], "http" in r) for r in api["spec"]["ingress"]) == [([8080], True),
                                                                                                ([9090], False)]

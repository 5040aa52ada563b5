"""Tests of the static Calico policy evaluator against Calico's semantics (TARGETS.md §3, §6 5-7, §7)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from netpol_dsl.endpoints import ApiServer, Connection, ContainerPort, Endpoint, External, Node, Pod
from netpol_dsl.engines import EVALUATORS, Evaluator
from netpol_dsl.engines.calico import CalicoEngine, ManifestError, SelectorError, parse
from netpol_dsl.engines.calico.model import pod_labels

# --------------------------------------------------------------------------------------------
# fixtures

CALICO = "projectcalico.org/v3"


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def gnp(name: str = "g", selector: str | None = "all()", **spec: Any) -> dict[str, Any]:
    body = {**({} if selector is None else {"selector": selector}), **_spec(spec)}
    return {"apiVersion": CALICO, "kind": "GlobalNetworkPolicy", "metadata": {"name": name}, "spec": body}


def cnp(name: str = "n", namespace: str = "shop", selector: str | None = "all()", **spec: Any) -> dict[str, Any]:
    body = {**({} if selector is None else {"selector": selector}), **_spec(spec)}
    return {"apiVersion": CALICO, "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": namespace},
            "spec": body}


def _spec(spec: dict[str, Any]) -> dict[str, Any]:
    renames = {"namespace_selector": "namespaceSelector", "sa_selector": "serviceAccountSelector",
               "do_not_track": "doNotTrack", "pre_dnat": "preDNAT", "apply_on_forward": "applyOnForward"}
    return {renames.get(k, k): v for k, v in spec.items()}


def tier(name: str, order: float | None = None, default_action: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if order is not None:
        spec["order"] = order
    if default_action is not None:
        spec["defaultAction"] = default_action
    return {"apiVersion": CALICO, "kind": "Tier", "metadata": {"name": name}, "spec": spec}


def gns(name: str, *nets: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": CALICO, "kind": "GlobalNetworkSet", "metadata": {"name": name, "labels": labels},
            "spec": {"nets": list(nets)}}


def netset(name: str, namespace: str, *nets: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": CALICO, "kind": "NetworkSet",
            "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": {"nets": list(nets)}}


def knp(name: str = "k", namespace: str = "shop", pod_selector: dict[str, Any] | None = None,
        policy_types: list[str] | None = None, ingress: list[Any] | None = None,
        egress: list[Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": {} if pod_selector is None else pod_selector}
    if policy_types is not None:
        spec["policyTypes"] = policy_types
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


ALLOW = {"action": "Allow"}
DENY = {"action": "Deny"}
PASS = {"action": "Pass"}
LOG = {"action": "Log"}

SHOP_NS = {"team": "web", "env": "prod"}
BANK_NS = {"team": "money", "env": "prod"}

WEB = Pod("shop", "web", {"app": "web"}, SHOP_NS, ip=ip("10.0.1.10"), node="node-a", service_account="web-sa",
          ports=(ContainerPort(8080, "TCP", "http"),), service_account_labels={"role": "frontend"})
API = Pod("shop", "api", {"app": "api"}, SHOP_NS, ip=ip("10.0.1.20"), node="node-b",
          ports=(ContainerPort(9090, "TCP", "http"), ContainerPort(5353, "UDP", "dns")))
DB = Pod("bank", "db", {"app": "db"}, BANK_NS, ip=ip("10.0.2.10"), node="node-b")
BANK_WEB = Pod("bank", "web", {"app": "web"}, BANK_NS, ip=ip("10.0.2.20"), node="node-a")
NO_IP = Pod("shop", "pending", {"app": "web"}, SHOP_NS)
NODE_A = Node("node-a", ip("192.168.0.1"))
NODE_B = Node("node-b", ip("192.168.0.2"))
WORLD = External(ip("203.0.113.7"))
BAD = External(ip("198.51.100.9"))


def tcp(src: Endpoint, dst: Endpoint, port: int) -> Connection:
    return Connection(src, dst, "TCP", port)


def allowed(docs: list[dict[str, Any]], conn: Connection, **kwargs: Any) -> bool:
    return CalicoEngine(docs, **kwargs).evaluate(conn).allowed


def explain(docs: list[dict[str, Any]], conn: Connection, **kwargs: Any) -> str:
    return "\n".join(CalicoEngine(docs).evaluate(conn, **kwargs).explanation)


def error(docs: list[dict[str, Any]]) -> str:
    with pytest.raises(ManifestError) as info:
        CalicoEngine(docs)
    return str(info.value)


# --------------------------------------------------------------------------------------------
# selectors: the grammar

LABELS = {"app": "web", "tier": "front-end", "team": "a/b.c_d-e", "quote": 'say "hi"', "empty": ""}


@pytest.mark.parametrize(("text", "expected"), [
    ("app == 'web'", True), ('app == "web"', True), ("app == 'api'", False), ("missing == 'x'", False),
    ("app != 'api'", True), ("app != 'web'", False), ("missing != 'x'", True),
    ("app in {'web', 'api'}", True), ("app in {'api'}", False), ("missing in {'x'}", False), ("app in {}", False),
    ("app in {'api', 'web',}", True),
    ("app not in {'api'}", True), ("app not in {'web'}", False), ("missing not in {'x'}", True),
    ("app notin {'api'}", True),
    ("tier contains 'nt-e'", True), ("tier contains 'x'", False), ("missing contains ''", False),
    ("tier starts with 'front'", True), ("tier startswith 'end'", False),
    ("tier ends with 'end'", True), ("tier endswith 'front'", False),
    ("has(app)", True), ("has( app )", True), ("has(missing)", False), ("!has(missing)", True), ("!!has(app)", True),
    ("all()", True), ("", True), ("   ", True), ("global()", True),
    ("team == 'a/b.c_d-e'", True), ("quote == 'say \"hi\"'", True), ("empty == ''", True), ("has(empty)", True),
    ("app == 'web' && tier == 'x'", False), ("app == 'web' || tier == 'x'", True),
    # && binds tighter than ||: a || (b && c)
    ("app == 'web' || missing == 'x' && tier == 'x'", True),
    ("(app == 'web' || missing == 'x') && tier == 'x'", False),
    ("tier == 'x' && missing == 'x' || app == 'web'", True),
    # ! applies to the next operation only
    ("!app == 'api' && tier == 'front-end'", True), ("!(app == 'web' && tier == 'x')", True),
    ("\tapp\t==\t'web'\t", True),
])
def test_selector_grammar(text: str, expected: bool) -> None:
    assert parse(text).matches(LABELS) is expected


@pytest.mark.parametrize(("text", "message"), [
    ("app = 'web'", "expected =="), ("app == web", "quoted string"), ("app == 'web", "unterminated string"),
    ("has(app", "no closing"), ("all(", "no closing"), ("app == 'web' & x", "expected &&"), ("a | b", "expected ||"),
    ("(app == 'web'", "expected )"), ("app == 'web')", "after the end"), ("app 'web'", "expected an operator"),
    ("app ==", "quoted string"), ("&& app == 'web'", "unexpected"), ("app in {'a' 'b'}", "expected }"),
    ("app in 'a'", "set literal"), ("app\n== 'web'", "expected an operator"), ("a" * 513 + " == 'x'", "too long"),
    ("app == 'web' tier == 'x'", "after the end"), ("has app", "expected an operator"),
])
def test_selector_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse(text)
    assert message in str(info.value)


def test_selector_errors_name_the_document_and_the_field() -> None:
    message = error([gnp("ok"), gnp("bad", egress=[{"action": "Allow", "destination": {"selector": "app = 'x'"}}])])
    assert message.startswith("document 1: GlobalNetworkPolicy bad: spec.egress[0].destination.selector: invalid "
                              "selector \"app = 'x'\": expected ==")
    assert "spec.selector" in error([cnp(selector="has(")])


def test_global_is_only_allowed_alone_in_a_rule_namespace_selector() -> None:
    assert "global() can only be used" in error([gnp(selector="global()")])
    in_rule = {"action": "Allow", "source": {"selector": "global()"}}
    assert "global() can only be used" in error([gnp(ingress=[in_rule])])
    assert "cannot be combined" in error(
        [gnp(ingress=[{"action": "Allow", "source": {"namespaceSelector": "global() || team == 'x'"}}])])
    CalicoEngine([gnp(ingress=[{"action": "Allow", "source": {"namespaceSelector": " global( ) "}}])])


# --------------------------------------------------------------------------------------------
# endpoints as Calico sees them


def test_workload_endpoint_labels() -> None:
    labels = pod_labels(WEB)
    assert labels["app"] == "web"
    assert labels["projectcalico.org/namespace"] == "shop"
    assert labels["projectcalico.org/orchestrator"] == "k8s"
    assert labels["projectcalico.org/serviceaccount"] == "web-sa"
    assert labels["pcns.team"] == "web"
    assert labels["pcns.kubernetes.io/metadata.name"] == "shop"
    assert labels["pcns.projectcalico.org/name"] == "shop"
    assert labels["pcsa.role"] == "frontend"
    assert labels["pcsa.projectcalico.org/name"] == "web-sa"


def test_service_account_labels_leave_pod_equality_hashing_and_order_alone() -> None:
    plain = Pod("shop", "web", {"app": "web"}, SHOP_NS, ip=ip("10.0.1.10"), node="node-a", service_account="web-sa",
                ports=(ContainerPort(8080, "TCP", "http"),))
    assert plain == WEB and hash(plain) == hash(WEB) and not plain < WEB and not plain > WEB
    assert WEB.service_account_labels == (("role", "frontend"),)


@pytest.mark.parametrize(("selector", "selects"), [
    ("projectcalico.org/namespace == 'shop'", [WEB, API]),
    ("projectcalico.org/orchestrator == 'k8s'", [WEB, API, DB, BANK_WEB]),
    ("projectcalico.org/serviceaccount == 'web-sa'", [WEB]),
    ("pcns.team == 'money'", [DB, BANK_WEB]),
    ("pcns.projectcalico.org/name == 'bank' && app == 'web'", [BANK_WEB]),
    ("pcsa.role == 'frontend'", [WEB]),
])
def test_policy_selectors_see_calico_labels(selector: str, selects: list[Pod]) -> None:
    engine = CalicoEngine([gnp(selector=selector, ingress=[DENY])])
    assert [p for p in (WEB, API, DB, BANK_WEB) if engine.selecting(p)] == selects


def test_gnp_namespace_and_service_account_selectors() -> None:
    docs = [gnp("ns", selector=None, namespace_selector="projectcalico.org/name == 'bank'", ingress=[DENY]),
            gnp("ns-label", selector="app == 'web'", namespace_selector="team == 'web'", ingress=[DENY]),
            gnp("sa", selector=None, sa_selector="role == 'frontend' && projectcalico.org/name == 'web-sa'",
                ingress=[DENY]),
            gnp("sa-all", selector=None, sa_selector="all()", ingress=[DENY])]
    engine = CalicoEngine(docs)
    assert [p.name for p in engine.selecting(DB)] == ["ns", "sa-all"]
    assert [p.name for p in engine.selecting(WEB)] == ["ns-label", "sa", "sa-all"]


def test_namespaced_policy_selects_only_its_namespace() -> None:
    engine = CalicoEngine([cnp(selector="app == 'web'", ingress=[DENY]), cnp("all", ingress=[DENY])])
    assert [p.name for p in engine.selecting(WEB)] == ["all", "n"]
    assert engine.selecting(BANK_WEB) == ()
    assert "unknown or misplaced fields ['namespaceSelector']" in error([cnp(namespace_selector="all()")])
    assert [p.name for p in CalicoEngine([cnp(sa_selector="role == 'frontend'", ingress=[DENY])]).selecting(WEB)]


# --------------------------------------------------------------------------------------------
# tiers


def test_tiers_are_evaluated_by_order() -> None:
    docs = [tier("first", 10), tier("second", 20),
            gnp("deny", tier="first", ingress=[DENY]), gnp("allow", tier="second", ingress=[ALLOW])]
    assert not allowed(docs, tcp(WEB, API, 80))
    docs[:2] = [tier("first", 30), tier("second", 20)]
    assert allowed(docs, tcp(WEB, API, 80))


def test_tier_order_ties_by_name_and_no_order_last() -> None:
    docs = [tier("alpha", 10), tier("beta", 10), gnp("a", tier="alpha", ingress=[ALLOW]),
            gnp("b", tier="beta", ingress=[DENY])]
    assert allowed(docs, tcp(WEB, API, 80))
    docs[0] = tier("gamma", 10)
    docs[2] = gnp("a", tier="gamma", ingress=[ALLOW])
    assert not allowed(docs, tcp(WEB, API, 80))  # beta < gamma
    # a tier without order comes after every ordered tier, the built-in default and kube-baseline too
    engine = CalicoEngine([tier("last"), tier("early", 5)])
    assert [t.name for t in engine.tiers] == ["early", "kube-admin", "default", "kube-baseline", "last"]


def test_pass_goes_to_the_next_tier_and_end_of_tier_deny() -> None:
    docs = [tier("security", 100), gnp("gate", tier="security", ingress=[PASS]), cnp("api", ingress=[
        {"action": "Allow", "protocol": "TCP", "destination": {"ports": [9090]}}])]
    assert allowed(docs, tcp(WEB, API, 9090))
    assert not allowed(docs, tcp(WEB, API, 80))
    text = explain(docs, tcp(WEB, API, 80))
    assert "tier security (order 100, defaultAction Deny): GlobalNetworkPolicy gate ingress[0] (Pass): matches" in text
    assert "tier default (order 1000000, defaultAction Deny): no rule of NetworkPolicy shop/api matches " \
           "(NetworkPolicy shop/api ingress[0]: destination: destination port 80 is not in ports 9090): " \
           "end-of-tier deny" in text
    # a selecting tier whose rules do not match ends in a deny, even if a later tier would allow
    docs[1] = gnp("gate", tier="security", ingress=[{"action": "Pass", "protocol": "UDP"}])
    assert not allowed(docs, tcp(WEB, API, 9090))


def test_default_action_pass() -> None:
    udp = {"action": "Deny", "protocol": "UDP"}
    docs = [tier("security", 100, "Pass"), gnp("gate", tier="security", ingress=[udp])]
    assert allowed(docs, tcp(WEB, API, 80))
    assert "defaultAction Pass, on to the next tier" in explain(docs, tcp(WEB, API, 80))
    docs[0] = tier("security", 100, "Deny")
    assert not allowed(docs, tcp(WEB, API, 80))


def test_tiers_without_a_selecting_policy_are_skipped() -> None:
    docs = [tier("security", 100), gnp("db-only", tier="security", selector="app == 'db'", ingress=[DENY]),
            gnp("egress-only", tier="security", types=["Egress"], egress=[DENY])]
    assert allowed(docs, tcp(WORLD, API, 80))
    assert not allowed(docs, tcp(WORLD, DB, 80))  # db-only selects db
    assert "no policy with type Ingress selects it" in explain(docs, tcp(WORLD, API, 80))


def test_builtin_tiers_and_undefined_tiers() -> None:
    assert allowed([gnp("admin", tier="kube-admin", ingress=[{"action": "Deny", "protocol": "UDP"}])],
                   tcp(WEB, API, 80))  # kube-admin: defaultAction Pass
    assert not allowed([gnp("base", tier="kube-baseline", ingress=[DENY])], tcp(WEB, API, 80))
    assert "spec.tier: no Tier 'security'" in error([gnp(tier="security")])
    assert "document 1: GlobalNetworkPolicy g: spec.tier" in error([tier("other", 1), gnp(tier="security")])
    assert "built-in tier default must be 1000000" in error([tier("default", 5)])
    CalicoEngine([tier("default", 1_000_000), gnp(tier="default")])
    assert "defined twice" in error([tier("a", 1), tier("a", 2)])
    assert "DNS label" in error([tier("a.b", 1)])
    assert "defaultAction" in error([tier("a", 1, "Allow")])


def test_passing_out_of_the_last_tier_allows() -> None:
    docs = [gnp("p", tier="kube-baseline", ingress=[PASS])]
    assert allowed(docs, tcp(WEB, API, 80))
    assert "no later tier has a policy for it: allowed" in explain(docs, tcp(WEB, API, 80))


def test_log_is_not_terminal_and_a_log_only_policy_denies() -> None:
    assert allowed([gnp(ingress=[LOG, ALLOW])], tcp(WEB, API, 80))
    assert "(logged by GlobalNetworkPolicy g ingress[0]): GlobalNetworkPolicy g ingress[1] (Allow): matches" in explain(
        [gnp(ingress=[LOG, ALLOW])], tcp(WEB, API, 80))
    assert not allowed([gnp(ingress=[LOG])], tcp(WEB, API, 80))  # calico#3801


# --------------------------------------------------------------------------------------------
# policies inside a tier


def test_policy_order_in_a_tier() -> None:
    docs = [gnp("deny", order=10, ingress=[DENY]), gnp("allow", order=20, ingress=[ALLOW])]
    assert not allowed(docs, tcp(WEB, API, 80))
    docs[0]["spec"]["order"] = 30
    assert allowed(docs, tcp(WEB, API, 80))


def test_policy_order_ties_by_felix_key_name_and_no_order_last() -> None:
    assert not allowed([gnp("b", order=5, ingress=[ALLOW]), gnp("a", order=5, ingress=[DENY])], tcp(WEB, API, 80))
    assert allowed([gnp("a", ingress=[DENY]), gnp("b", order=5000, ingress=[ALLOW])], tcp(WEB, API, 80))
    # a namespaced policy's key is namespace/name: "shop/z" sorts before the global "t"
    assert allowed([gnp("t", order=5, ingress=[DENY]), cnp("z", order=5, ingress=[ALLOW])], tcp(WEB, API, 80))
    assert [p.ident for p in CalicoEngine([gnp("t", order=1.5), cnp("z", order=1.5), knp("k")]).policies] == [
        "NetworkPolicy shop/z", "GlobalNetworkPolicy t", "KubernetesNetworkPolicy shop/k"]


@pytest.mark.parametrize(("spec", "ingress", "egress"), [
    ({"ingress": [DENY]}, True, False),
    ({"egress": [DENY]}, False, True),
    ({"ingress": [DENY], "egress": [DENY]}, True, True),
    ({}, True, False),
    ({"types": ["Egress"]}, False, True),
    ({"types": ["Ingress", "Egress"], "ingress": [ALLOW]}, False, True),
])
def test_types_default_as_calico_does(spec: dict[str, Any], ingress: bool, egress: bool) -> None:
    engine = CalicoEngine([gnp(selector="app == 'api'", **spec), gnp("out", selector="app == 'web'", **spec)])
    assert (not engine.evaluate(tcp(DB, API, 80)).allowed, not engine.evaluate(tcp(WEB, DB, 80)).allowed) == (
        ingress, egress)


def test_staged_policies_never_affect_traffic() -> None:
    staged: list[dict[str, Any]] = [{"apiVersion": CALICO, "kind": kind, "metadata": {"name": "s", "namespace": "shop"},
                                     "spec": {"selector": "all()", "ingress": [DENY], "egress": [DENY]}}
                                    for kind in ("StagedGlobalNetworkPolicy", "StagedNetworkPolicy")]
    staged.append({"apiVersion": CALICO, "kind": "StagedKubernetesNetworkPolicy",
                   "metadata": {"name": "k", "namespace": "shop"}, "spec": {"podSelector": {}}})
    engine = CalicoEngine(staged)
    assert engine.evaluate(tcp(WEB, API, 80)).allowed
    assert engine.staged == ("StagedGlobalNetworkPolicy s", "StagedNetworkPolicy shop/s",
                             "StagedKubernetesNetworkPolicy shop/k")


def test_do_not_track_and_pre_dnat_policies_apply_to_host_endpoints_only() -> None:
    assert allowed([gnp(do_not_track=True, apply_on_forward=True, ingress=[DENY])], tcp(WEB, API, 80))
    assert allowed([gnp(pre_dnat=True, apply_on_forward=True, ingress=[DENY])], tcp(WEB, API, 80))
    assert "applyOnForward must be true" in error([gnp(do_not_track=True, ingress=[DENY])])
    assert "cannot both be true" in error([gnp(do_not_track=True, pre_dnat=True, apply_on_forward=True)])
    assert "preDNAT policy cannot have egress" in error([gnp(pre_dnat=True, apply_on_forward=True, egress=[DENY])])


# --------------------------------------------------------------------------------------------
# Kubernetes NetworkPolicy, the Calico way

K8S_API = knp("api", pod_selector={"matchLabels": {"app": "api"}},
              ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": "http"}]}])


def test_k8s_policy_is_in_the_default_tier_at_order_1000() -> None:
    assert allowed([K8S_API], tcp(WEB, API, 9090))
    assert not allowed([K8S_API], tcp(WEB, API, 80))
    assert not allowed([K8S_API], tcp(BANK_WEB, API, 9090))  # podSelector peers: the policy's namespace
    text = explain([K8S_API], tcp(WEB, API, 80))
    assert "tier default (order 1000000, defaultAction Deny): no rule of KubernetesNetworkPolicy shop/api matches " \
           "(KubernetesNetworkPolicy shop/api ingress[0]: destination: destination port 80 is not in ports http): " \
           "end-of-tier deny" in text
    # a Calico policy ordered before it decides first; one ordered after it still gets its turn
    assert not allowed([K8S_API, cnp("first", order=100, ingress=[{"action": "Deny", "protocol": "TCP",
                                                                     "destination": {"ports": [9090]}}])],
                       tcp(WEB, API, 9090))
    assert allowed([K8S_API, cnp("after", order=2000, ingress=[ALLOW])], tcp(WEB, API, 80))
    assert not allowed([K8S_API, cnp("after", order=2000, ingress=[{"action": "Allow", "protocol": "UDP"}])],
                       tcp(WEB, API, 80))


def test_k8s_policy_behind_a_higher_tier() -> None:
    security = tier("security", 100)
    allow_80 = gnp("allow-80", tier="security", ingress=[{"action": "Allow", "protocol": "TCP",
                                                          "destination": {"ports": [80]}}, PASS])
    docs = [security, allow_80, K8S_API]
    assert allowed(docs, tcp(WEB, API, 80))  # the higher tier allows: the Kubernetes policy is never consulted
    assert allowed(docs, tcp(WEB, API, 9090))  # passed on: the Kubernetes policy allows
    assert not allowed(docs, tcp(WEB, API, 81))  # passed on: end-of-tier deny of default
    deny_web = gnp("deny-web", tier="security", ingress=[{"action": "Deny", "source": {"selector": "app == 'web'"}}])
    assert not allowed([security, deny_web, K8S_API], tcp(WEB, API, 9090))


def test_k8s_policy_types_and_peers() -> None:
    egress_only = knp(pod_selector={"matchLabels": {"app": "web"}},
                      egress=[{"to": [{"namespaceSelector": {}}]}], policy_types=["Egress"])
    assert allowed([egress_only], tcp(WEB, DB, 80))
    assert not allowed([egress_only], tcp(WEB, WORLD, 80))
    assert allowed([egress_only], tcp(DB, WEB, 80))  # not isolated for ingress
    # egress rules without policyTypes: the API server adds Egress
    assert not allowed([knp(egress=[{"to": [{"namespaceSelector": {}}]}])], tcp(WEB, WORLD, 80))
    # ipBlock matches pod addresses too (Calico does not tell pods from other addresses)
    block = knp(pod_selector={"matchLabels": {"app": "api"}},
                ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.2.0/24"]}}]}])
    assert allowed([block], tcp(WEB, API, 80))
    assert not allowed([block], tcp(DB, API, 80))
    # namespaceSelector and podSelector in one peer
    both = knp(pod_selector={"matchLabels": {"app": "api"}}, ingress=[{"from": [{
        "namespaceSelector": {"matchLabels": {"team": "money"}},
        "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}}]}])
    assert allowed([both], tcp(BANK_WEB, API, 80))
    assert not allowed([both], tcp(DB, API, 80)) and not allowed([both], tcp(WEB, API, 80))


def test_k8s_pod_selectors_never_match_network_sets() -> None:
    docs = [gns("web-like", "203.0.113.0/24", app="web"),
            knp(pod_selector={"matchLabels": {"app": "api"}},
                ingress=[{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}]}])]
    assert not allowed(docs, tcp(WORLD, API, 80))
    calico = [docs[0], cnp(selector="app == 'api'", ingress=[{"action": "Allow", "source": {
        "selector": "app == 'web'", "namespaceSelector": "global()"}}])]
    assert allowed(calico, tcp(WORLD, API, 80))


# --------------------------------------------------------------------------------------------
# entity rules


def src_rule(source: dict[str, Any], action: str = "Allow", **rule: Any) -> dict[str, Any]:
    return {"action": action, "source": source, **rule}


def test_np_rule_selectors_default_to_the_policy_namespace() -> None:
    docs = [cnp(selector="app == 'api'", ingress=[src_rule({"selector": "app == 'web'"})])]
    assert allowed(docs, tcp(WEB, API, 80))
    assert not allowed(docs, tcp(BANK_WEB, API, 80))
    anywhere = {"selector": "app == 'web'", "namespaceSelector": "all()"}
    docs = [cnp(selector="app == 'api'", ingress=[src_rule(anywhere)])]
    assert allowed(docs, tcp(BANK_WEB, API, 80))
    docs = [cnp(selector="app == 'api'", ingress=[src_rule({"namespaceSelector": "team == 'money'"})])]
    assert allowed(docs, tcp(DB, API, 80)) and not allowed(docs, tcp(WEB, API, 80))
    docs = [cnp(selector="app == 'api'", ingress=[src_rule({"namespaceSelector": "kubernetes.io/metadata.name == "
                                                                                 "'bank'"})])]
    assert allowed(docs, tcp(DB, API, 80))


def test_gnp_rule_selectors_span_every_namespace_and_global_sets() -> None:
    docs = [gns("web-like", "203.0.113.0/24", app="web"),
            gnp(selector="app == 'api'", ingress=[src_rule({"selector": "app == 'web'"})])]
    assert allowed(docs, tcp(WEB, API, 80)) and allowed(docs, tcp(BANK_WEB, API, 80))
    assert allowed(docs, tcp(WORLD, API, 1))
    namespaced = {"selector": "app == 'web'", "namespaceSelector": "all()"}
    docs[1] = gnp(selector="app == 'api'", ingress=[src_rule(namespaced)])
    assert allowed(docs, tcp(BANK_WEB, API, 80)) and not allowed(docs, tcp(WORLD, API, 1))
    docs[1] = gnp(selector="app == 'api'", ingress=[src_rule({"namespaceSelector": "global()"})])
    assert allowed(docs, tcp(WORLD, API, 1)) and not allowed(docs, tcp(WEB, API, 1))


def test_not_selector() -> None:
    # alone in a GNP: every address none of whose endpoints it selects, external ones included
    docs = [gnp(selector="app == 'api'", ingress=[src_rule({"notSelector": "app == 'web'"})])]
    assert allowed(docs, tcp(DB, API, 80)) and allowed(docs, tcp(WORLD, API, 80))
    assert not allowed(docs, tcp(WEB, API, 80)) and not allowed(docs, tcp(BANK_WEB, API, 80))
    # with a selector: filters what it selects
    docs = [gnp(selector="app == 'api'", ingress=[src_rule({"selector": "pcns.env == 'prod'",
                                                            "notSelector": "app == 'web'"})])]
    assert allowed(docs, tcp(DB, API, 80)) and not allowed(docs, tcp(WEB, API, 80))
    assert not allowed(docs, tcp(WORLD, API, 80))
    # in a NetworkPolicy, notSelector brings in the namespace restriction
    docs = [cnp(selector="app == 'api'", ingress=[src_rule({"notSelector": "app == 'web'"})])]
    assert not allowed(docs, tcp(DB, API, 80)) and not allowed(docs, tcp(WORLD, API, 80))
    assert allowed(docs, tcp(Pod("shop", "other", {"app": "other"}, SHOP_NS), API, 80))
    # an external address in a network set the notSelector selects is excluded
    docs = [gns("bad", "198.51.100.0/24", threat="bad"),
            gnp(selector="app == 'api'", ingress=[src_rule({"notSelector": "threat == 'bad'"})])]
    assert allowed(docs, tcp(WORLD, API, 80)) and not allowed(docs, tcp(BAD, API, 80))


def test_service_accounts_in_rules() -> None:
    def rule(sam: dict[str, Any]) -> list[dict[str, Any]]:
        return [gnp(selector="app == 'api'", ingress=[src_rule({"serviceAccounts": sam})])]
    assert allowed(rule({"names": ["web-sa"]}), tcp(WEB, API, 80))
    assert not allowed(rule({"names": ["web-sa"]}), tcp(BANK_WEB, API, 80))
    assert allowed(rule({"selector": "role == 'frontend'"}), tcp(WEB, API, 80))
    assert allowed(rule({"selector": "projectcalico.org/name == 'default'"}), tcp(DB, API, 80))
    assert not allowed(rule({"names": ["web-sa"], "selector": "role == 'backend'"}), tcp(WEB, API, 80))
    assert not allowed(rule({"names": ["default"]}), tcp(WORLD, API, 80))
    # in a NetworkPolicy: only service accounts of its namespace
    docs = [cnp(selector="app == 'api'", ingress=[src_rule({"serviceAccounts": {"names": ["default"]}})])]
    assert not allowed(docs, tcp(DB, API, 80))


def test_nets_and_not_nets_match_any_address_pods_included() -> None:
    docs = [gnp(selector="app == 'api'", ingress=[src_rule({"nets": ["10.0.1.0/24", "203.0.113.7/32"]})])]
    assert allowed(docs, tcp(WEB, API, 80)) and allowed(docs, tcp(WORLD, API, 80))
    assert not allowed(docs, tcp(DB, API, 80)) and not allowed(docs, tcp(NO_IP, API, 80))
    assert "has no known address, so it is in no nets" in explain(docs, tcp(NO_IP, API, 80))
    docs = [gnp(selector="app == 'api'", ingress=[src_rule({"notNets": ["10.0.0.0/8"]})])]
    assert allowed(docs, tcp(WORLD, API, 80)) and not allowed(docs, tcp(DB, API, 80))
    assert allowed(docs, tcp(NO_IP, API, 80)) and allowed(docs, tcp(ApiServer(), API, 80))
    docs = [gnp(selector="app == 'api'", ingress=[src_rule({"nets": ["10.0.0.0/8"], "notNets": ["10.0.2.0/24"]})])]
    assert allowed(docs, tcp(WEB, API, 80)) and not allowed(docs, tcp(DB, API, 80))
    # the node is an address like any other
    assert not allowed(docs, tcp(NODE_A, API, 80)) and allowed(
        [gnp(selector="app == 'api'", ingress=[src_rule({"nets": ["192.168.0.0/16"]})])], tcp(NODE_A, API, 80))


def dst_ports(ports: list[Any], protocol: str | int | None = "TCP", key: str = "ports",
              action: str = "Allow") -> list[dict[str, Any]]:
    rule: dict[str, Any] = {"action": action, "destination": {key: ports}}
    if protocol is not None:
        rule["protocol"] = protocol
    return [gnp(selector="app == 'web'", types=["Egress"], egress=[rule])]


def test_ports_ranges_and_not_ports() -> None:
    assert allowed(dst_ports([80, "443"]), tcp(WEB, WORLD, 443))
    assert not allowed(dst_ports([80, 443]), tcp(WEB, WORLD, 8443))
    assert allowed(dst_ports(["8000:8100"]), tcp(WEB, WORLD, 8100)) and not allowed(dst_ports(["8000:8100"]),
                                                                                     tcp(WEB, WORLD, 8101))
    assert not allowed(dst_ports([80]), Connection(WEB, WORLD, "UDP", 80))
    assert allowed(dst_ports([53], "UDP"), Connection(WEB, WORLD, "UDP", 53))
    assert allowed(dst_ports([53], 17), Connection(WEB, WORLD, "UDP", 53))
    assert allowed(dst_ports(["1:1000"], key="notPorts"), tcp(WEB, WORLD, 1001))
    assert not allowed(dst_ports(["1:1000"], key="notPorts"), tcp(WEB, WORLD, 22))


def test_named_ports_resolve_on_the_pod_at_that_end() -> None:
    assert allowed(dst_ports(["http"]), tcp(WEB, API, 9090))
    assert not allowed(dst_ports(["http"]), tcp(WEB, API, 8080))
    assert not allowed(dst_ports(["http"]), tcp(WEB, WORLD, 9090))  # not a pod: no named ports
    # the rule's protocol (TCP when it names none) decides which named port counts
    assert allowed(dst_ports(["http"], None), tcp(WEB, API, 9090))
    assert not allowed(dst_ports(["dns"], None), Connection(WEB, API, "UDP", 5353))
    assert allowed(dst_ports(["dns"], "UDP"), Connection(WEB, API, "UDP", 5353))
    assert not allowed(dst_ports(["http"], key="notPorts"), tcp(WEB, API, 9090))
    assert allowed(dst_ports(["http"], key="notPorts"), tcp(WEB, API, 80))
    # source named ports resolve on the source pod
    docs = [gnp(selector="app == 'api'", ingress=[src_rule({"ports": ["http"]}, protocol="TCP")])]
    engine = CalicoEngine(docs)
    assert engine.evaluate(tcp(WEB, API, 80), src_port=8080).allowed
    assert not engine.evaluate(tcp(WEB, API, 80), src_port=9090).allowed


def test_source_ports_need_a_known_source_port() -> None:
    docs = [gnp(selector="app == 'api'", ingress=[src_rule({"ports": ["1024:65535"]}, protocol="TCP")])]
    engine = CalicoEngine(docs)
    assert engine.evaluate(tcp(WEB, API, 80), src_port=40000).allowed
    assert not engine.evaluate(tcp(WEB, API, 80), src_port=80).allowed
    assert not engine.evaluate(tcp(WEB, API, 80)).allowed
    assert "the source port is unknown" in "\n".join(engine.evaluate(tcp(WEB, API, 80)).explanation)
    docs = [gnp(selector="app == 'api'", ingress=[src_rule({"notPorts": ["0:1023"]}, protocol="TCP")])]
    assert CalicoEngine(docs).evaluate(tcp(WEB, API, 80)).allowed


def test_destination_in_an_ingress_rule_restricts_the_local_pod() -> None:
    docs = [gnp(selector="has(app)", ingress=[{"action": "Allow", "destination": {"selector": "app == 'api'"}}])]
    assert allowed(docs, tcp(WEB, API, 80)) and not allowed(docs, tcp(API, DB, 80))


def test_services_cannot_be_evaluated() -> None:
    message = error([gnp(egress=[{"action": "Allow", "destination": {"services": {"name": "s", "namespace": "x"}}}])])
    assert "spec.egress[0].destination.services: a service match needs the Service's endpoints" in message


def test_http_matches_are_evaluated_as_l3_l4_and_noted() -> None:
    docs = [cnp(selector="app == 'api'", ingress=[{"action": "Allow", "protocol": "TCP",
                                                   "http": {"methods": ["GET"], "paths": [{"prefix": "/public"}]}}])]
    assert allowed(docs, tcp(WEB, API, 80))
    assert "has an http match, which Felix does not enforce" in explain(docs, tcp(WEB, API, 80))
    assert "only valid for Allow rules" in error([cnp(ingress=[{"action": "Deny", "http": {"methods": ["GET"]}}])])
    assert "not allowed in egress rules" in error([cnp(egress=[{"action": "Allow", "http": {"methods": ["GET"]}}])])
    assert "TCP or leave it empty" in error([cnp(ingress=[{"action": "Allow", "protocol": "UDP",
                                                          "http": {"methods": ["GET"]}}])])


# --------------------------------------------------------------------------------------------
# network sets


def test_global_network_sets_are_selected_by_label() -> None:
    docs = [gns("bad", "198.51.100.0/24", threat="bad"), tier("security", 10),
            gnp("block", tier="security", types=["Egress"], egress=[
                {"action": "Deny", "destination": {"selector": "threat == 'bad'"}}, PASS])]
    assert not allowed(docs, tcp(WEB, BAD, 443))
    assert allowed(docs, tcp(WEB, WORLD, 443))
    assert "(destination 198.51.100.9 is in GlobalNetworkSet bad): denied" in explain(docs, tcp(WEB, BAD, 443))


def test_a_pod_whose_address_is_in_a_network_set_matches_its_selector() -> None:
    docs = [gns("legacy", "10.0.2.0/24", zone="legacy"),
            gnp(selector="app == 'api'", ingress=[src_rule({"selector": "zone == 'legacy'"})])]
    assert allowed(docs, tcp(DB, API, 80)) and not allowed(docs, tcp(WEB, API, 80))
    assert not allowed(docs, tcp(Pod("bank", "x", {}, BANK_NS), API, 80))  # no address


def test_namespaced_network_sets() -> None:
    world = netset("partners", "shop", "203.0.113.0/24", kind="partner")
    in_shop = [world, cnp(selector="app == 'api'", ingress=[src_rule({"selector": "kind == 'partner'"})])]
    assert allowed(in_shop, tcp(WORLD, API, 80))
    partners = src_rule({"selector": "kind == 'partner'"})
    in_bank = [world, cnp(namespace="bank", selector="app == 'db'", ingress=[partners])]
    assert not allowed(in_bank, tcp(WORLD, DB, 80))
    # from a GNP, through its namespace's labels (given to the engine) or name
    by_label = [world, gnp(selector="app == 'db'", ingress=[src_rule({"selector": "kind == 'partner'",
                                                                      "namespaceSelector": "team == 'web'"})])]
    assert allowed(by_label, tcp(WORLD, DB, 80), namespaces={"shop": SHOP_NS})
    assert not allowed(by_label, tcp(WORLD, DB, 80))
    by_name = [world, gnp(selector="app == 'db'", ingress=[src_rule({"namespaceSelector": "projectcalico.org/name "
                                                                                          "== 'shop'"})])]
    assert allowed(by_name, tcp(WORLD, DB, 80))
    # a global() namespaceSelector does not select a namespaced set
    assert not allowed([world, gnp(selector="app == 'db'", ingress=[src_rule({"namespaceSelector": "global()"})])],
                       tcp(WORLD, DB, 80))
    assert "projectcalico.org/namespace is not a valid label name" in error(
        [gns("x", "1.2.3.4", **{"projectcalico.org/namespace": "shop"})])


# --------------------------------------------------------------------------------------------
# protocols, ICMP, IP versions


def test_protocol_and_not_protocol() -> None:
    docs = [gnp(selector="app == 'api'", ingress=[{"action": "Allow", "protocol": "UDP"}])]
    assert allowed(docs, Connection(WEB, API, "UDP", 53)) and not allowed(docs, tcp(WEB, API, 53))
    docs = [gnp(selector="app == 'api'", ingress=[{"action": "Allow", "notProtocol": "TCP"}])]
    assert allowed(docs, Connection(WEB, API, "SCTP", 5)) and not allowed(docs, tcp(WEB, API, 5))
    docs = [gnp(selector="app == 'api'", ingress=[{"action": "Allow", "protocol": 132}])]
    assert allowed(docs, Connection(WEB, API, "SCTP", 5))


def icmp_rule(**fields: Any) -> list[dict[str, Any]]:
    return [gnp(selector="app == 'api'", ingress=[{"action": "Allow", **fields}])]


def test_icmp_type_and_code() -> None:
    echo = Connection(WEB, API, "ICMP", 8)
    assert allowed(icmp_rule(protocol="ICMP", icmp={"type": 8}), echo)
    assert not allowed(icmp_rule(protocol="ICMP", icmp={"type": 0}), echo)
    assert not allowed(icmp_rule(protocol="ICMPv6", icmp={"type": 8}), echo)
    # the code: passed in, else 0
    engine = CalicoEngine(icmp_rule(protocol="ICMP", icmp={"type": 3, "code": 4}))
    unreachable = Connection(WEB, API, "ICMP", 3)
    assert engine.evaluate(unreachable, icmp_code=4).allowed
    assert not engine.evaluate(unreachable).allowed
    assert allowed(icmp_rule(protocol="ICMP", icmp={"type": 8, "code": 0}), echo)
    # notICMP
    engine = CalicoEngine(icmp_rule(protocol="ICMP", notICMP={"type": 8}))
    assert not engine.evaluate(echo).allowed and engine.evaluate(Connection(WEB, API, "ICMP", 0)).allowed
    # rules without L4 allow every ICMP type
    assert allowed(icmp_rule(), echo)
    assert allowed(icmp_rule(protocol="ICMPv6"), Connection(WEB, API, "ICMPv6", 128))


def test_ip_version() -> None:
    v6_web = Pod("shop", "web6", {"app": "web"}, SHOP_NS, ip=ip("fd00::10"))
    v6_api = Pod("shop", "api6", {"app": "api"}, SHOP_NS, ip=ip("fd00::20"))
    docs = icmp_rule(ipVersion=6)
    assert allowed(docs, tcp(v6_web, v6_api, 80)) and not allowed(docs, tcp(WEB, API, 80))
    assert not allowed(icmp_rule(ipVersion=4), tcp(v6_web, v6_api, 80))
    assert allowed(icmp_rule(source={"nets": ["fd00::/64"]}), tcp(v6_web, v6_api, 80))


@pytest.mark.parametrize(("docs", "message"), [
    ([gnp(ingress=[{"action": "allow"}])], "expected Allow, Deny, Log or Pass"),
    ([gnp(ingress=[{"action": "Allow", "protocol": "tcp"}])], "unknown protocol 'tcp'"),
    ([gnp(ingress=[{"action": "Allow", "protocol": 256}])], "out of range 1-255"),
    ([gnp(ingress=[{"action": "Allow", "destination": {"ports": [80]}}])], "numeric ports"),
    ([gnp(ingress=[{"action": "Allow", "protocol": "ICMP", "destination": {"ports": [80]}}])], "numeric ports"),
    ([gnp(ingress=[{"action": "Allow", "icmp": {"type": 8}}])], "ICMP fields must set protocol"),
    ([gnp(ingress=[{"action": "Allow", "protocol": "ICMP", "icmp": {"code": 1}}])], "code specified without"),
    ([gnp(ingress=[{"action": "Allow", "protocol": "ICMP", "icmp": {"type": 255}}])], "out of range 0-254"),
    ([gnp(ingress=[{"action": "Allow", "protocol": "ICMP", "ipVersion": 6}])], "ipVersion to 4"),
    ([gnp(ingress=[{"action": "Allow", "source": {"nets": ["10.0.0.0/8"]},
                    "destination": {"notNets": ["fd00::/8"]}}])], "both IPv4 and IPv6"),
    ([gnp(ingress=[{"action": "Allow", "ipVersion": 6, "source": {"nets": ["10.0.0.0/8"]}}])], "does not match"),
    ([gnp(ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": ["90:80"]}}])], "port range"),
    ([gnp(ingress=[{"action": "Allow", "destination": {"ports": ["Bad_Name"]}}])], "port name"),
    ([gnp(ingress=[{"action": "Allow", "source": {"nets": ["10.0.0.300/8"]}}])], "invalid CIDR"),
    ([gnp(ingress=[{"action": "Allow", "source": {"podSelector": {}}}])], "unknown or misplaced fields"),
    ([gnp(ingress=[{"action": "Allow", "destinations": {}}])], "unknown or misplaced fields"),
    ([gnp(types=["ingress"])], "unknown type 'ingress'"),
    ([gnp(types=["Ingress", "Ingress"])], "more than once"),
    ([gnp(order="1")], "expected a number"),
    ([{"apiVersion": "crd.projectcalico.org/v1", "kind": "GlobalNetworkPolicy", "metadata": {"name": "x"}}],
     "unsupported kind"),
    ([{"apiVersion": CALICO, "kind": "HostEndpoint", "metadata": {"name": "x"}}], "unsupported kind 'HostEndpoint'"),
    ([knp(ingress=[{"from": [{}]}])], "a peer must set"),
    ([knp(ingress=[{"ports": [{"protocol": "ICMP"}]}])], "expected TCP, UDP or SCTP"),
])
def test_what_calico_rejects(docs: list[dict[str, Any]], message: str) -> None:
    assert message in error(docs)


def test_kustomization_documents_are_skipped() -> None:
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": []}
    assert CalicoEngine([kustomization]).policies == ()


# --------------------------------------------------------------------------------------------
# both ends, own node, loopback, verdicts


def test_both_directions_are_needed() -> None:
    egress = gnp("egress", selector="app == 'web'", types=["Egress"], egress=[DENY])
    ingress = gnp("ingress", selector="app == 'api'", ingress=[DENY])
    assert not allowed([egress], tcp(WEB, API, 80)) and not allowed([ingress], tcp(WEB, API, 80))
    assert "denied by egress and ingress" in explain([egress, ingress], tcp(WEB, API, 80))


def test_non_pods_impose_nothing() -> None:
    deny_all = [gnp(ingress=[DENY], egress=[DENY])]
    assert not allowed(deny_all, tcp(WORLD, API, 80))
    assert allowed(deny_all, tcp(WORLD, NODE_A, 80)) and allowed(deny_all, tcp(ApiServer(), WORLD, 80))
    assert "destination 203.0.113.7 is not a pod; no policy applies" in explain(deny_all, tcp(WEB, WORLD, 80))


def test_ingress_from_the_pods_own_node_is_never_policed() -> None:
    deny_all = [gnp(ingress=[DENY], egress=[DENY])]
    assert allowed(deny_all, tcp(NODE_A, WEB, 8080))
    assert "traffic from the pod's own node node/node-a is never policed" in explain(deny_all, tcp(NODE_A, WEB, 8080))
    assert not allowed(deny_all, tcp(NODE_B, WEB, 8080))
    assert not allowed(deny_all, tcp(WEB, NODE_A, 10250))  # egress to its node is policed


def test_loopback_is_always_allowed() -> None:
    assert allowed([gnp(ingress=[DENY], egress=[DENY])], tcp(WEB, WEB, 8080))


def test_verdict_names_tier_policy_and_rule() -> None:
    docs = [tier("security", 100), gnp("guard", tier="security", ingress=[{"action": "Allow", "protocol": "UDP"},
                                                                            {"action": "Deny", "protocol": "TCP"}])]
    verdict = CalicoEngine(docs).evaluate(tcp(WEB, API, 80))
    assert not verdict.allowed
    assert verdict.explanation == (
        "egress at shop/web: no policy with type Egress selects it: allowed (the namespace's Kubernetes profile "
        "allows everything)",
        "ingress at shop/api: tier security (order 100, defaultAction Deny): GlobalNetworkPolicy guard ingress[1] "
        "(Deny): matches: denied",
        "shop/web -> shop/api tcp/80: denied by ingress",
    )
    assert verdict.trace is not None
    step = verdict.trace.ingress.tiers[0]
    assert step.tier.name == "security" and step.outcome == "deny"
    assert step.decided_by is not None and step.decided_by.rule.label == "GlobalNetworkPolicy guard ingress[1]"
    assert step.checks[0].why == "protocol UDP, the connection is TCP"


def test_registered_as_an_evaluator() -> None:
    engine: Evaluator = EVALUATORS["calico"]([K8S_API])
    assert engine.evaluate(tcp(WEB, API, 9090)).allowed
    assert isinstance(engine, CalicoEngine)

"""Tests of the static Cilium policy evaluator against Cilium's documented semantics (TARGETS.md §2, §6, §7)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from netpol_dsl.endpoints import ApiServer, Connection, ContainerPort, Endpoint, External, HttpRequest, Node, Pod
from netpol_dsl.engines.cilium import CiliumEngine, CiliumVerdict, DnsLookup, ManifestError
from netpol_dsl.engines.cilium.l7 import dns_pattern
from netpol_dsl.engines.kubernetes import Verdict

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "samples" / "cilium"

# --------------------------------------------------------------------------------------------
# fixtures


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def sel(**kv: str) -> dict[str, Any]:
    return {"matchLabels": dict(kv)}


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    item: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        item["values"] = list(values)
    return {"matchExpressions": [item]}


def cnp(name: str = "p", namespace: str = "shop", selector: dict[str, Any] | None = None,
        **sections: Any) -> dict[str, Any]:
    spec = {"endpointSelector": {} if selector is None else selector, **_sections(sections)}
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def ccnp(name: str = "c", selector: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    spec = {"endpointSelector": {} if selector is None else selector, **_sections(sections)}
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": name}, "spec": spec}


def _sections(sections: dict[str, Any]) -> dict[str, Any]:
    renames = {"ingress_deny": "ingressDeny", "egress_deny": "egressDeny", "enable_default_deny": "enableDefaultDeny"}
    return {renames.get(k, k): v for k, v in sections.items()}


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


def cidr_group(name: str, *cidrs: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumCIDRGroup",
            "metadata": {"name": name, "labels": labels or {}}, "spec": {"externalCIDRs": list(cidrs)}}


def ports(*items: str | tuple[str, str], rules: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``ports("80", ("53", "UDP"))`` -> one toPorts entry."""
    entry: dict[str, Any] = {"ports": [{"port": i} if isinstance(i, str) else {"port": i[0], "protocol": i[1]}
                                       for i in items]}
    if rules is not None:
        entry["rules"] = rules
    return [entry]


SHOP_NS = {"team": "shop", "env": "prod"}
BANK_NS = {"team": "bank", "env": "prod"}

WEB = Pod("shop", "web", {"app": "web", "tier": "front"}, SHOP_NS, ip=ip("10.0.1.10"),
          ports=(ContainerPort(8080, "TCP", "http"),), node="node-a", service_account="web-sa")
API = Pod("shop", "api", {"app": "api"}, SHOP_NS, ip=ip("10.0.1.20"),
          ports=(ContainerPort(9090, "TCP", "http"), ContainerPort(9091, "UDP", "metrics")), node="node-b")
DB = Pod("bank", "db", {"app": "db"}, BANK_NS, ip=ip("10.0.2.10"), node="node-b")
BANK_WEB = Pod("bank", "web", {"app": "web", "tier": "front"}, BANK_NS, ip=ip("10.0.2.20"), node="node-a")
COREDNS = Pod("kube-system", "coredns", {"k8s-app": "kube-dns"}, {}, ip=ip("10.0.3.10"), node="node-a")
NODE_A = Node("node-a", ip("192.168.0.1"))
NODE_B = Node("node-b", ip("192.168.0.2"))
WORLD = External(ip("203.0.113.7"), ("api.example.com",))
INSIDE_10 = External(ip("10.0.1.99"))
APISERVER = ApiServer()

DNS_ANY = {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system",
                                            "k8s:k8s-app": "kube-dns"}}],
           "toPorts": ports(("53", "ANY"), rules={"dns": [{"matchPattern": "*"}]})}


def tcp(src: Endpoint, dst: Endpoint, port: int, http: HttpRequest | None = None) -> Connection:
    return Connection(src, dst, "TCP", port, http)


def outcome(docs: list[dict[str, Any]], conn: Connection, dns_names: tuple[str, ...] = (), cluster: str = "default",
            ) -> str:
    return CiliumEngine(docs, cluster).verdict(conn, dns_names)


def allowed(docs: list[dict[str, Any]], conn: Connection, dns_names: tuple[str, ...] = ()) -> bool:
    return CiliumEngine(docs).evaluate(conn, dns_names).allowed


GET = HttpRequest("GET", "/public")


# --------------------------------------------------------------------------------------------
# API shape


def test_verdict_is_a_kubernetes_verdict_with_an_outcome() -> None:
    v = CiliumEngine([]).evaluate(tcp(WEB, API, 80))
    assert isinstance(v, Verdict) and isinstance(v, CiliumVerdict)
    assert (v.allowed, v.outcome) == (True, "allow")
    assert v.explanation[-1] == "shop/web -> shop/api tcp/80: allowed"
    assert "not in default deny (no policy selects it)" in v.explanation[0]


def test_policies_and_selecting_name_each_spec() -> None:
    doc = cnp("multi", selector=sel(app="api"), ingress=[{}])
    doc["specs"] = [doc.pop("spec"), {"endpointSelector": sel(app="web"), "egress": [{}]}]
    engine = CiliumEngine([doc, ccnp("cw", ingress=[{}])])
    assert engine.policies == ("CiliumNetworkPolicy shop/multi specs[0]", "CiliumNetworkPolicy shop/multi specs[1]",
                               "CiliumClusterwideNetworkPolicy cw")
    assert engine.selecting(WEB) == ("CiliumNetworkPolicy shop/multi specs[1]", "CiliumClusterwideNetworkPolicy cw")


# --------------------------------------------------------------------------------------------
# identities and endpointSelector


@pytest.mark.parametrize("selector, selects_web", [
    (sel(app="web"), True),
    ({"matchLabels": {"k8s:app": "web"}}, True),
    ({"matchLabels": {"any:app": "web"}}, True),
    ({"matchLabels": {"reserved:app": "web"}}, False),
    ({"matchLabels": {"k8s:app": "api"}}, False),
    (sel(**{"io.cilium.k8s.policy.serviceaccount": "web-sa"}), True),
    (sel(**{"k8s:io.cilium.k8s.policy.serviceaccount": "default"}), False),
    (sel(**{"io.cilium.k8s.policy.cluster": "default"}), True),
    (sel(**{"k8s:io.kubernetes.pod.namespace": "shop"}), True),
    (sel(**{"io.cilium.k8s.namespace.labels.team": "shop"}), True),
    (expr("tier", "In", "front", "back"), True),
    (expr("tier", "NotIn", "front"), False),
    (expr("tier", "Exists"), True),
    (expr("k8s:tier", "DoesNotExist"), False),
    (expr("missing", "DoesNotExist"), True),
    (expr("missing", "NotIn", "x"), True),
])
def test_endpoint_selector_over_identity_labels(selector: dict[str, Any], selects_web: bool) -> None:
    docs = [cnp(selector=selector, ingress=[{}])]  # default deny, nothing allowed
    assert allowed(docs, tcp(API, WEB, 80)) is not selects_web


def test_cluster_label_uses_the_engines_cluster_name() -> None:
    docs = [cnp(selector=sel(**{"io.cilium.k8s.policy.cluster": "prod-eu"}), ingress=[{}])]
    assert outcome(docs, tcp(API, WEB, 80), cluster="prod-eu") == "drop"
    assert outcome(docs, tcp(API, WEB, 80)) == "allow"


def test_cnp_endpoint_selector_only_selects_its_own_namespace() -> None:
    docs = [cnp(namespace="shop", selector=sel(app="web"), ingress=[{}])]
    assert not allowed(docs, tcp(API, WEB, 80))
    assert allowed(docs, tcp(API, BANK_WEB, 80))  # same labels, other namespace
    # even naming another namespace cannot widen it
    docs = [cnp(namespace="shop", selector=sel(**{"k8s:io.kubernetes.pod.namespace": "bank"}), ingress=[{}])]
    assert allowed(docs, tcp(API, DB, 80))


def test_ccnp_endpoint_selector_spans_namespaces_and_honours_namespace_labels() -> None:
    docs = [ccnp(selector=sel(app="web"), ingress=[{}])]
    assert not allowed(docs, tcp(API, WEB, 80)) and not allowed(docs, tcp(API, BANK_WEB, 80))
    docs = [ccnp(selector=sel(**{"io.cilium.k8s.namespace.labels.team": "bank"}), ingress=[{}])]
    assert not allowed(docs, tcp(API, DB, 80)) and allowed(docs, tcp(API, WEB, 80))


def test_node_selector_policies_never_select_pods() -> None:
    doc = ccnp(ingress=[{}])
    doc["spec"] = {"nodeSelector": {}, "ingress": [{}], "egress": [{}]}
    assert allowed([doc], tcp(API, WEB, 80))
    assert CiliumEngine([doc]).selecting(WEB) == ()


# --------------------------------------------------------------------------------------------
# peer selectors


def test_cnp_peer_without_namespace_means_the_policys_namespace() -> None:
    docs = [cnp(namespace="bank", selector=sel(app="db"), ingress=[{"fromEndpoints": [sel(app="web")]}])]
    assert allowed(docs, tcp(BANK_WEB, DB, 5432))
    assert not allowed(docs, tcp(WEB, DB, 5432))  # app=web, but in shop


def test_cnp_peer_with_explicit_namespace_crosses_namespaces() -> None:
    peer = {"matchLabels": {"app": "web", "k8s:io.kubernetes.pod.namespace": "shop"}}
    docs = [cnp(namespace="bank", selector=sel(app="db"), ingress=[{"fromEndpoints": [peer]}])]
    assert allowed(docs, tcp(WEB, DB, 5432))
    assert not allowed(docs, tcp(BANK_WEB, DB, 5432))


def test_cnp_peer_namespace_exists_means_every_namespace() -> None:
    peer = {"matchExpressions": [{"key": "k8s:io.kubernetes.pod.namespace", "operator": "Exists"}]}
    docs = [cnp(namespace="bank", selector=sel(app="db"), ingress=[{"fromEndpoints": [peer]}])]
    assert allowed(docs, tcp(WEB, DB, 1)) and allowed(docs, tcp(COREDNS, DB, 1))
    assert not allowed(docs, tcp(WORLD, DB, 1))


def test_empty_selector_list_selects_nothing_and_empty_selector_all_of_namespace() -> None:
    nothing = [cnp(selector=sel(app="api"), ingress=[{"fromEndpoints": [], "toPorts": ports("80")}])]
    assert not allowed(nothing, tcp(WEB, API, 80))
    everyone = [cnp(selector=sel(app="api"), ingress=[{"fromEndpoints": [{}]}])]
    assert allowed(everyone, tcp(WEB, API, 80))
    assert not allowed(everyone, tcp(DB, API, 80))  # CNP: {} is this namespace only
    assert not allowed(everyone, tcp(WORLD, API, 80))


def test_ccnp_empty_selector_is_every_pod_of_every_namespace_but_not_world() -> None:
    docs = [ccnp(selector=sel(app="api"), ingress=[{"fromEndpoints": [{}]}])]
    assert allowed(docs, tcp(WEB, API, 80)) and allowed(docs, tcp(DB, API, 80))
    assert not allowed(docs, tcp(WORLD, API, 80))
    assert not allowed(docs, tcp(NODE_B if API.node != "node-b" else NODE_A, API, 80))


def test_namespace_labels_are_ignored_in_cnp_peers_and_said_so() -> None:
    peer = sel(**{"io.cilium.k8s.namespace.labels.team": "shop"})
    docs = [cnp(selector=sel(app="api"), ingress=[{"fromEndpoints": [peer]}])]
    v = CiliumEngine(docs).evaluate(tcp(WEB, API, 80))  # web's namespace does have team=shop
    assert not v.allowed
    assert any("does not honour" in line and "io.cilium.k8s.namespace.labels.team" in line for line in v.explanation)


def test_namespace_labels_work_in_ccnp_peers() -> None:
    peer = sel(**{"io.cilium.k8s.namespace.labels.team": "shop"})
    docs = [ccnp(selector=sel(app="db"), ingress=[{"fromEndpoints": [peer]}])]
    assert allowed(docs, tcp(WEB, DB, 80))
    assert not allowed(docs, tcp(BANK_WEB, DB, 80))


def test_reserved_selector_matches_reserved_identities_only() -> None:
    docs = [cnp(selector=sel(app="api"), ingress=[{"fromEndpoints": [sel(**{"reserved:world": ""})]}])]
    assert allowed(docs, tcp(WORLD, API, 80))
    assert not allowed(docs, tcp(WEB, API, 80))


# --------------------------------------------------------------------------------------------
# entities


@pytest.mark.parametrize("entity, peer, expected", [
    ("all", WORLD, True), ("all", DB, True), ("all", NODE_B, True), ("all", APISERVER, True),
    ("world", WORLD, True), ("world", DB, False), ("world", NODE_A, False), ("world", APISERVER, False),
    ("cluster", DB, True), ("cluster", NODE_B, True), ("cluster", APISERVER, True), ("cluster", WORLD, False),
    ("host", NODE_A, True), ("host", NODE_B, False), ("host", DB, False),
    ("remote-node", NODE_B, True), ("remote-node", NODE_A, False), ("remote-node", WORLD, False),
    ("kube-apiserver", APISERVER, True), ("kube-apiserver", NODE_A, False), ("kube-apiserver", WORLD, False),
    ("health", NODE_B, False), ("init", DB, False), ("unmanaged", WORLD, False), ("ingress", DB, False),
    ("none", WORLD, False),
])
def test_to_entities(entity: str, peer: Endpoint, expected: bool) -> None:
    docs = [cnp(selector=sel(app="web"), egress=[{"toEntities": [entity]}])]  # web runs on node-a
    assert allowed(docs, tcp(WEB, peer, 443)) is expected


def test_from_entities_host_is_relative_to_the_destination_pod() -> None:
    docs = [cnp(selector=sel(app="api"), ingress=[{"fromEntities": ["remote-node"]}])]  # api runs on node-b
    assert allowed(docs, tcp(NODE_A, API, 80))
    docs = [cnp(selector=sel(app="api"), ingress=[{"fromEntities": ["world"]}])]
    assert not allowed(docs, tcp(NODE_A, API, 80))
    assert allowed(docs, tcp(WORLD, API, 80))


# --------------------------------------------------------------------------------------------
# CIDR


def test_to_cidr_matches_external_addresses_only() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[{"toCIDR": ["10.0.0.0/8", "203.0.113.0/24"]}])]
    assert allowed(docs, tcp(WEB, WORLD, 443))
    assert allowed(docs, tcp(WEB, INSIDE_10, 443))
    assert not allowed(docs, tcp(WEB, API, 443))  # API's IP 10.0.1.20 is in 10/8, but it is a pod
    docs = [cnp(selector=sel(app="web"), egress=[{"toCIDR": ["192.168.0.0/16"]}])]
    assert not allowed(docs, tcp(WEB, NODE_B, 443))  # nor nodes


def test_to_cidr_set_except() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[{"toCIDRSet": [{"cidr": "203.0.113.0/24",
                                                                "except": ["203.0.113.0/30"]}]}])]
    assert allowed(docs, tcp(WEB, WORLD, 443))
    assert not allowed(docs, tcp(WEB, External(ip("203.0.113.3")), 443))
    assert not allowed(docs, tcp(WEB, External(ip("198.51.100.1")), 443))


def test_from_cidr_on_ingress() -> None:
    docs = [cnp(selector=sel(app="api"), ingress=[{"fromCIDR": ["203.0.113.0/24"]}])]
    assert allowed(docs, tcp(WORLD, API, 80))
    assert not allowed(docs, tcp(External(ip("198.51.100.1")), API, 80))


def test_cidr_group_ref_and_selector_are_resolved() -> None:
    groups = [cidr_group("partners", "203.0.113.0/24", labels={"kind": "partner"}),
              cidr_group("other", "198.51.100.0/24", labels={"kind": "other"})]
    by_ref = [cnp(selector=sel(app="web"), egress=[{"toCIDRSet": [{"cidrGroupRef": "partners"}]}])]
    assert allowed([*by_ref, *groups], tcp(WEB, WORLD, 443))
    assert not allowed([*by_ref, *groups], tcp(WEB, External(ip("198.51.100.1")), 443))
    by_sel = [cnp(selector=sel(app="web"), egress=[{"toCIDRSet": [{"cidrGroupSelector": sel(kind="other")}]}])]
    assert allowed([*groups, *by_sel], tcp(WEB, External(ip("198.51.100.1")), 443))
    assert not allowed([*groups, *by_sel], tcp(WEB, WORLD, 443))


def test_unknown_cidr_group_matches_nothing() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[{"toCIDRSet": [{"cidrGroupRef": "missing"}]}])]
    v = CiliumEngine(docs).evaluate(tcp(WEB, WORLD, 443))
    assert not v.allowed
    assert any("cidrGroupRef missing (no such CiliumCIDRGroup" in line for line in v.explanation)


# --------------------------------------------------------------------------------------------
# toFQDNs and DNS


FQDN_EGRESS = {"toFQDNs": [{"matchName": "api.example.com"}], "toPorts": ports(("443", "TCP"))}


def test_to_fqdns_with_dns_rule_and_learned_name() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[DNS_ANY, FQDN_EGRESS])]
    assert allowed(docs, tcp(WEB, WORLD, 443), ("api.example.com",))
    assert allowed(docs, tcp(WEB, WORLD, 443), ("API.Example.COM.",))  # case and trailing dot
    assert not allowed(docs, tcp(WEB, WORLD, 80), ("api.example.com",))  # toPorts still applies
    assert not allowed(docs, tcp(WEB, WORLD, 443), ("www.example.com",))


def test_to_fqdns_without_a_dns_rule_allows_nothing() -> None:
    plain_dns = {**DNS_ANY, "toPorts": ports(("53", "ANY"))}  # port 53 allowed, but no rules.dns
    docs = [cnp(selector=sel(app="web"), egress=[plain_dns, FQDN_EGRESS])]
    v = CiliumEngine(docs).evaluate(tcp(WEB, WORLD, 443), ("api.example.com",))
    assert not v.allowed
    assert any("no rules.dns pattern" in line for line in v.explanation)


def test_to_fqdns_needs_the_dns_rule_to_cover_the_name() -> None:
    narrow = {**DNS_ANY, "toPorts": ports(("53", "ANY"), rules={"dns": [{"matchName": "other.example.com"}]})}
    docs = [cnp(selector=sel(app="web"), egress=[narrow, FQDN_EGRESS])]
    assert not allowed(docs, tcp(WEB, WORLD, 443), ("api.example.com",))


def test_to_fqdns_needs_a_learned_name() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[DNS_ANY, FQDN_EGRESS])]
    v = CiliumEngine(docs).evaluate(tcp(WEB, WORLD, 443))
    assert not v.allowed
    assert any("dns_names is empty" in line for line in v.explanation)


def test_to_fqdns_never_matches_pods() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[DNS_ANY, {"toFQDNs": [{"matchPattern": "*"}]}])]
    assert not allowed(docs, tcp(WEB, API, 443), ("api.shop.svc.cluster.local",))
    assert allowed(docs, tcp(WEB, WORLD, 443), ("anything.example.org",))


@pytest.mark.parametrize("pattern, name, expected", [
    ("*.example.com", "a.example.com", True),
    ("*.example.com", "A.Example.Com.", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "a.b.example.com", False),
    ("**.example.com", "a.b.example.com", True),
    ("**.example.com", "a.example.com", True),
    ("**.example.com", "example.com", False),
    ("**.example.com", "a.example.org", False),
    ("*", "anything.at.all.example", True),
    ("*", "x", True),
    ("sub*.example.com", "subdomain.example.com", True),
    ("sub*.example.com", "www.example.com", False),
    ("*example.com", "myexample.com", True),
    ("*example.com", "www.example.com", False),
    ("api.example.com", "api.example.com.", True),
    ("api.example.com", "apixexample.com", False),
])
def test_dns_match_pattern(pattern: str, name: str, expected: bool) -> None:
    assert dns_pattern(pattern, False, "test").matches(name) is expected


@pytest.mark.parametrize("name, expected", [
    ("api.example.com", True), ("API.EXAMPLE.COM", True), ("api.example.com.", True),
    ("x.api.example.com", False), ("example.com", False),
])
def test_dns_match_name(name: str, expected: bool) -> None:
    assert dns_pattern("api.example.com.", True, "test").matches(name) is expected


def test_fqdn_patterns_in_to_fqdns_follow_the_same_rules() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[DNS_ANY, {"toFQDNs": [{"matchPattern": "*.example.com"}]}])]
    assert allowed(docs, tcp(WEB, WORLD, 443), ("a.example.com",))
    assert not allowed(docs, tcp(WEB, WORLD, 443), ("example.com",))
    assert not allowed(docs, tcp(WEB, WORLD, 443), ("a.b.example.com",))


def test_dns_lookup_visible_through_the_proxy() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[DNS_ANY])]
    result = CiliumEngine(docs).dns_lookup(WEB, COREDNS, "api.example.com")
    assert isinstance(result, DnsLookup)
    allowed_, visible, explanation = result
    assert allowed_ and visible
    assert "the DNS proxy sees the name" in explanation[-1]


def test_dns_lookup_without_dns_rule_is_allowed_but_invisible() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[{**DNS_ANY, "toPorts": ports(("53", "UDP"))}])]
    result = CiliumEngine(docs).dns_lookup(WEB, COREDNS, "api.example.com")
    assert (result.allowed, result.proxied_visible) == (True, False)


def test_dns_lookup_for_a_name_no_pattern_covers_is_refused() -> None:
    narrow = {**DNS_ANY, "toPorts": ports(("53", "ANY"), rules={"dns": [{"matchPattern": "*.example.com"}]})}
    engine = CiliumEngine([cnp(selector=sel(app="web"), egress=[narrow])])
    assert engine.dns_lookup(WEB, COREDNS, "a.example.com")[:2] == (True, True)
    refused = engine.dns_lookup(WEB, COREDNS, "evil.example.org")
    assert refused[:2] == (False, False)
    assert "refused" in " ".join(refused.explanation)


def test_dns_lookup_wildcard_merge_allows_but_the_name_is_not_covered() -> None:
    narrow = {**DNS_ANY, "toPorts": ports(("53", "ANY"), rules={"dns": [{"matchPattern": "*.example.com"}]})}
    plain = {"toEntities": ["cluster"], "toPorts": ports(("53", "UDP"))}
    engine = CiliumEngine([cnp(selector=sel(app="web"), egress=[narrow, plain])])
    assert engine.dns_lookup(WEB, COREDNS, "evil.example.org")[:2] == (True, False)


def test_dns_lookup_needs_ingress_at_the_dns_pod_and_l3() -> None:
    deny_in = cnp("dns-in", namespace="kube-system", selector=sel(**{"k8s-app": "kube-dns"}),
                  ingress=[{"fromEndpoints": [{}]}])  # only kube-system pods
    docs = [cnp(selector=sel(app="web"), egress=[DNS_ANY]), deny_in]
    assert CiliumEngine(docs).dns_lookup(WEB, COREDNS, "a.example.com")[:2] == (False, False)
    assert CiliumEngine(docs[:1]).dns_lookup(WEB, API, "a.example.com")[:2] == (False, False)  # not kube-dns


# --------------------------------------------------------------------------------------------
# L4


def test_to_ports_closes_other_ports_and_protocols() -> None:
    docs = [cnp(selector=sel(app="api"), ingress=[{"fromEndpoints": [{}], "toPorts": ports(("80", "TCP"))}])]
    assert allowed(docs, tcp(WEB, API, 80))
    assert not allowed(docs, tcp(WEB, API, 81))
    assert not allowed(docs, Connection(WEB, API, "UDP", 80))


def test_protocol_any_is_the_default_and_covers_tcp_udp_sctp_not_icmp() -> None:
    docs = [cnp(selector=sel(app="api"), ingress=[{"toPorts": ports("53")}])]
    for proto in ("TCP", "UDP", "SCTP"):
        assert allowed(docs, Connection(WEB, API, proto, 53)), proto
    assert not allowed(docs, Connection(WEB, API, "ICMP", 53))
    explicit = [cnp(selector=sel(app="api"), ingress=[{"toPorts": ports(("53", "ANY"))}])]
    assert allowed(explicit, Connection(WEB, API, "UDP", 53))


def test_end_port_range_is_inclusive() -> None:
    entry = [{"ports": [{"port": "8000", "endPort": 8080, "protocol": "TCP"}]}]
    docs = [cnp(selector=sel(app="api"), ingress=[{"toPorts": entry}])]
    assert [allowed(docs, tcp(WEB, API, p)) for p in (7999, 8000, 8042, 8080, 8081)] == [
        False, True, True, True, False]


def test_port_zero_or_absent_means_every_port_of_the_protocol() -> None:
    docs = [cnp(selector=sel(app="api"), ingress=[{"toPorts": [{"ports": [{"port": "0", "protocol": "UDP"}]}]}])]
    assert allowed(docs, Connection(WEB, API, "UDP", 12345))
    assert not allowed(docs, tcp(WEB, API, 12345))


def test_named_ports_resolve_on_the_destination_pod() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[{"toPorts": ports(("http", "TCP"))}])]
    assert allowed(docs, tcp(WEB, API, 9090))  # api's "http" is 9090
    assert not allowed(docs, tcp(WEB, API, 8080))
    assert not allowed(docs, tcp(WEB, WORLD, 9090))  # an external address has no container ports
    ingress = [cnp(selector=sel(app="api"), ingress=[{"toPorts": ports("metrics")}])]
    assert allowed(ingress, Connection(WEB, API, "UDP", 9091))
    assert not allowed(ingress, tcp(WEB, API, 9091))  # the name is declared for UDP


@pytest.mark.parametrize("fields, conn_proto, type_, expected", [
    ([{"family": "IPv4", "type": 8}], "ICMP", 8, True),
    ([{"family": "IPv4", "type": "EchoRequest"}], "ICMP", 8, True),
    ([{"type": "EchoRequest"}], "ICMP", 8, True),  # family defaults to IPv4
    ([{"family": "IPv4", "type": 8}], "ICMP", 0, False),
    ([{"family": "IPv4", "type": 8}], "ICMPv6", 8, False),
    ([{"family": "IPv6", "type": "EchoRequest"}], "ICMPv6", 128, True),
    ([{"family": "IPv4", "type": 8}], "TCP", 8, False),
    # type 0 is Cilium's wildcard port: every type of its family (cilium/cilium#41304)
    ([{"family": "IPv4", "type": 0}], "ICMP", 0, True),
    ([{"family": "IPv4", "type": "EchoReply"}], "ICMP", 8, True),
    ([{"family": "IPv4", "type": 0}], "ICMPv6", 128, False),
    ([{"family": "IPv6", "type": 0}], "ICMPv6", 129, True),
])
def test_icmp_fields(fields: list[dict[str, Any]], conn_proto: str, type_: int, expected: bool) -> None:
    docs = [cnp(selector=sel(app="web"), egress=[{"toEntities": ["world"], "icmps": [{"fields": fields}]}])]
    assert allowed(docs, Connection(WEB, WORLD, conn_proto, type_)) is expected


def test_ports_only_rule_matches_every_peer_and_empty_rule_nothing() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[{"toPorts": ports(("443", "TCP"))}])]
    assert allowed(docs, tcp(WEB, WORLD, 443)) and allowed(docs, tcp(WEB, DB, 443))
    assert allowed(docs, tcp(WEB, NODE_B, 443)) and allowed(docs, tcp(WEB, APISERVER, 443))
    assert not allowed(docs, tcp(WEB, WORLD, 80))
    empty = [cnp(selector=sel(app="web"), egress=[{}])]
    assert not allowed(empty, tcp(WEB, WORLD, 443)) and not allowed(empty, tcp(WEB, API, 1))


# --------------------------------------------------------------------------------------------
# L7 HTTP


def http_policy(*rules: dict[str, Any], port: str = "80", **extra: Any) -> dict[str, Any]:
    return cnp("l7", selector=sel(app="api"),
               ingress=[{"fromEndpoints": [sel(app="web")],
                         "toPorts": ports((port, "TCP"), rules={"http": list(rules)})}],
               **extra)


def test_http_rules_allow_matching_requests_and_403_the_rest() -> None:
    engine = CiliumEngine([http_policy({"method": "GET", "path": "/public"})])
    assert engine.verdict(tcp(WEB, API, 80, GET)) == "allow"
    denied = engine.evaluate(tcp(WEB, API, 80, HttpRequest("GET", "/private")))
    assert (denied.allowed, denied.outcome) == (False, "l7-deny")
    assert "403" in denied.explanation[1]
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("POST", "/public"))) == "l7-deny"
    assert engine.verdict(tcp(WEB, API, 80)) == "drop"  # no HTTP on a proxied port
    assert engine.verdict(tcp(WEB, API, 81, GET)) == "drop"  # L4


def test_http_regexes_match_the_whole_value() -> None:
    engine = CiliumEngine([http_policy({"method": "GET|HEAD", "path": "/api/v[0-9]+/.*"})])
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("HEAD", "/api/v2/items"))) == "allow"
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("GETX", "/api/v2/items"))) == "l7-deny"
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("GET", "/x/api/v2/items"))) == "l7-deny"
    prefix = CiliumEngine([http_policy({"path": "/public"})])
    assert prefix.verdict(tcp(WEB, API, 80, HttpRequest("GET", "/public/x"))) == "l7-deny"


def test_http_host_and_headers() -> None:
    engine = CiliumEngine([http_policy(
        {"host": "^api\\.example\\.com$", "headers": ["X-Token", "X-Env: prod"]},
        {"headerMatches": [{"name": "X-Role", "value": "admin"}]},
    )])
    good = HttpRequest("GET", "/", "api.example.com", (("x-token", "abc"), ("X-Env", "prod")))
    assert engine.verdict(tcp(WEB, API, 80, good)) == "allow"
    wrong_host = HttpRequest("GET", "/", "api.example.org", good.headers)
    assert engine.verdict(tcp(WEB, API, 80, wrong_host)) == "l7-deny"
    wrong_value = HttpRequest("GET", "/", "api.example.com", (("X-Token", "abc"), ("X-Env", "dev")))
    assert engine.verdict(tcp(WEB, API, 80, wrong_value)) == "l7-deny"
    missing = HttpRequest("GET", "/", "api.example.com", (("X-Env", "prod"),))
    assert engine.verdict(tcp(WEB, API, 80, missing)) == "l7-deny"
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("GET", "/", "", (("X-Role", "admin"),)))) == "allow"
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("GET", "/", "", (("X-Role", "user"),)))) == "l7-deny"


def test_header_match_with_mismatch_action_only_logs() -> None:
    engine = CiliumEngine([http_policy({"path": "/a", "headerMatches": [{"name": "X-Role", "value": "admin",
                                                                        "mismatch": "LOG"}]})])
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("GET", "/a"))) == "allow"


def test_http_rule_without_fields_allows_every_request() -> None:
    engine = CiliumEngine([http_policy({})])
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("DELETE", "/anything"))) == "allow"


def test_l3l4_rule_for_the_same_peer_and_port_is_an_l7_wildcard() -> None:
    wildcard = cnp("plain", selector=sel(app="api"),
                   ingress=[{"fromEndpoints": [sel(app="web")], "toPorts": ports(("80", "TCP"))}])
    engine = CiliumEngine([http_policy({"method": "GET", "path": "/public"}), wildcard])
    v = engine.evaluate(tcp(WEB, API, 80, HttpRequest("DELETE", "/private")))
    assert v.outcome == "allow"
    assert "L7 wildcard" in v.explanation[1]


def test_l3_only_rule_for_the_same_peer_is_an_l7_wildcard_too() -> None:
    l3_only = cnp("l3", selector=sel(app="api"), ingress=[{"fromEndpoints": [sel(app="web")]}])
    engine = CiliumEngine([http_policy({"path": "/public"}), l3_only])
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("GET", "/private"))) == "allow"


def test_l3l4_rule_for_another_peer_or_port_does_not_wildcard() -> None:
    other_peer = cnp("other", selector=sel(app="api"),
                     ingress=[{"fromEndpoints": [sel(app="nobody")], "toPorts": ports(("80", "TCP"))}])
    other_port = cnp("port", selector=sel(app="api"),
                     ingress=[{"fromEndpoints": [sel(app="web")], "toPorts": ports(("81", "TCP"))}])
    engine = CiliumEngine([http_policy({"path": "/public"}), other_peer, other_port])
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("GET", "/private"))) == "l7-deny"


def test_http_rules_across_allowing_rules_are_merged() -> None:
    second = cnp("l7b", selector=sel(app="api"),
                 ingress=[{"fromEndpoints": [{}], "toPorts": ports(("80", "TCP"), rules={"http": [{"path": "/b"}]})}])
    engine = CiliumEngine([http_policy({"path": "/a"}), second])
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("GET", "/a"))) == "allow"
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("GET", "/b"))) == "allow"
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("GET", "/c"))) == "l7-deny"


def test_http_rules_apply_on_egress() -> None:
    doc = cnp(selector=sel(app="web"), egress=[{"toEntities": ["world"], "toPorts": ports(
        ("80", "TCP"), rules={"http": [{"method": "POST", "host": "^api.example.com$"}]})}])
    engine = CiliumEngine([doc])
    assert engine.verdict(tcp(WEB, WORLD, 80, HttpRequest("POST", "/", "api.example.com"))) == "allow"
    v = engine.evaluate(tcp(WEB, WORLD, 80, HttpRequest("GET", "/", "api.example.com")))
    assert v.outcome == "l7-deny" and v.explanation[-1].endswith("denied at L7 by egress")


def test_l7_rules_apply_even_without_default_deny() -> None:
    engine = CiliumEngine([http_policy({"path": "/public"}, enable_default_deny={"ingress": False})])
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("GET", "/private"))) == "l7-deny"
    assert engine.verdict(tcp(WEB, API, 81)) == "allow"  # not in default deny
    assert engine.verdict(tcp(DB, API, 80)) == "allow"  # the L7 rule is for web only


def test_l3l4_drop_beats_l7_deny() -> None:
    egress_closed = cnp("closed", selector=sel(app="web"), egress=[{}])
    engine = CiliumEngine([http_policy({"path": "/public"}), egress_closed])
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("GET", "/private"))) == "drop"


# --------------------------------------------------------------------------------------------
# deny


def test_egress_deny_beats_allow_in_the_same_policy() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[{"toEntities": ["all"]}],
                egress_deny=[{"toEndpoints": [sel(app="api")]}])]
    v = CiliumEngine(docs).evaluate(tcp(WEB, API, 80))
    assert v.outcome == "drop" and "egressDeny[0]" in v.explanation[0]
    assert allowed(docs, tcp(WEB, WORLD, 80))


@pytest.mark.parametrize("allow", [
    ccnp("allow-all", ingress=[{"fromEntities": ["all"]}]),
    cnp("allow-all", selector=sel(app="api"), ingress=[{"fromEndpoints": [{}]}]),
    knp("allow-all", ingress=[{}]),
])
def test_ingress_deny_beats_every_kind_of_allow(allow: dict[str, Any]) -> None:
    deny = ccnp("deny", selector=sel(app="api"),
                ingress_deny=[{"fromEndpoints": [sel(app="web")], "toPorts": ports(("80", "TCP"))}])
    assert allowed([allow], tcp(WEB, API, 80))
    assert not allowed([allow, deny], tcp(WEB, API, 80))
    assert allowed([allow, deny], tcp(WEB, API, 81))  # the deny has ports


def test_deny_with_cidr_icmp_and_entities() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[{"toEntities": ["all"]}],
                egress_deny=[{"toCIDRSet": [{"cidr": "203.0.113.0/24"}]},
                             {"toEntities": ["kube-apiserver"]},
                             {"icmps": [{"fields": [{"type": 8}]}]}])]
    assert not allowed(docs, tcp(WEB, WORLD, 443))
    assert not allowed(docs, tcp(WEB, APISERVER, 443))
    assert not allowed(docs, Connection(WEB, API, "ICMP", 8))
    assert allowed(docs, Connection(WEB, API, "ICMP", 0))
    assert allowed(docs, tcp(WEB, External(ip("198.51.100.1")), 443))


def test_deny_only_policy_flips_default_deny() -> None:
    deny_only = ccnp("block-db", selector=sel(app="web"), egress_deny=[{"toEndpoints": [sel(app="db")]}])
    v = CiliumEngine([deny_only]).evaluate(tcp(WEB, WORLD, 443))
    assert not v.allowed
    assert "default deny (by CiliumClusterwideNetworkPolicy block-db)" in v.explanation[0]


def test_deny_only_policy_with_enable_default_deny_false_only_denies() -> None:
    deny_only = ccnp("block-db", selector=sel(app="web"), egress_deny=[{"toEndpoints": [sel(app="db")]}],
                     enable_default_deny={"ingress": False, "egress": False})
    assert allowed([deny_only], tcp(WEB, WORLD, 443))
    assert not allowed([deny_only], tcp(WEB, DB, 5432))


def test_ingress_deny_of_the_own_node_beats_the_host_exception() -> None:
    docs = [cnp(selector=sel(app="web"), ingress_deny=[{"fromEntities": ["host"]}])]
    assert not allowed(docs, tcp(NODE_A, WEB, 8080))


# --------------------------------------------------------------------------------------------
# default deny


def test_ingress_section_only_affects_ingress() -> None:
    docs = [cnp(selector=sel(app="web"), ingress=[{"fromEndpoints": [sel(app="api")]}])]
    assert not allowed(docs, tcp(DB, WEB, 80))
    assert allowed(docs, tcp(API, WEB, 80))
    assert allowed(docs, tcp(WEB, WORLD, 443))  # egress untouched


def test_enable_default_deny_false_makes_an_allow_policy_additive() -> None:
    docs = [cnp(selector=sel(app="web"), ingress=[{"fromEndpoints": [sel(app="api")]}],
                enable_default_deny={"ingress": False})]
    assert allowed(docs, tcp(DB, WEB, 80))
    v = CiliumEngine(docs).evaluate(tcp(DB, WEB, 80))
    assert "not in default deny (selected only by CiliumNetworkPolicy shop/p)" in v.explanation[1]


def test_one_enforcing_policy_is_enough() -> None:
    additive = cnp("additive", selector=sel(app="web"), ingress=[{"fromEndpoints": [sel(app="api")]}],
                   enable_default_deny={"ingress": False})
    strict = ccnp("strict", selector=sel(app="web"), ingress=[{"fromEntities": ["world"]}])
    assert not allowed([additive, strict], tcp(DB, WEB, 80))
    assert allowed([additive, strict], tcp(API, WEB, 80))
    assert allowed([additive, strict], tcp(WORLD, WEB, 80))


def test_enable_default_deny_true_without_a_section_enforces() -> None:
    docs = [cnp(selector=sel(app="web"), egress=[{"toEntities": ["world"]}],
                enable_default_deny={"ingress": True})]
    assert not allowed(docs, tcp(API, WEB, 80))


def test_empty_rule_counts_for_default_deny_but_empty_section_does_not() -> None:
    assert not allowed([cnp(selector=sel(app="web"), ingress=[{}])], tcp(API, WEB, 80))
    assert allowed([cnp(selector=sel(app="web"), ingress=[], egress=[{}])], tcp(API, WEB, 80))


# --------------------------------------------------------------------------------------------
# both sides, nodes, loopback


def test_connection_needs_egress_and_ingress() -> None:
    egress = cnp("out", selector=sel(app="web"), egress=[{"toEndpoints": [sel(app="api")]}])
    ingress = cnp("in", selector=sel(app="api"), ingress=[{"fromEndpoints": [sel(app="db")]}])
    v = CiliumEngine([egress, ingress]).evaluate(tcp(WEB, API, 80))
    assert not v.allowed and v.explanation[-1].endswith("dropped by ingress")
    assert "allowed by CiliumNetworkPolicy shop/out egress[0]" in v.explanation[0]
    assert not allowed([egress], tcp(WEB, DB, 80))


def test_non_pods_impose_nothing() -> None:
    assert allowed([ccnp(selector=sel(app="nothing"), ingress=[{}], egress=[{}])], tcp(WORLD, NODE_A, 22))
    v = CiliumEngine([]).evaluate(tcp(NODE_A, WORLD, 443))
    assert "source node/node-a is not a pod" in v.explanation[0]


def test_ingress_from_the_pods_own_node_is_always_allowed() -> None:
    docs = [cnp(selector=sel(app="web"), ingress=[{}])]
    v = CiliumEngine(docs).evaluate(tcp(NODE_A, WEB, 8080))  # web runs on node-a
    assert v.allowed and "own node" in v.explanation[1]
    assert not allowed(docs, tcp(NODE_B, WEB, 8080))
    egress = [cnp(selector=sel(app="web"), egress=[{}])]
    assert not allowed(egress, tcp(WEB, NODE_A, 10250))  # egress to the host is not exempt


def test_loopback_is_always_allowed() -> None:
    docs = [cnp(selector=sel(app="web"), ingress=[{}], egress=[{}], egress_deny=[{"toEntities": ["all"]}])]
    v = CiliumEngine(docs).evaluate(tcp(WEB, WEB, 8080))
    assert v.allowed and v.explanation[0].startswith("loopback")


# --------------------------------------------------------------------------------------------
# Kubernetes NetworkPolicy, the Cilium way


def test_k8s_ip_block_never_matches_pods_or_nodes() -> None:
    docs = [knp(pod_selector=sel(app="web"), policy_types=["Egress"],
                egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}])]
    assert allowed(docs, tcp(WEB, WORLD, 443))
    assert not allowed(docs, tcp(WEB, API, 443))
    assert not allowed(docs, tcp(WEB, NODE_B, 443))


def test_k8s_ip_block_except() -> None:
    docs = [knp(pod_selector=sel(app="api"), ingress=[{"from": [{"ipBlock": {"cidr": "203.0.113.0/24",
                                                                           "except": ["203.0.113.0/30"]}}]}])]
    assert allowed(docs, tcp(WORLD, API, 80))
    assert not allowed(docs, tcp(External(ip("203.0.113.2")), API, 80))


def test_k8s_pod_and_namespace_selectors() -> None:
    pod_only = [knp(namespace="bank", pod_selector=sel(app="db"),
                    ingress=[{"from": [{"podSelector": sel(app="web")}]}])]
    assert allowed(pod_only, tcp(BANK_WEB, DB, 5432)) and not allowed(pod_only, tcp(WEB, DB, 5432))
    ns_only = [knp(namespace="bank", pod_selector=sel(app="db"),
                   ingress=[{"from": [{"namespaceSelector": sel(team="shop")}]}])]
    assert allowed(ns_only, tcp(WEB, DB, 5432)) and allowed(ns_only, tcp(API, DB, 5432))
    assert not allowed(ns_only, tcp(BANK_WEB, DB, 5432)) and not allowed(ns_only, tcp(WORLD, DB, 5432))
    both = [knp(namespace="bank", pod_selector=sel(app="db"),
                ingress=[{"from": [{"namespaceSelector": sel(**{"kubernetes.io/metadata.name": "shop"}),
                                    "podSelector": sel(app="api")}]}])]
    assert allowed(both, tcp(API, DB, 5432)) and not allowed(both, tcp(WEB, DB, 5432))


def test_k8s_policy_types_defaulting_for_default_deny() -> None:
    ingress_only = [knp(pod_selector=sel(app="web"))]  # policyTypes default to [Ingress]
    assert not allowed(ingress_only, tcp(API, WEB, 80)) and allowed(ingress_only, tcp(WEB, WORLD, 443))
    with_egress = [knp(pod_selector=sel(app="web"), egress=[{"to": [{"podSelector": sel(app="api")}]}])]
    assert not allowed(with_egress, tcp(WEB, WORLD, 443)) and allowed(with_egress, tcp(WEB, API, 443))
    assert not allowed(with_egress, tcp(API, WEB, 80))  # Ingress is defaulted too
    egress_only = [knp(pod_selector=sel(app="web"), policy_types=["Egress"])]
    assert allowed(egress_only, tcp(API, WEB, 80)) and not allowed(egress_only, tcp(WEB, API, 80))


def test_k8s_ports_and_named_ports() -> None:
    docs = [knp(pod_selector=sel(app="api"), ingress=[{"ports": [{"port": "http"}, {"port": 9091, "protocol": "UDP"},
                                                                 {"port": 7000, "endPort": 7010}]}])]
    assert allowed(docs, tcp(WEB, API, 9090))
    assert allowed(docs, Connection(WEB, API, "UDP", 9091))
    assert allowed(docs, tcp(WEB, API, 7010))
    assert not allowed(docs, Connection(WEB, API, "UDP", 9090))  # protocol defaults to TCP
    assert not allowed(docs, tcp(WEB, API, 7011))


def test_k8s_allow_rule_is_an_l7_wildcard_for_a_cnp_l7_rule() -> None:
    k8s = knp(pod_selector=sel(app="api"), ingress=[{"from": [{"podSelector": sel(app="web")}],
                                                     "ports": [{"port": 80}]}])
    engine = CiliumEngine([http_policy({"path": "/public"}), k8s])
    assert engine.verdict(tcp(WEB, API, 80, HttpRequest("GET", "/private"))) == "allow"


def test_k8s_and_cilium_policies_add_up() -> None:
    k8s = knp(pod_selector=sel(app="api"), ingress=[{"from": [{"podSelector": sel(app="web")}]}])
    cilium = cnp(selector=sel(app="api"), ingress=[{"fromEntities": ["world"]}])
    assert allowed([k8s, cilium], tcp(WEB, API, 80)) and allowed([k8s, cilium], tcp(WORLD, API, 80))
    assert not allowed([k8s, cilium], tcp(DB, API, 80))


# --------------------------------------------------------------------------------------------
# manifests


def test_specs_list_is_evaluated_rule_by_rule() -> None:
    doc = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "m", "namespace": "shop"},
           "specs": [{"endpointSelector": sel(app="api"), "ingress": [{"fromEndpoints": [sel(app="web")]}]},
                     {"endpointSelector": sel(app="web"), "egress": [{"toEndpoints": [sel(app="api")]}]}]}
    assert allowed([doc], tcp(WEB, API, 80))
    assert not allowed([doc], tcp(WEB, WORLD, 80)) and not allowed([doc], tcp(DB, API, 80))


def test_unknown_kind_is_rejected_by_name() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    with pytest.raises(ManifestError, match="'Service'") as info:
        CiliumEngine([cnp(ingress=[{}]), svc])
    assert info.value.position == 1
    calico = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy", "metadata": {"name": "n"}}
    with pytest.raises(ValueError, match=r"projectcalico\.org/v3"):
        CiliumEngine([calico])


def test_kustomization_is_skipped() -> None:
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": []}
    assert CiliumEngine([kustomization]).policies == ()


@pytest.mark.parametrize("spec, message", [
    ({"endpointSelector": {}, "egress": [{"toServices": [{"k8sService": {"serviceName": "s"}}]}]}, "toServices"),
    ({"endpointSelector": {}, "nodeSelector": {}, "ingress": [{}]}, "exactly one of endpointSelector"),
    ({"endpointSelector": {}}, "at least one of ingress"),
    ({"endpointSelector": {}, "ingress": [{"toPorts": ports("80", rules={"http": [{"path": "(["}]})}]},
     "invalid regular expression"),
    ({"endpointSelector": {}, "ingressDeny": [{"toPorts": ports("80", rules={"http": [{}]})}]}, "rules"),
    ({"endpointSelector": {}, "egressDeny": [{"toFQDNs": [{"matchName": "x.com"}]}]}, "toFQDNs"),
    ({"endpointSelector": {}, "ingress": [{"fromFQDNs": []}]}, "fromFQDNs"),
    ({"endpointSelector": {}, "egress": [{"toEntities": ["everything"]}]}, "unknown entity"),
    ({"endpointSelector": {}, "egress": [{"toPorts": [{"ports": [{"port": "80", "protocol": "ICMP"}]}]}]},
     "unsupported protocol"),
    ({"endpointSelector": {}, "egress": [{"toPorts": [{"ports": [{"port": "http", "endPort": 90}]}]}]},
     "endPort requires a numeric port"),
    ({"endpointSelector": {}, "egress": [{"toFQDNs": [{"matchPattern": "bad pattern"}]}]}, "invalid matchPattern"),
    ({"endpointSelector": {}, "egress": [{"icmps": [{"fields": [{"type": "Bogus"}]}]}]}, "unknown IPv4 ICMP type"),
    ({"endpointSelector": {}, "ingress": [{"icmps": [{"fields": [{"type": 8}]}], "toPorts": ports("80")}]},
     "ICMPs block may only be present without toPorts"),
    ({"endpointSelector": {}, "egress": [{"icmps": [{"fields": [{"type": t} for t in range(41)]}]}]},
     "too many types, the max is 40"),
    ({"endpointSelector": expr("a", "In"), "egress": [{}]}, "non-empty values"),
])
def test_invalid_cilium_specs_are_rejected(spec: dict[str, Any], message: str) -> None:
    doc = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "x"}, "spec": spec}
    with pytest.raises(ValueError, match=message):
        CiliumEngine([doc])


def test_shared_samples_evaluate() -> None:
    yaml = pytest.importorskip("yaml")
    if not SAMPLES.is_dir():
        pytest.skip(f"{SAMPLES} not found")
    multi = [d for d in yaml.safe_load_all((SAMPLES / "l7_http_l7_multi.yaml").read_text()) if d]
    prod = Pod("default", "client", {"env": "prod"}, ip=ip("10.0.9.1"))
    service = Pod("default", "service", {"app": "service"}, ip=ip("10.0.9.2"))
    engine = CiliumEngine(multi)
    assert engine.verdict(Connection(prod, service, "TCP", 80, HttpRequest("GET", "/public"))) == "l7-deny"
    assert engine.verdict(Connection(prod, service, "TCP", 80,
                                     HttpRequest("POST", "/public", "external-service.org"))) == "l7-deny"
    other = External(ip("198.51.100.1"))
    post = HttpRequest("POST", "/", "external-service.org")
    assert engine.verdict(Connection(prod, other, "TCP", 80, post)) == "allow"
    fqdn = [d for d in yaml.safe_load_all((SAMPLES / "l7_dns_dns.yaml").read_text()) if d]
    client = Pod("default", "c", {"org": "alliance"}, ip=ip("10.0.9.3"))
    dns = Pod("kube-system", "dns", {"k8s-app": "kube-dns"}, ip=ip("10.0.9.4"))
    engine = CiliumEngine(fqdn)
    assert engine.dns_lookup(client, dns, "sub.cilium.io")[:2] == (True, True)
    assert engine.dns_lookup(client, dns, "a.b.cilium.io")[:2] == (False, False)
    site = External(ip("104.198.14.52"))
    assert engine.verdict(Connection(client, site, "TCP", 80), ["sub.cilium.io"]) == "allow"
    assert engine.verdict(Connection(client, site, "TCP", 80), ["specialxservice.api.cilium.io"]) == "allow"
    assert engine.verdict(Connection(client, site, "TCP", 443), ["sub.cilium.io"]) == "drop"

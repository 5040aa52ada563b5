"""Tests of the static Kubernetes NetworkPolicy evaluator against the documented API semantics."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from netpol_dsl.endpoints import ApiServer, Connection, ContainerPort, Endpoint, External, Node, Pod
from netpol_dsl.engines import KubernetesEngine, Verdict, evaluate

# --------------------------------------------------------------------------------------------
# fixtures


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def netpol(
    name: str,
    namespace: str = "shop",
    pod_selector: dict[str, Any] | None = None,
    policy_types: list[str] | None = None,
    ingress: list[dict[str, Any]] | None = None,
    egress: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": {} if pod_selector is None else pod_selector}
    if policy_types is not None:
        spec["policyTypes"] = policy_types
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def labels(**kv: str) -> dict[str, Any]:
    return {"matchLabels": dict(kv)}


SHOP_NS = {"team": "shop", "env": "prod"}
BANK_NS = {"team": "bank", "env": "prod"}
DEV_NS = {"team": "dev"}

WEB = Pod(
    "shop",
    "web",
    {"app": "web", "tier": "front"},
    SHOP_NS,
    ip=ip("10.0.1.10"),
    ports=(ContainerPort(8080, "TCP", "http"), ContainerPort(53, "UDP", "dns")),
    node="node-a",
)
API = Pod(
    "shop",
    "api",
    {"app": "api", "tier": "back"},
    SHOP_NS,
    ip=ip("10.0.1.20"),
    ports=(ContainerPort(9000, "TCP", "http"), ContainerPort(9090, "TCP", "metrics")),
    node="node-b",
)
DB = Pod(
    "shop",
    "db",
    {"app": "db"},
    SHOP_NS,
    ip=ip("10.0.1.30"),
    ports=(ContainerPort(5432, "TCP", "pg"),),
    node="node-a",
)
BANK_API = Pod("bank", "api", {"app": "api"}, BANK_NS, ip=ip("10.0.2.20"), node="node-b")
BANK_WEB = Pod("bank", "web", {"app": "web"}, BANK_NS, ip=ip("10.0.2.10"), node="node-b")
DEV_API = Pod("dev", "api", {"app": "api"}, DEV_NS, ip=ip("10.0.3.20"), node="node-c")
NO_IP = Pod("bank", "noip", {"app": "api"}, BANK_NS, node="node-c")
EXT = External(ip("203.0.113.7"), ("example.com",))
EXT_OTHER = External(ip("198.51.100.1"))
EXT_V6 = External(ip("2001:db8::7"))
NODE_A = Node("node-a", ip("192.168.0.1"))
NODE_B = Node("node-b", ip("192.168.0.2"))


def conn(src: Endpoint, dst: Endpoint, port: int = 80, protocol: str = "TCP") -> Connection:
    return Connection(src, dst, protocol, port)


def allowed(
    policies: list[dict[str, Any]], src: Endpoint, dst: Endpoint, port: int = 80, protocol: str = "TCP"
) -> bool:
    return evaluate(policies, conn(src, dst, port, protocol)).allowed


DENY_ALL_INGRESS = netpol("deny-in", policy_types=["Ingress"])
DENY_ALL_EGRESS = netpol("deny-out", policy_types=["Egress"])


# --------------------------------------------------------------------------------------------
# isolation and defaulting of policyTypes


def test_no_policies_allow_everything_and_say_not_isolated() -> None:
    verdict = evaluate([], conn(WEB, API))
    assert verdict == Verdict(True, verdict.explanation)
    assert verdict.allowed
    assert "not isolated" in verdict.explanation[0]
    assert "not isolated" in verdict.explanation[1]


def test_empty_spec_isolates_for_ingress_only() -> None:
    policy = netpol("deny")  # podSelector {} and nothing else: policyTypes defaults to [Ingress]
    assert not allowed([policy], WEB, API)
    assert allowed([policy], API, EXT)  # egress is not isolated
    assert allowed([policy], EXT, BANK_API)  # other namespace is not selected


def test_ingress_rules_without_policy_types_isolate_ingress_only() -> None:
    policy = netpol(
        "in", pod_selector=labels(app="api"), ingress=[{"from": [{"podSelector": labels(app="web")}]}]
    )
    assert allowed([policy], WEB, API)
    assert not allowed([policy], DB, API)
    assert allowed([policy], API, DB)  # API's egress is not isolated, DB's ingress is not either


def test_egress_only_policy_without_policy_types_also_isolates_ingress() -> None:
    # policyTypes defaults to ["Ingress", "Egress"] because spec.egress has a rule
    policy = netpol(
        "out", pod_selector=labels(app="web"), egress=[{"to": [{"podSelector": labels(app="api")}]}]
    )
    assert allowed([policy], WEB, API)
    assert not allowed([policy], WEB, DB)  # egress isolated
    assert not allowed([policy], API, WEB)  # ingress isolated too, with no ingress rules
    assert allowed([policy], API, DB)  # unselected pods unaffected


def test_empty_egress_list_without_policy_types_does_not_isolate_egress() -> None:
    policy = netpol("x", pod_selector=labels(app="web"), egress=[])
    assert allowed([policy], WEB, EXT)
    assert not allowed([policy], API, WEB)


def test_empty_policy_types_list_is_defaulted() -> None:
    policy = netpol(
        "x",
        pod_selector=labels(app="web"),
        policy_types=[],
        egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
    )
    assert not allowed([policy], API, WEB)  # defaulted Ingress
    assert allowed([policy], WEB, EXT)
    assert not allowed([policy], WEB, EXT_V6)  # defaulted Egress, no v6 rule


def test_explicit_egress_type_without_rules_denies_all_egress_only() -> None:
    assert not allowed([DENY_ALL_EGRESS], WEB, EXT)
    assert not allowed([DENY_ALL_EGRESS], WEB, API)
    assert allowed([DENY_ALL_EGRESS], EXT, WEB)


def test_explicit_ingress_type_ignores_egress_rules() -> None:
    policy = netpol(
        "x",
        policy_types=["Ingress"],
        ingress=[{"from": [{"podSelector": {}}]}],
        egress=[{"to": [{"podSelector": {}}]}],
    )
    assert allowed([policy], WEB, EXT)  # egress rules are ignored, egress not isolated
    assert allowed([policy], WEB, API)
    assert not allowed([policy], EXT, WEB)


def test_policy_only_isolates_pods_of_its_namespace() -> None:
    policy = netpol("deny", namespace="bank")
    assert not allowed([policy], WEB, BANK_API)
    assert allowed([policy], BANK_API, WEB)


def test_policy_pod_selector_limits_isolation() -> None:
    policy = netpol("deny-db", pod_selector=labels(app="db"))
    assert not allowed([policy], WEB, DB)
    assert allowed([policy], WEB, API)


def test_missing_namespace_means_default() -> None:
    doc = netpol("deny")
    del doc["metadata"]["namespace"]
    default_pod = Pod("default", "p", {"app": "x"})
    assert not allowed([doc], WEB, default_pod)
    assert allowed([doc], default_pod, WEB)


# --------------------------------------------------------------------------------------------
# rules: from/to, ports, ORs and ANDs


@pytest.mark.parametrize("rule", [{}, {"from": []}, {"from": None}, {"ports": []}, {"from": [], "ports": []}])
def test_absent_or_empty_from_and_ports_allow_everything(rule: dict[str, Any]) -> None:
    policy = netpol("x", pod_selector=labels(app="api"), ingress=[rule])
    for src in (WEB, BANK_WEB, EXT, NODE_B, ApiServer()):
        assert allowed([policy], src, API, 1234, "UDP")


def test_empty_ingress_list_denies_everything() -> None:
    policy = netpol("x", pod_selector=labels(app="api"), ingress=[])
    assert not allowed([policy], WEB, API)
    assert allowed([netpol("y", pod_selector=labels(app="api"), ingress=[{}])], WEB, API)


def test_rule_peers_and_ports_are_anded() -> None:
    policy = netpol(
        "x",
        pod_selector=labels(app="api"),
        ingress=[{"from": [{"podSelector": labels(app="web")}], "ports": [{"port": 9000}]}],
    )
    assert allowed([policy], WEB, API, 9000)
    assert not allowed([policy], WEB, API, 9001)  # right peer, wrong port
    assert not allowed([policy], DB, API, 9000)  # right port, wrong peer


def test_peers_ored_ports_ored_rules_ored() -> None:
    policy = netpol(
        "x",
        pod_selector=labels(app="api"),
        ingress=[
            {
                "from": [{"podSelector": labels(app="web")}, {"podSelector": labels(app="db")}],
                "ports": [{"port": 1}, {"port": 2}],
            },
            {"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"port": 3}]},
        ],
    )
    assert allowed([policy], WEB, API, 1)
    assert allowed([policy], DB, API, 2)
    assert allowed([policy], EXT, API, 3)
    assert not allowed([policy], EXT, API, 1)  # rules do not mix peers and ports
    assert not allowed([policy], WEB, API, 3)
    assert not allowed([policy], BANK_WEB, API, 1)


def test_multiple_policies_are_additive() -> None:
    p1 = netpol(
        "from-web", pod_selector=labels(app="api"), ingress=[{"from": [{"podSelector": labels(app="web")}]}]
    )
    p2 = netpol(
        "from-db", pod_selector=labels(tier="back"), ingress=[{"from": [{"podSelector": labels(app="db")}]}]
    )
    assert allowed([p1, p2], WEB, API)
    assert allowed([p1, p2], DB, API)
    assert not allowed([p1], DB, API)
    assert not allowed([p1, p2], BANK_WEB, API)
    verdict = evaluate([p1, p2], conn(DB, API))
    assert "shop/from-web" in verdict.explanation[1] and "shop/from-db" in verdict.explanation[1]
    assert "shop/from-db ingress[0]" in verdict.explanation[1]


def test_deny_all_policy_does_not_subtract_from_allow_policy() -> None:
    allow = netpol(
        "allow", pod_selector=labels(app="api"), ingress=[{"from": [{"podSelector": labels(app="web")}]}]
    )
    assert allowed([DENY_ALL_INGRESS, allow], WEB, API)
    assert not allowed([DENY_ALL_INGRESS, allow], WEB, DB)


# --------------------------------------------------------------------------------------------
# peers


def test_pod_selector_alone_means_policy_namespace() -> None:
    policy = netpol(
        "x", pod_selector=labels(app="db"), ingress=[{"from": [{"podSelector": labels(app="api")}]}]
    )
    assert allowed([policy], API, DB)
    assert not allowed([policy], BANK_API, DB)  # same labels, other namespace


def test_empty_pod_selector_alone_means_all_pods_of_policy_namespace() -> None:
    policy = netpol("x", pod_selector=labels(app="db"), ingress=[{"from": [{"podSelector": {}}]}])
    assert allowed([policy], WEB, DB)
    assert not allowed([policy], BANK_WEB, DB)
    assert not allowed([policy], EXT, DB)


def test_namespace_selector_alone_means_all_pods_in_matching_namespaces() -> None:
    policy = netpol(
        "x", pod_selector=labels(app="db"), ingress=[{"from": [{"namespaceSelector": labels(team="bank")}]}]
    )
    assert allowed([policy], BANK_WEB, DB)
    assert allowed([policy], BANK_API, DB)
    assert not allowed([policy], WEB, DB)  # own namespace does not match team=bank
    assert not allowed([policy], EXT, DB)


def test_empty_namespace_selector_means_all_pods_of_all_namespaces() -> None:
    policy = netpol("x", pod_selector=labels(app="db"), ingress=[{"from": [{"namespaceSelector": {}}]}])
    for src in (WEB, BANK_WEB, DEV_API, NO_IP):
        assert allowed([policy], src, DB)
    assert not allowed([policy], EXT, DB)
    assert not allowed([policy], NODE_B, DB)
    assert not allowed([policy], ApiServer(), DB)


def test_namespace_selector_by_metadata_name_label() -> None:
    policy = netpol(
        "x",
        pod_selector=labels(app="db"),
        ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dev"}}}]}],
    )
    assert allowed([policy], DEV_API, DB)
    assert not allowed([policy], BANK_API, DB)


def test_pod_and_namespace_selector_in_one_peer_are_anded() -> None:
    policy = netpol(
        "x",
        pod_selector=labels(app="db"),
        ingress=[{"from": [{"namespaceSelector": labels(env="prod"), "podSelector": labels(app="api")}]}],
    )
    assert allowed([policy], BANK_API, DB)
    assert allowed([policy], API, DB)
    assert not allowed([policy], BANK_WEB, DB)  # namespace matches, pod does not
    assert not allowed([policy], DEV_API, DB)  # pod matches, namespace does not


def test_pod_and_namespace_selector_in_separate_peers_are_ored() -> None:
    policy = netpol(
        "x",
        pod_selector=labels(app="db"),
        ingress=[{"from": [{"namespaceSelector": labels(team="bank")}, {"podSelector": labels(app="api")}]}],
    )
    assert allowed([policy], BANK_WEB, DB)  # by namespace
    assert allowed([policy], API, DB)  # by pod in policy namespace
    assert not allowed([policy], DEV_API, DB)  # pod selector alone is namespace-local
    assert not allowed([policy], WEB, DB)


def test_null_selector_in_peer_is_absent_not_empty() -> None:
    policy = netpol(
        "x",
        pod_selector=labels(app="db"),
        ingress=[{"from": [{"podSelector": labels(app="api"), "namespaceSelector": None}]}],
    )
    assert allowed([policy], API, DB)
    assert not allowed([policy], BANK_API, DB)  # namespaceSelector null means "policy namespace"


def test_egress_peers_select_destinations() -> None:
    policy = netpol(
        "x",
        pod_selector=labels(app="web"),
        policy_types=["Egress"],
        egress=[{"to": [{"namespaceSelector": labels(team="bank"), "podSelector": labels(app="api")}]}],
    )
    assert allowed([policy], WEB, BANK_API)
    assert not allowed([policy], WEB, BANK_WEB)
    assert not allowed([policy], WEB, API)
    assert allowed([policy], API, WEB)


# --------------------------------------------------------------------------------------------
# label selector operators


@pytest.mark.parametrize(
    ("selector", "selected", "not_selected"),
    [
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "db"]}]}, [WEB, DB], [API]),
        (
            {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web", "db"]}]},
            [API],
            [WEB, DB],
        ),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, [WEB, API], [DB]),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, [DB], [WEB, API]),
        # NotIn matches pods that do not have the key at all
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, [API, DB], [WEB]),
        # In never matches pods without the key
        (
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]},
            [WEB, API],
            [DB],
        ),
        # matchLabels and matchExpressions are ANDed, as are several expressions
        (
            {
                "matchLabels": {"tier": "back"},
                "matchExpressions": [{"key": "app", "operator": "In", "values": ["api", "web"]}],
            },
            [API],
            [WEB, DB],
        ),
        (
            {
                "matchExpressions": [
                    {"key": "tier", "operator": "Exists"},
                    {"key": "app", "operator": "NotIn", "values": ["web"]},
                ]
            },
            [API],
            [WEB, DB],
        ),
        ({"matchLabels": {"app": "web", "tier": "front"}}, [WEB], [API, DB]),
        ({"matchLabels": {"app": "web", "tier": "back"}}, [], [WEB, API, DB]),
    ],
)
def test_label_selector_operators(
    selector: dict[str, Any], selected: list[Pod], not_selected: list[Pod]
) -> None:
    # as a policy podSelector (isolation) ...
    isolating = netpol("x", pod_selector=selector)
    for pod in selected:
        assert not allowed([isolating], EXT, pod), pod
    for pod in not_selected:
        assert allowed([isolating], EXT, pod), pod
    # ... and as a peer podSelector
    peer = netpol("y", pod_selector=labels(app="sink"), ingress=[{"from": [{"podSelector": selector}]}])
    sink = Pod("shop", "sink", {"app": "sink"}, SHOP_NS)
    for pod in selected:
        assert allowed([peer], pod, sink), pod
    for pod in not_selected:
        assert not allowed([peer], pod, sink), pod


def test_namespace_selector_match_expressions() -> None:
    policy = netpol(
        "x",
        pod_selector=labels(app="db"),
        ingress=[
            {
                "from": [
                    {"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}}
                ]
            }
        ],
    )
    assert allowed([policy], DEV_API, DB)
    assert not allowed([policy], BANK_API, DB)


# --------------------------------------------------------------------------------------------
# ipBlock


IP_POLICY = netpol(
    "ip",
    pod_selector=labels(app="web"),
    policy_types=["Ingress", "Egress"],
    ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.2.0/24"]}}]}],
    egress=[
        {
            "to": [
                {"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.7/32"]}},
                {"ipBlock": {"cidr": "192.168.0.0/24"}},
            ]
        }
    ],
)


def test_ip_block_matches_external_addresses_with_except() -> None:
    assert allowed([IP_POLICY], WEB, External(ip("203.0.113.8")))
    assert not allowed([IP_POLICY], WEB, EXT)  # in except
    assert not allowed([IP_POLICY], WEB, EXT_OTHER)  # outside cidr
    assert not allowed([IP_POLICY], WEB, EXT_V6)  # other family


def test_ip_block_matches_pod_ips() -> None:
    assert allowed([IP_POLICY], API, WEB)  # 10.0.1.20 in 10.0.0.0/16
    assert allowed([IP_POLICY], DEV_API, WEB)  # any namespace
    assert not allowed([IP_POLICY], BANK_API, WEB)  # 10.0.2.20 in except
    assert not allowed([IP_POLICY], NO_IP, WEB)  # no IP never matches
    assert not allowed([IP_POLICY], WEB, API)  # egress: 10.0.1.20 not in egress blocks


def test_ip_block_matches_node_ips_but_not_api_server() -> None:
    assert allowed([IP_POLICY], WEB, NODE_B)
    assert not allowed([IP_POLICY], WEB, Node("node-x", ip("172.16.0.1")))
    assert not allowed([IP_POLICY], WEB, Node("node-x"))
    assert not allowed([IP_POLICY], WEB, ApiServer())


def test_ip_block_ipv6() -> None:
    policy = netpol(
        "v6",
        pod_selector=labels(app="web"),
        policy_types=["Egress"],
        egress=[{"to": [{"ipBlock": {"cidr": "2001:db8::/32"}}]}],
    )
    assert allowed([policy], WEB, EXT_V6)
    assert not allowed([policy], WEB, EXT)


def test_ip_block_zero_prefix_with_except_like_internet_egress() -> None:
    policy = netpol(
        "internet",
        pod_selector=labels(app="web"),
        policy_types=["Egress"],
        egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "192.168.0.0/16"]}}]}],
    )
    assert allowed([policy], WEB, EXT)
    assert not allowed([policy], WEB, API)  # pod IP is in an except block
    assert not allowed([policy], WEB, NODE_A)


# --------------------------------------------------------------------------------------------
# ports


def ingress_ports(*ports: dict[str, Any]) -> list[dict[str, Any]]:
    return [netpol("ports", pod_selector={}, policy_types=["Ingress"], ingress=[{"ports": list(ports)}])]


def test_numeric_port_defaults_to_tcp() -> None:
    policies = ingress_ports({"port": 53})
    assert allowed(policies, WEB, API, 53, "TCP")
    assert not allowed(policies, WEB, API, 53, "UDP")
    assert not allowed(policies, WEB, API, 54, "TCP")


def test_empty_port_entry_means_all_tcp_ports() -> None:
    policies = ingress_ports({})
    assert allowed(policies, WEB, API, 1, "TCP")
    assert allowed(policies, WEB, API, 65535, "TCP")
    assert not allowed(policies, WEB, API, 53, "UDP")


@pytest.mark.parametrize("protocol", ["UDP", "SCTP"])
def test_protocol_without_port_means_all_ports_of_that_protocol(protocol: str) -> None:
    policies = ingress_ports({"protocol": protocol})
    assert allowed(policies, WEB, API, 1, protocol)
    assert allowed(policies, WEB, API, 40000, protocol)
    assert not allowed(policies, WEB, API, 40000, "TCP")


def test_protocol_is_compared_case_insensitively_on_the_connection() -> None:
    policies = ingress_ports({"protocol": "UDP", "port": 53})
    assert allowed(policies, WEB, API, 53, "udp")
    assert not allowed(policies, WEB, API, 53, "tcp")


def test_end_port_range_is_inclusive() -> None:
    policies = ingress_ports({"port": 32000, "endPort": 32100})
    assert not allowed(policies, WEB, API, 31999)
    assert allowed(policies, WEB, API, 32000)
    assert allowed(policies, WEB, API, 32050)
    assert allowed(policies, WEB, API, 32100)
    assert not allowed(policies, WEB, API, 32101)
    assert not allowed(policies, WEB, API, 32050, "UDP")


def test_named_port_in_ingress_resolves_on_selected_pod() -> None:
    policies = ingress_ports({"port": "http"})
    assert allowed(policies, DB, WEB, 8080)  # web's http is 8080
    assert not allowed(policies, DB, WEB, 9000)
    assert allowed(policies, DB, API, 9000)  # api's http is 9000
    assert not allowed(policies, DB, API, 8080)
    assert not allowed(policies, WEB, DB, 5432)  # db has no port named http
    assert not allowed(policies, DB, WEB, 8080, "UDP")


def test_named_port_respects_protocol() -> None:
    udp = ingress_ports({"port": "dns", "protocol": "UDP"})
    tcp = ingress_ports({"port": "dns"})
    assert allowed(udp, DB, WEB, 53, "UDP")
    assert not allowed(tcp, DB, WEB, 53, "TCP")  # "dns" is only a UDP port on web
    assert not allowed(tcp, DB, WEB, 53, "UDP")


def test_named_port_in_egress_resolves_on_destination_peer() -> None:
    policy = netpol(
        "out",
        pod_selector=labels(app="web"),
        policy_types=["Egress"],
        egress=[{"ports": [{"port": "http"}]}],
    )
    assert allowed([policy], WEB, API, 9000)  # resolved on api (9000), not on web (8080)
    assert not allowed([policy], WEB, API, 8080)
    assert not allowed([policy], WEB, DB, 5432)
    assert not allowed([policy], WEB, External(ip("203.0.113.9")), 8080)  # never for non-pods
    assert not allowed([policy], WEB, NODE_B, 8080)


def test_ports_combine_with_ip_block_on_external() -> None:
    policy = netpol(
        "out",
        pod_selector=labels(app="web"),
        policy_types=["Egress"],
        egress=[
            {
                "to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
                "ports": [{"port": 443}, {"port": 53, "protocol": "UDP"}],
            }
        ],
    )
    assert allowed([policy], WEB, EXT, 443)
    assert allowed([policy], WEB, EXT, 53, "UDP")
    assert not allowed([policy], WEB, EXT, 53, "TCP")
    assert not allowed([policy], WEB, EXT_OTHER, 443)


def test_non_port_protocol_matches_only_unrestricted_rules() -> None:
    restricted = ingress_ports({"protocol": "TCP"}, {"protocol": "UDP"}, {"protocol": "SCTP"})
    assert not allowed(restricted, DB, WEB, 0, "ICMP")
    assert allowed(restricted, DB, WEB, 7, "SCTP")
    unrestricted = [netpol("any", pod_selector={}, ingress=[{"from": [{"podSelector": labels(app="db")}]}])]
    assert allowed(unrestricted, DB, WEB, 0, "ICMP")
    assert not allowed(unrestricted, API, WEB, 0, "ICMP")
    assert not allowed([DENY_ALL_INGRESS], DB, WEB, 0, "ICMP")  # ICMP is still subject to isolation


# --------------------------------------------------------------------------------------------
# both sides, non-pod endpoints, node exception


def test_both_sides_must_allow() -> None:
    egress_web_to_api = netpol(
        "web-out",
        pod_selector=labels(app="web"),
        policy_types=["Egress"],
        egress=[{"to": [{"podSelector": labels(app="api")}]}],
    )
    ingress_api_from_db = netpol(
        "api-in", pod_selector=labels(app="api"), ingress=[{"from": [{"podSelector": labels(app="db")}]}]
    )
    ingress_api_from_web = netpol(
        "api-in2", pod_selector=labels(app="api"), ingress=[{"from": [{"podSelector": labels(app="web")}]}]
    )
    verdict = evaluate([egress_web_to_api, ingress_api_from_db], conn(WEB, API))
    assert not verdict.allowed  # egress ok, ingress denies
    assert verdict.explanation[-1].endswith("denied by ingress")
    verdict = evaluate([egress_web_to_api, ingress_api_from_web], conn(WEB, API))
    assert verdict.allowed
    verdict = evaluate([DENY_ALL_EGRESS, ingress_api_from_web], conn(WEB, API))
    assert not verdict.allowed  # ingress ok, egress denies
    assert verdict.explanation[-1].endswith("denied by egress")
    verdict = evaluate([DENY_ALL_EGRESS, DENY_ALL_INGRESS], conn(WEB, API))
    assert verdict.explanation[-1].endswith("denied by egress and ingress")


def test_cross_namespace_both_sides() -> None:
    shop_out = netpol(
        "out", policy_types=["Egress"], egress=[{"to": [{"namespaceSelector": labels(team="bank")}]}]
    )
    bank_in = netpol(
        "in",
        namespace="bank",
        ingress=[{"from": [{"namespaceSelector": labels(team="shop"), "podSelector": labels(app="web")}]}],
    )
    assert allowed([shop_out, bank_in], WEB, BANK_API)
    assert not allowed([shop_out, bank_in], API, BANK_API)  # bank ingress only admits shop web
    assert not allowed([shop_out, bank_in], WEB, DEV_API)  # shop egress only reaches bank
    assert not allowed([shop_out, bank_in], DEV_API, BANK_WEB)  # dev is not admitted by bank


def test_non_pod_endpoints_impose_no_policy() -> None:
    policies = [
        DENY_ALL_INGRESS,
        DENY_ALL_EGRESS,
        netpol("bank-deny", namespace="bank", policy_types=["Ingress", "Egress"]),
    ]
    pairs: list[tuple[Endpoint, Endpoint]] = [
        (EXT, EXT_OTHER),
        (NODE_A, EXT),
        (ApiServer(), NODE_B),
        (EXT, ApiServer()),
    ]
    for src, dst in pairs:
        verdict = evaluate(policies, conn(src, dst))
        assert verdict.allowed
        assert "not a pod" in verdict.explanation[0] and "not a pod" in verdict.explanation[1]
    assert not allowed(policies, EXT, WEB)
    assert not allowed(policies, WEB, EXT)
    assert not allowed(policies, ApiServer(), BANK_API)


def test_traffic_from_own_node_is_always_allowed_on_ingress() -> None:
    verdict = evaluate([DENY_ALL_INGRESS], conn(NODE_A, WEB, 8080))
    assert verdict.allowed
    assert "own node" in verdict.explanation[1]
    assert not allowed([DENY_ALL_INGRESS], NODE_B, WEB, 8080)  # other node
    assert allowed([DENY_ALL_INGRESS], NODE_B, API, 8080)  # api runs on node-b
    assert not allowed(
        [DENY_ALL_INGRESS], Node(""), Pod("shop", "unscheduled", {})
    )  # empty names never match


def test_node_exception_does_not_cover_pod_egress() -> None:
    assert not allowed([DENY_ALL_EGRESS], WEB, NODE_A)
    assert not allowed([DENY_ALL_INGRESS], DB, WEB)  # a pod on the same node is not the node


# --------------------------------------------------------------------------------------------
# explanations, engine reuse, validation


def test_explanation_names_policy_and_rule_index() -> None:
    policy = netpol(
        "api-in",
        pod_selector=labels(app="api"),
        ingress=[
            {"from": [{"podSelector": labels(app="db")}]},
            {"from": [{"podSelector": labels(app="web")}]},
        ],
    )
    verdict = evaluate([policy], conn(WEB, API))
    assert verdict.allowed
    egress, ingress, conclusion = verdict.explanation
    assert "egress at shop/web" in egress and "not isolated" in egress
    assert "ingress at shop/api" in ingress
    assert "isolated by shop/api-in" in ingress
    assert "allowed by shop/api-in ingress[1]" in ingress
    assert "ingress[0]" not in ingress
    assert conclusion == "shop/web -> shop/api tcp/80: allowed"
    denied = evaluate([policy], conn(BANK_WEB, API))
    assert "no ingress rule allows" in denied.explanation[1]


def test_engine_is_reusable_and_agrees_with_evaluate() -> None:
    policies = [
        IP_POLICY,
        netpol(
            "api-in", pod_selector=labels(app="api"), ingress=[{"from": [{"podSelector": labels(app="web")}]}]
        ),
        netpol("bank", namespace="bank", policy_types=["Egress"]),
    ]
    engine = KubernetesEngine(policies)
    endpoints: list[Endpoint] = [WEB, API, DB, BANK_API, NO_IP, EXT, EXT_V6, NODE_A, ApiServer()]
    seen = set()
    for src in endpoints:
        for dst in endpoints:
            c = conn(src, dst, 9000)
            verdict = engine.evaluate(c)
            assert verdict == evaluate(policies, c)
            seen.add(verdict.allowed)
    assert seen == {True, False}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, "ConfigMap"),
        (
            {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "x"}},
            "CiliumNetworkPolicy",
        ),
        (
            {"apiVersion": "networking.k8s.io/v1beta1", "kind": "NetworkPolicy", "metadata": {"name": "x"}},
            "v1beta1",
        ),
        (
            {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy", "metadata": {"name": "x"}},
            "projectcalico.org/v3",
        ),
    ],
)
def test_rejects_other_documents(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KubernetesEngine([netpol("fine"), document])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}},
            "operator",
        ),
        ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}}, "non-empty"),
        (
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]}},
            "must not",
        ),
        ({"podSelector": {}, "ingress": [{"from": [{}]}]}, "peer must set"),
        (
            {
                "podSelector": {},
                "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}],
            },
            "ipBlock",
        ),
        ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}]}, "CIDR"),
        ({"podSelector": {}, "ingress": [{"ports": [{"port": "http", "endPort": 90}]}]}, "endPort"),
        ({"podSelector": {}, "ingress": [{"ports": [{"port": 100, "endPort": 90}]}]}, "endPort"),
        ({"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP"}]}]}, "protocol"),
        ({"podSelector": {}, "ingress": [{"ports": [{"port": 70000}]}]}, "range"),
        ({"podSelector": {}, "policyTypes": ["Inbound"]}, "policyType"),
    ],
)
def test_rejects_invalid_network_policies(spec: dict[str, Any], message: str) -> None:
    document = netpol("bad")
    document["spec"] = spec
    with pytest.raises(ValueError, match=message):
        KubernetesEngine([document])

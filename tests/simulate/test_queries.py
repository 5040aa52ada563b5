"""Every query form of docs/simulate.md, answered by the kubernetes engine, and malformed queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from netpol_dsl.inventory import InputError, load_inventory
from netpol_dsl.simulate import Result, load_manifests, load_queries, make_engine, parse_queries, run_queries
from tests.simulate.helpers import INVENTORY, POLICIES, write


def answer(folder: Path, queries: str, inventory: str = INVENTORY, policies: str = "policies") -> list[Result]:
    write(folder, "q.yaml", queries)
    write(folder, "inv2.yaml", inventory)
    inv = load_inventory([folder / "inv2.yaml"])
    engine = make_engine("kubernetes", load_manifests([folder / policies]), inv)
    return list(run_queries(engine, load_queries(folder / "q.yaml", inv)))


def verdicts(results: list[Result]) -> list[str]:
    return [r.verdict for r in results]


def test_pod_to_pod_named_port_resolves_on_the_destination(shop: Path) -> None:
    results = answer(shop, """\
        queries:
          - {from: shop/web-1, to: shop/api-1, port: 9000, protocol: TCP}
          - {from: shop/web-1, to: shop/api-1, port: 8080, protocol: TCP}
          - {from: shop/api-1, to: shop/web-1, port: 8080, protocol: TCP}
          - {from: bank/api-1, to: bank/api-1, port: 1, protocol: SCTP}
        """)
    assert verdicts(results) == ["allow", "drop", "drop", "allow"]
    assert results[0].explanation == (
        "egress at shop/web-1: isolated by shop/default-deny, shop/dns, shop/web; allowed by shop/web egress[0]",
        "ingress at shop/api-1: isolated by shop/default-deny, shop/api; allowed by shop/api ingress[0]",
        "shop/web-1 -> shop/api-1 tcp/9000: allowed",
    )
    assert results[3].explanation[0] == "loopback: bank/api-1 talks to itself; NetworkPolicy never applies"


def test_name_with_dns_lookup(shop: Path) -> None:
    results = answer(shop, """\
        queries:
          - {from: shop/web-1, to: {name: payments.example.com}, port: 443, protocol: TCP, dns_lookup: true}
          - {from: shop/web-1, to: {name: payments.example.com}, port: 443, protocol: TCP}
          - {from: shop/web-1, to: {name: payments.example.com}, port: 80, protocol: TCP, dns_lookup: true}
        """)
    assert verdicts(results) == ["allow", "allow", "drop"]
    assert results[0].explanation[0] == ("dns: lookup of payments.example.com allowed: "
                                         "shop/web-1 -> kube-system/coredns-1 udp/53 is allowed")
    assert results[0].explanation[-1] == "shop/web-1 -> payments.example.com tcp/443: allowed"
    assert not any(line.startswith("dns") for line in results[1].explanation)


def test_dns_lookup_denied_or_without_dns_pod_drops(shop: Path) -> None:
    write(shop, "deny/only.yaml", POLICIES.split("---")[0])  # the default deny alone
    results = answer(shop, """\
        queries:
          - {from: shop/web-1, to: {name: payments.example.com}, port: 443, protocol: TCP, dns_lookup: true}
        """, policies="deny")
    assert verdicts(results) == ["drop"]
    assert results[0].explanation == (
        "dns: lookup of payments.example.com fails: shop/web-1 may reach no cluster DNS pod on udp/53 or tcp/53",
        "dns: shop/web-1 -> kube-system/coredns-1 udp/53: denied by egress",
        "dns: shop/web-1 -> kube-system/coredns-1 tcp/53: denied by egress",
        "the connection is never attempted",
    )
    no_dns = INVENTORY.replace("k8s-app: kube-dns", "k8s-app: other")
    results = answer(shop, """\
        queries:
          - {from: bank/api-1, to: {name: payments.example.com}, port: 443, protocol: TCP, dns_lookup: true}
        """, inventory=no_dns)
    assert verdicts(results) == ["drop"]
    assert results[0].explanation == (
        "dns: the inventory has no cluster DNS pod (kube-system, k8s-app=kube-dns); "
        "the lookup of payments.example.com fails",
        "the connection is never attempted",
    )


def test_ip_destination_and_ip_source(shop: Path) -> None:
    results = answer(shop, """\
        queries:
          - {from: shop/web-1, to: {ip: 198.51.100.1}, port: 443, protocol: TCP}
          - {from: shop/web-1, to: {ip: 203.0.113.99}, port: 443, protocol: TCP}
          - {from: {ip: 198.51.100.1}, to: shop/web-1, port: 8080, protocol: TCP, src_port: 40000}
          - {from: {ip: 198.51.100.1}, to: bank/api-1, port: 8080, protocol: TCP, src_port: 40000}
          - {from: {ip: 10.0.1.5}, to: shop/api-1, port: 9000, protocol: TCP}
        """)
    assert verdicts(results) == ["drop", "allow", "drop", "allow", "allow"]
    assert results[2].explanation == (
        "egress: source 198.51.100.1 is not a pod; no policy applies",
        "ingress at shop/web-1: isolated by shop/default-deny; no ingress rule allows "
        "198.51.100.1 -> shop/web-1 tcp/8080",
        "198.51.100.1 -> shop/web-1 tcp/8080: denied by ingress",
    )
    assert results[4].explanation[0].startswith("egress at shop/web-1:")  # an IP of a pod is that pod


def test_icmp_matches_only_rules_without_ports(shop: Path) -> None:
    results = answer(shop, """\
        queries:
          - {from: shop/web-1, to: shop/api-1, protocol: ICMP}
          - {from: bank/api-1, to: {ip: 198.51.100.1}, protocol: icmp, icmp: {type: 0, code: 0}}
        """)
    assert verdicts(results) == ["drop", "allow"]
    assert results[0].explanation[-2:] == (
        "ICMP type 8 code 0: NetworkPolicy has no ICMP match; only rules without ports allow it",
        "shop/web-1 -> shop/api-1 icmp: denied by egress and ingress",
    )
    assert results[1].query.icmp == (0, 0)


def test_http_is_opaque_for_network_policy(shop: Path) -> None:
    results = answer(shop, """\
        queries:
          - {from: shop/web-1, to: shop/api-1, port: 9000, protocol: TCP,
             http: {method: GET, path: /api/v1, headers: {X-Token: '42'}}}
          - {from: shop/web-1, to: shop/api-1, port: 9001, protocol: TCP, http: {method: DELETE}}
        """)
    assert verdicts(results) == ["allow", "drop"]  # never l7-deny
    assert ("http: NetworkPolicy cannot see HTTP; the request is opaque bytes, allowed iff the connection is"
            in results[0].explanation)
    assert results[0].query.given["http"] == {"method": "GET", "path": "/api/v1", "headers": {"X-Token": "42"}}


def test_nodes_and_names_with_several_addresses(shop: Path) -> None:
    inventory = INVENTORY.replace("ips: [203.0.113.7]", "ips: [203.0.113.7, 198.51.100.7]")
    results = answer(shop, """\
        queries:
          - {from: {node: node-1}, to: shop/api-1, port: 1, protocol: TCP}
          - {from: {ip: 192.168.0.2}, to: shop/api-1, port: 1, protocol: TCP}
          - {from: shop/web-1, to: {name: payments.example.com}, port: 443, protocol: TCP}
        """, inventory=inventory)
    assert verdicts(results) == ["allow", "drop", "drop"]
    assert "traffic from the pod's own node node/node-1 is always allowed" in results[0].explanation[1]
    assert results[2].explanation[0] == "shop/web-1 -> payments.example.com tcp/443: allow"
    assert "shop/web-1 -> payments.example.com tcp/443: drop" in results[2].explanation


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("{from: shop/nope, to: shop/api-1, port: 80}",
         "q.yaml: document 1: queries[0].from: no pod 'shop/nope' in the inventory (write namespace/name)"),
        ("{from: shop/web-1, to: {name: unknown.example.com}, port: 80}",
         "q.yaml: document 1: queries[0].to: the name 'unknown.example.com' is not in the inventory's "
         "external entries"),
        ("{from: shop/web-1, to: {ip: 1.2.3}, port: 80}",
         "q.yaml: document 1: queries[0].to.ip: invalid IP address '1.2.3'"),
        ("{from: shop/web-1, to: {host: x}, port: 80}",
         "q.yaml: document 1: queries[0].to: expected 'namespace/pod', {ip: ADDRESS}, {name: DNS_NAME} or "
         "{node: NODE}, got {'host': 'x'}"),
        ("{from: shop/web-1, to: shop/api-1, protocol: TCP}",
         "q.yaml: document 1: queries[0]: missing 'port' (required for TCP)"),
        ("{from: shop/web-1, to: shop/api-1, port: 70000}",
         "q.yaml: document 1: queries[0].port: expected a port number 1-65535, got 70000"),
        ("{from: shop/web-1, to: shop/api-1, protocol: ICMP, port: 1}",
         "q.yaml: document 1: queries[0]: ICMP has no port (use icmp: {type: T, code: C})"),
        ("{from: shop/web-1, to: shop/api-1, protocol: GRE}",
         "q.yaml: document 1: queries[0].protocol: expected TCP, UDP, SCTP, ICMP or ICMPv6, got 'GRE'"),
        ("{from: shop/web-1, to: shop/api-1, port: 53, protocol: UDP, http: {}}",
         "q.yaml: document 1: queries[0].http: HTTP needs protocol TCP"),
        ("{from: shop/web-1, to: shop/api-1, port: 80, http: {headers: {X-Token: 42}}}",
         "q.yaml: document 1: queries[0].http.headers: expected a mapping of header names to strings (quote numbers)"),
        ("{from: shop/web-1, to: shop/api-1, port: 80, dns: true}",
         "q.yaml: document 1: queries[0]: unknown fields ['dns'] (known: dns_lookup, from, http, icmp, port, "
         "protocol, src_port, to)"),
        ("{from: shop/web-1, port: 80}", "q.yaml: document 1: queries[0]: missing 'to'"),
    ],
)
def test_malformed_queries(shop: Path, query: str, problem: str) -> None:
    inv = load_inventory(["inv.yaml"])
    write(shop, "q.yaml", f"queries:\n  - {query}\n")
    with pytest.raises(InputError) as info:
        load_queries("q.yaml", inv)
    assert info.value.problems == (problem,)


def test_every_problem_is_reported_at_once(shop: Path) -> None:
    inv = load_inventory(["inv.yaml"])
    documents = [("q.yaml: document 1", {"queries": [{"from": "a/b"}, {"to": "c/d"}]}),
                 ("q.yaml: document 2", [])]
    with pytest.raises(InputError) as info:
        parse_queries(documents, inv)
    assert info.value.problems == (
        "q.yaml: document 1: queries[0]: missing 'to'",
        "q.yaml: document 1: queries[1]: missing 'from'",
        "q.yaml: document 2: expected a mapping with one key, queries: [...]",
    )

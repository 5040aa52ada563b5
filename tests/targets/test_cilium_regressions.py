"""Regressions of the cilium target, each reduced to the smallest policy that showed it."""

from __future__ import annotations

import netpol_dsl as n
from netpol_dsl.compiler import compile_policy
from netpol_dsl.endpoints import Connection, Node, Pod
from netpol_dsl.engines import CiliumEngine

NS1 = n.namespace("ns1")
NS2 = n.namespace("ns2")


def _engine(policy: n.Policy) -> CiliumEngine:
    return CiliumEngine([m.body for m in compile_policy(policy, "cilium").manifests])


def test_an_allow_carved_away_by_a_pass_keeps_its_subject_default_deny() -> None:
    """Found by the property test: the allow vanished, and with it Cilium's default deny (wider)."""
    policy = n.Policy("p", rules=[
        n.allow(NS1 >> NS1, tier="security"),
        n.pass_(NS1 >> NS1, tier="security"),
    ])
    engine = _engine(policy)
    outsider = Pod("ns2", "x", namespace_labels={"kubernetes.io/metadata.name": "ns2"})
    inside = Pod("ns1", "y", namespace_labels={"kubernetes.io/metadata.name": "ns1"})
    assert not engine.evaluate(Connection(outsider, inside, "TCP", 80)).allowed


def test_an_ingress_deny_of_anything_spares_the_pods_own_node() -> None:
    quarantined = NS1.pods(quarantine="true")
    engine = _engine(n.Policy("p", rules=[n.deny(n.anything() >> quarantined)]))
    pod = Pod("ns1", "q", {"quarantine": "true"}, {"kubernetes.io/metadata.name": "ns1"}, node="node-1")
    other = Pod("ns2", "o", {}, {"kubernetes.io/metadata.name": "ns2"}, node="node-2")
    assert engine.evaluate(Connection(Node("node-1"), pod, "TCP", 8080)).allowed  # kubelet probe
    assert not engine.evaluate(Connection(Node("node-2"), pod, "TCP", 8080)).allowed
    assert not engine.evaluate(Connection(other, pod, "TCP", 8080)).allowed


def _dns_rules(policy: n.Policy) -> list[object]:
    [m] = [m for m in compile_policy(policy, "cilium").manifests if m.name.startswith("fqdn-dns")]
    return [p["rules"] for rule in m.body["spec"]["egress"] for p in rule["toPorts"]]


def test_fqdn_flows_bring_dns_rules_for_exactly_their_names_unless_opted_in() -> None:
    demo = NS1.pods(app="demo")
    rules = [n.allow(demo >> n.fqdn("a.example.com"), n.tcp(443)),
             n.allow(demo >> n.fqdn_pattern("*.example.org"), n.tcp(443))]
    exact = n.Policy("p", owns=[NS1], baseline=n.baseline(default_deny="egress", dns=None), rules=rules)
    assert _dns_rules(exact) == [{"dns": [{"matchPattern": "*.example.org"}, {"matchName": "a.example.com"}]}]
    everything = n.Policy("p", owns=[NS1], baseline=n.baseline(default_deny="egress",
                                                                   dns=n.dns(proxy_all_names=True)), rules=rules)
    assert _dns_rules(everything) == [{"dns": [{"matchPattern": "*"}]}]

"""Regressions of the cilium target, each reduced to the smallest policy that showed it."""

from __future__ import annotations

import textwrap

import netpol_dsl as n
from netpol_dsl.compiler import compile_policy
from netpol_dsl.endpoints import Connection, Node, Pod
from netpol_dsl.engines import CiliumEngine
from netpol_dsl.ir.intent import decide
from netpol_dsl.ir.lower import lower
from netpol_dsl.render.yaml import dump
from netpol_dsl.synth import connections, representative_endpoints

NS1 = n.namespace("ns1")
NS2 = n.namespace("ns2")
SHOP = n.namespace("shop")


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


# ---- service accounts: the pseudo-label becomes Cilium's identity label ------------------------


def _specs(policy: n.Policy) -> dict[str, str]:
    """``kind/name`` -> the object's spec as YAML, after checking the output against the intent."""
    program = lower(policy)
    manifests = compile_policy(policy, "cilium").manifests
    engine = CiliumEngine([m.body for m in manifests])
    conns = connections(representative_endpoints(program), program)
    wrong = [c.describe() for c in conns if engine.evaluate(c).allowed != decide(program, c).allowed]
    assert not wrong, wrong[:10]
    return {f"{m.kind}/{m.name}": dump(m.body["spec"]) for m in manifests}


def _yaml(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")



def test_service_account_subject_and_peer_in_a_cnp() -> None:
    web = n.service_account("shop", "web")
    api = SHOP.pods(app="api").service_account("api")
    specs = _specs(n.Policy("p", owns=[SHOP], baseline=n.baseline(), rules=[n.allow(web >> api, n.tcp(8080))]))
    assert specs["CiliumNetworkPolicy/api-api"] == _yaml("""
        endpointSelector:
          matchLabels:
            app: api
            io.cilium.k8s.policy.serviceaccount: api
        ingress:
          - fromEndpoints:
              - matchLabels:
                  io.cilium.k8s.policy.serviceaccount: web
                  k8s:io.kubernetes.pod.namespace: shop
            toPorts:
              - ports:
                  - port: "8080"
                    protocol: TCP
        """)
    assert specs["CiliumNetworkPolicy/web"].startswith(_yaml("""
        endpointSelector:
          matchLabels:
            io.cilium.k8s.policy.serviceaccount: web
        egress:
          - toEndpoints:
              - matchLabels:
                  app: api
                  io.cilium.k8s.policy.serviceaccount: api
                  k8s:io.kubernetes.pod.namespace: shop
        """))


def test_service_account_in_namespaces_chosen_by_label_is_a_ccnp() -> None:
    monitoring = n.namespaces(team="obs").service_account("prometheus")
    specs = _specs(n.Policy("p", rules=[n.allow(monitoring >> SHOP, n.tcp(9090))]))
    assert specs["CiliumClusterwideNetworkPolicy/p-obs-prometheus"].startswith(_yaml("""
        endpointSelector:
          matchLabels:
            io.cilium.k8s.namespace.labels.team: obs
            io.cilium.k8s.policy.serviceaccount: prometheus
        egress:
          - toEndpoints:
              - matchLabels:
                  k8s:io.kubernetes.pod.namespace: shop
        """))
    assert "io.cilium.k8s.policy.serviceaccount: prometheus" in specs["CiliumClusterwideNetworkPolicy/p-shop-all-pods"]


def test_carving_by_service_account_is_notin_on_the_identity_label() -> None:
    api = SHOP.pods(app="api")
    specs = _specs(n.Policy("p", rules=[
        n.allow(n.service_account("shop", "ops") >> api, n.tcp(22), tier="security", direction="ingress"),
        n.deny(SHOP >> api, n.tcp(22), tier="application", direction="ingress"),
    ]))
    assert _yaml("""
        ingressDeny:
          - fromEndpoints:
              - matchLabels:
                  k8s:io.kubernetes.pod.namespace: shop
                matchExpressions:
                  - key: io.cilium.k8s.policy.serviceaccount
                    operator: NotIn
                    values:
                      - ops
        """) in specs["CiliumNetworkPolicy/api-deny"]


def test_a_pod_with_the_labels_but_another_account_is_not_selected() -> None:
    web = SHOP.pods(app="web").service_account("web")
    engine = _engine(n.Policy("p", owns=[SHOP], baseline=n.baseline(dns=None),
                              rules=[n.allow(web >> SHOP.pods(app="db"), n.tcp(5432))]))
    ns = {"kubernetes.io/metadata.name": "shop"}
    db = Pod("shop", "db", {"app": "db"}, ns)
    assert engine.evaluate(Connection(Pod("shop", "w", {"app": "web"}, ns, service_account="web"),
                                      db, "TCP", 5432)).allowed
    assert not engine.evaluate(Connection(Pod("shop", "w2", {"app": "web"}, ns), db, "TCP", 5432)).allowed

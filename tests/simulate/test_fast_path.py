"""The identity-based all-pairs matrix agrees with naive per-pair KubernetesEngine.evaluate.

Seeded random inventories and policies exercise what makes pods with equal labels differ: ipBlocks
(with except) matching some pod IPs and not others, named ports resolving to different numbers on
different pods, namespace label selectors, matchExpressions of every operator, pods without IPs,
partial source and destination lists, and protocols without ports.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from netpol_dsl.endpoints import Connection, ContainerPort, Pod
from netpol_dsl.engines import KubernetesEngine
from tests.simulate.helpers import netpol

POD_KEYS = {"app": ["web", "api", "db"], "tier": ["x", "y"]}
LABEL_SETS: list[dict[str, str]] = [{"app": "web"}, {"app": "api", "tier": "x"}, {"app": "db", "tier": "y"},
                                    {"tier": "x"}, {}]
NS_KEYS = {"team": ["a", "b"], "env": ["prod", "dev"], "kubernetes.io/metadata.name": ["n0", "n1", "n2"]}
# pod IPs are 10.0.<namespace>.1-20 (half of namespace n2: IPv6): most blocks split a namespace's pods
BLOCKS = [
    {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24", "10.0.2.8/29"]},
    {"cidr": "10.0.2.0/24"},
    {"cidr": "10.0.0.8/29"},
    {"cidr": "10.0.1.0/28"},
    {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/28"]},
    {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]},
    {"cidr": "2001:db8::/124", "except": ["2001:db8::8/126"]},
]
PORTS: list[list[dict[str, Any]]] = [
    [], [{"port": 80}], [{"port": "http"}], [{"protocol": "UDP"}], [{"port": 8000, "endPort": 9000}],
    [{"protocol": "TCP", "port": "metrics"}, {"protocol": "UDP", "port": "http"}], [{"protocol": "SCTP", "port": 80}],
]
PROBES = [("TCP", 80), ("TCP", 8080), ("UDP", 80), ("TCP", 9090), ("SCTP", 80), ("ICMP", 0)]


def _selector(rnd: random.Random, keys: dict[str, list[str]]) -> dict[str, Any]:
    roll = rnd.random()
    if roll < 0.25:
        return {}
    key = rnd.choice(sorted(keys))
    if roll < 0.6:
        return {"matchLabels": {key: rnd.choice(keys[key])}}
    op = rnd.choice(["In", "NotIn", "Exists", "DoesNotExist"])
    expr: dict[str, Any] = {"key": key, "operator": op}
    if op in ("In", "NotIn"):
        expr["values"] = rnd.sample(keys[key], rnd.randint(1, len(keys[key])))
    return {"matchExpressions": [expr]}


def _pods(rnd: random.Random) -> list[Pod]:
    pods = []
    for n in range(rnd.randint(1, 3)):
        ns_labels = {k: rnd.choice(v) for k, v in NS_KEYS.items() if "/" not in k and rnd.random() < 0.7}
        for i in range(rnd.randint(1, 6)):
            labels = rnd.choice(LABEL_SETS)  # few sets: many pods share labels (one identity)
            ip = None if rnd.random() < 0.1 else ipaddress.ip_address(f"10.0.{n}.{rnd.randint(1, 20)}")
            if n == 2 and rnd.random() < 0.5:
                ip = ipaddress.ip_address(f"2001:db8::{rnd.randint(1, 20):x}")
            ports = []
            if rnd.random() < 0.7:
                ports.append(ContainerPort(rnd.choice([80, 8080, 9090]), rnd.choice(["TCP", "UDP"]), "http"))
            if rnd.random() < 0.4:
                ports.append(ContainerPort(rnd.choice([80, 9090]), "TCP", "metrics"))
            pods.append(Pod(f"n{n}", f"p{i}", labels, ns_labels, ip=ip, ports=tuple(ports)))
    return pods


def _peer(rnd: random.Random) -> dict[str, Any]:
    roll = rnd.random()
    if roll < 0.35:
        return {"podSelector": _selector(rnd, POD_KEYS)}
    if roll < 0.55:
        return {"namespaceSelector": _selector(rnd, NS_KEYS)}
    if roll < 0.8:
        return {"namespaceSelector": _selector(rnd, NS_KEYS), "podSelector": _selector(rnd, POD_KEYS)}
    return {"ipBlock": rnd.choice(BLOCKS)}


def _rules(rnd: random.Random, field: str) -> list[dict[str, Any]]:
    rules = []
    for _ in range(rnd.randint(0, 2)):
        rule: dict[str, Any] = {}
        if rnd.random() < 0.8:
            rule[field] = [_peer(rnd) for _ in range(rnd.randint(1, 2))]
        ports = rnd.choice(PORTS)
        if ports:
            rule["ports"] = ports
        rules.append(rule)
    return rules


def _policies(rnd: random.Random) -> list[dict[str, Any]]:
    out = []
    for k in range(rnd.randint(0, 6)):
        spec: dict[str, Any] = {"podSelector": _selector(rnd, POD_KEYS)}
        types = rnd.choice([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]])
        if types is not None:
            spec["policyTypes"] = types
        if rnd.random() < 0.8:
            spec["ingress"] = _rules(rnd, "from")
        if rnd.random() < 0.6:
            spec["egress"] = _rules(rnd, "to")
        out.append(netpol(f"p{k}", f"n{rnd.randint(0, 2)}", spec))
    return out


def _naive(engine: KubernetesEngine, sources: list[Pod], destinations: list[Pod], protocol: str,
           port: int) -> list[int]:
    rows = []
    for src in sources:
        row = 0
        for j, dst in enumerate(destinations):
            if engine.evaluate(Connection(src, dst, protocol, port)).allowed:
                row |= 1 << j
        rows.append(row)
    return rows


def test_identity_matrix_equals_naive_evaluation_on_random_clusters() -> None:
    seen = {"allow": 0, "drop": 0, "ip_block_splits_identity": 0, "named_port_differs": 0}
    for seed in range(300):
        rnd = random.Random(seed)
        pods = _pods(rnd)
        policies = _policies(rnd)
        engine = KubernetesEngine(policies)
        sources = pods if rnd.random() < 0.7 else rnd.sample(pods, rnd.randint(1, len(pods)))
        destinations = pods if rnd.random() < 0.7 else rnd.sample(pods, rnd.randint(1, len(pods)))
        for protocol, port in PROBES:
            want = _naive(engine, sources, destinations, protocol, port)
            got = engine.reachability(sources, destinations, protocol, port)
            assert got == want, f"seed {seed}, {protocol}/{port}"
            cells = len(sources) * len(destinations)
            allowed = sum(row.bit_count() for row in got)
            seen["allow"] += allowed
            seen["drop"] += cells - allowed
        rules = [r for p in policies for r in p["spec"].get("ingress", []) + p["spec"].get("egress", [])]
        blocks = [ipaddress.ip_network(b["cidr"])
                  for r in rules for peer in r.get("from", r.get("to", [])) if (b := peer.get("ipBlock"))]
        same_labels: dict[tuple[Any, ...], set[tuple[bool, ...]]] = {}
        for pod in pods:
            key = (pod.namespace, pod.labels)
            same_labels.setdefault(key, set()).add(tuple(pod.ip is not None and pod.ip in b for b in blocks))
        seen["ip_block_splits_identity"] += sum(len(v) > 1 for v in same_labels.values())
        http = {pod.named_ports("TCP").get("http") for pod in pods} - {None}
        seen["named_port_differs"] += len(http) > 1
    # the comparison is not vacuous: every distinction actually occurred
    assert all(count > 20 for count in seen.values()), seen


def test_pods_with_equal_labels_differ_by_ip_block_membership_and_named_ports() -> None:
    ns = {"team": "a"}
    inside = Pod("n", "inside", {"app": "x"}, ns, ip=ipaddress.ip_address("10.1.0.1"),
                 ports=(ContainerPort(80, "TCP", "http"),))
    excepted = Pod("n", "excepted", {"app": "x"}, ns, ip=ipaddress.ip_address("10.1.2.1"),
                   ports=(ContainerPort(80, "TCP", "http"),))
    other_port = Pod("n", "other-port", {"app": "x"}, ns, ip=ipaddress.ip_address("10.1.0.2"),
                     ports=(ContainerPort(8080, "TCP", "http"),))
    client = Pod("m", "client", {"app": "c"}, {"team": "b"}, ip=ipaddress.ip_address("10.9.0.1"))
    policies = [
        netpol("in", "n", {"podSelector": {"matchLabels": {"app": "x"}},
                           "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}],
                                        "ports": [{"port": "http"}]}]}),
        netpol("out", "m", {"podSelector": {}, "policyTypes": ["Egress"],
                            "egress": [{"to": [{"ipBlock": {"cidr": "10.1.0.0/16", "except": ["10.1.2.0/24"]}}]}]}),
    ]
    engine = KubernetesEngine(policies)
    pods = [inside, excepted, other_port, client]
    # bit 3: the client itself (loopback)
    assert engine.reachability([client], pods, "TCP", 80) == [0b1001]
    assert engine.reachability([client], pods, "TCP", 8080) == [0b1100]
    assert engine.reachability(pods, pods, "TCP", 80) == _naive(engine, pods, pods, "TCP", 80)


def test_a_pod_may_always_talk_to_itself() -> None:
    pod = Pod("n", "p", {"app": "x"}, ip=ipaddress.ip_address("10.0.0.1"))
    twin = Pod("n", "q", {"app": "x"}, ip=ipaddress.ip_address("10.0.0.2"))
    deny = [netpol("deny", "n", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})]
    engine = KubernetesEngine(deny)
    assert engine.reachability([pod, twin], [pod, twin], "TCP", 80) == [0b01, 0b10]
    verdict = engine.evaluate(Connection(pod, pod, "TCP", 80))
    assert verdict.allowed and "loopback" in verdict.explanation[0]
    assert not engine.evaluate(Connection(pod, twin, "TCP", 80)).allowed

"""Hypothesis strategies for the model (like attrs' tests/strategies.py): zones, rules, policies, and a
small exhaustive universe of pods and external hosts to evaluate them on."""

from __future__ import annotations

import ipaddress
import itertools

from hypothesis import strategies as st

import netpol_dsl as n
from netpol_dsl.endpoints import Connection, ContainerPort, External, HttpRequest, Pod
from netpol_dsl.ir.selectors import Constraint, Selector, Shape

OWNED = ("ns1", "ns2")
NAMESPACE_LABELS = {"ns1": {"team": "x"}, "ns2": {}, "other": {"team": "x"}, "kube-system": {}}
POD_LABELS = [{}, {"app": "a"}, {"app": "b"}, {"q": "true"}, {"app": "a", "q": "true"}, {"app": "b", "q": "true"}]
EXTERNAL_IPS = ("203.0.113.5", "203.0.113.200", "198.51.100.7", "169.254.169.254")
EXTERNAL_NAMES = {"203.0.113.5": ("api.example.com",), "198.51.100.7": ("www.example.org",)}
# pods alternate between two service accounts, so an account selects part of every label combination
SERVICE_ACCOUNTS = ("default", "sa1")
PORTS = (("TCP", 80), ("TCP", 443), ("TCP", 8080), ("UDP", 53), ("TCP", 53), ("SCTP", 80))
# ICMP probes carry the type in the port: echo reply and request, ICMPv6 echo request and reply
ICMP_PORTS = (("ICMP", 0), ("ICMP", 8), ("ICMPv6", 128), ("ICMPv6", 129))
POD_CIDR = "10.244.0.0/16"


def universe() -> tuple[list[Pod], list[External]]:
    """Every label combination in every namespace, plus a few external addresses and the DNS pod.
    Service accounts alternate (by namespace and labels), which costs no extra pods."""
    pods = []
    ips = ipaddress.ip_network(POD_CIDR).hosts()
    for (i, ns), (j, labels) in itertools.product(enumerate(("ns1", "ns2", "other")), enumerate(POD_LABELS)):
        name = "-".join(f"{k}{v}" for k, v in sorted(labels.items())) or "plain"
        pods.append(Pod(ns, name, labels, NAMESPACE_LABELS[ns], next(ips),
                        (ContainerPort(8080, "TCP", "http"), ContainerPort(80, "TCP", "web")),
                        service_account=SERVICE_ACCOUNTS[(i + j) % 2]))
    pods.append(Pod("kube-system", "coredns", {"k8s-app": "kube-dns"}, {}, next(ips)))
    externals = [External(ipaddress.ip_address(ip), EXTERNAL_NAMES.get(ip, ())) for ip in EXTERNAL_IPS]
    return pods, externals


REQUESTS = (HttpRequest("GET", "/api"), HttpRequest("POST", "/api"), HttpRequest("GET", "/api/v2"))


def connections(with_http: bool = False, icmp: bool = False) -> list[Connection]:
    """Every ordered pair (not external to external) on every probed port; with_http adds, for TCP 80
    and 8080, the same connection carrying each of a few HTTP requests; icmp adds a few ICMP types."""
    pods, externals = universe()
    probes = (*PORTS, *ICMP_PORTS) if icmp else PORTS
    out = []
    for src in [*pods, *externals]:
        for dst in [*pods, *externals]:
            if src is dst or (isinstance(src, External) and isinstance(dst, External)):
                continue
            out += [Connection(src, dst, proto, port) for proto, port in probes]
            if with_http:
                out += [Connection(src, dst, "TCP", port, req) for port in (80, 8080) for req in REQUESTS]
    return out


label_expr = st.sampled_from([
    n.label("app").equals("a"), n.label("app").in_("a", "b"), n.label("app").not_in("a"),
    n.label("app").exists(), n.label("app").absent(), n.label("q").equals("true"), n.label("q").absent(),
])
selector_exprs = st.lists(label_expr, max_size=2)


# now and then a zone is narrowed to a service account (kubernetes refuses those: NPD211)
service_accounts = st.sampled_from([*[None] * 10, "sa1", "default"])


@st.composite
def pod_zones(draw: st.DrawFn) -> n.Zone:
    exprs = draw(selector_exprs)
    kind = draw(st.sampled_from(["ns", "ns", "ns", "ns-labels", "namespace"]))
    account = draw(service_accounts)
    try:
        if kind == "namespace":
            ns = n.namespace(draw(st.sampled_from(OWNED)))
            return ns if account is None else ns.service_account(account)
        if kind == "ns-labels":
            zone = n.namespaces(team="x").pods(*exprs)
        else:
            zone = n.namespace(draw(st.sampled_from(OWNED))).pods(*exprs)
        return zone if account is None else zone.service_account(account)
    except n.PolicyError:  # contradictory requirements select nothing
        return n.namespace(draw(st.sampled_from(OWNED))).pods()


external_zones = st.sampled_from([
    n.cidr("203.0.113.0/24"), n.cidr("203.0.113.0/24", except_=["203.0.113.128/25"]), n.cidr("198.51.100.0/24"),
    n.world(), n.anything(),
])
fqdn_zones = st.sampled_from([n.fqdn("api.example.com"), n.fqdn_pattern("*.example.com"),
                              n.fqdn_pattern("*.example.org"), n.fqdn("nothing.example.net")])
zones = st.one_of(pod_zones(), pod_zones(), external_zones)
l7_zones = st.one_of(pod_zones(), pod_zones(), external_zones, fqdn_zones)
http_rules = st.sampled_from([
    (), (), (n.get("/api"),), (n.http("POST", "/api.*"),), (n.get("/api/v[0-9]+"), n.get("/api")),
])
PORT_SETS = [
    (), (n.tcp(80),), (n.tcp(80, 443),), (n.tcp(n.port_range(53, 8080)),), (n.udp(53),), (n.tcp("http"),),
    (n.any_protocol(53),), (n.tcp(),),
]
port_sets = st.sampled_from(PORT_SETS)
# now and then ICMP types (kubernetes refuses ICMP allows: NPD215; a deny of ICMP it subtracts)
ICMP_PORT_SETS = [(n.icmp(8),), (n.tcp(80), n.icmp(8)), (n.icmp(),), (n.icmpv6(128),), (n.icmpv6(),)]
port_sets_with_icmp = st.sampled_from([*PORT_SETS, *PORT_SETS, *ICMP_PORT_SETS])


TIERS = ("security", "platform", "application", "baseline")


@st.composite
def rules(draw: st.DrawFn, l7: bool = False, tiers: tuple[str, ...] = TIERS, icmp: bool = False) -> n.RuleSpec:
    action = draw(st.sampled_from(["allow", "allow", "deny", "pass"]))
    src, dst = draw(zones), draw(l7_zones if l7 and action == "allow" else zones)
    ports = draw(port_sets_with_icmp if icmp else port_sets)
    tier = draw(st.sampled_from(tiers))
    direction = draw(st.sampled_from(["both", "both", "egress", "ingress"]))
    if action == "allow":
        http = draw(http_rules) if l7 else ()
        if http:
            ports = (draw(st.sampled_from([n.tcp(80), n.tcp(8080), n.tcp(80, 8080)])),)
        return n.allow(src >> dst, *ports, http=http, tier=tier, direction=direction)
    if action == "deny":
        return n.deny(src >> dst, *ports, tier=tier, direction=direction)
    return n.pass_(src >> dst, *ports, tier=tier, direction=direction)


@st.composite
def policies(draw: st.DrawFn, l7: bool = False, tiers: tuple[str, ...] = TIERS, icmp: bool = False) -> n.Policy:
    """Generated intents; fewer ``tiers`` make rules of one tier meet more often (deny vs pass vs allow);
    ``icmp`` lets some rules match ICMP types (evaluate them on ``connections(icmp=True)``)."""
    owns = [n.namespace("ns1", labels={"team": "x"}), n.namespace("ns2")]
    base = draw(st.sampled_from([None, "both", "ingress", "egress"]))
    the_rules = draw(st.lists(rules(l7, tiers, icmp), min_size=1, max_size=5))
    bl = None
    if base is not None:
        bl = n.baseline(default_deny=base,  # type: ignore[arg-type]
                        dns=n.dns() if draw(st.booleans()) else None,
                        block_metadata=draw(st.booleans()))
    kept = [r for r in the_rules if _enforceable(r)] or [n.allow(n.namespace("ns1") >> n.world())]
    cluster = n.cluster_info(pod_cidrs=[POD_CIDR], node_cidrs=["10.224.0.0/16"])
    return n.Policy("generated", owns=owns, baseline=bl, rules=kept, cluster=cluster)


def _workloads(zones: tuple[n.Zone, ...]) -> bool:
    return any(isinstance(z, n.Pods | n.Namespace | n.Namespaces) for z in zones)


def _enforceable(r: n.RuleSpec) -> bool:
    """Whether some side of the rule is in-cluster workloads that can enforce it (else NPD015)."""
    if any(isinstance(z, n.Fqdn) for z in r.flow.sources):
        return False
    src, dst = _workloads(r.flow.sources), _workloads(r.flow.destinations)
    return {"both": src or dst, "egress": src, "ingress": dst}[r.direction]


KEYS = ("a", "b")
VALUES = ("1", "2")


@st.composite
def constraints(draw: st.DrawFn) -> Constraint:
    key = draw(st.sampled_from(KEYS))
    shape = draw(st.sampled_from(list(Shape)))
    if shape is Shape.ABSENT:
        return Constraint(key, shape)
    vals = tuple(sorted(draw(st.sets(st.sampled_from(VALUES), min_size=shape is Shape.IN, max_size=2))))
    return Constraint(key, shape, vals, draw(st.booleans()) if shape is Shape.NOT_IN else False)


selectors = st.lists(constraints(), max_size=3).map(Selector.of).filter(lambda s: s is not None)


def label_universe() -> list[dict[str, str]]:
    choices = [None, *VALUES, "3"]
    out = []
    for va, vb in itertools.product(choices, choices):
        out.append({k: v for k, v in (("a", va), ("b", vb)) if v is not None})
    return out

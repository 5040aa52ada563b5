"""Cilium rule sections: identity selectors, peers, ports, ICMP types, and L7 (HTTP, DNS) rules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import attrs

from netpol_dsl.ir.peers import Anything, DnsName, Entity, EntityKind, Network, Peer, Workloads
from netpol_dsl.ir.ports import PortMatch, Ports, icmp_matches, icmp_types
from netpol_dsl.ir.program import Direction, HttpMatch, Rule
from netpol_dsl.ir.selectors import NAMESPACE_NAME_LABEL, SERVICE_ACCOUNT_KEY, Constraint, Selector, Shape
from netpol_dsl.targets.labelselector import label_selector

NAMESPACE_KEY = "k8s:io.kubernetes.pod.namespace"
NAMESPACE_LABEL_PREFIX = "io.cilium.k8s.namespace.labels."
SERVICE_ACCOUNT_LABEL = "io.cilium.k8s.policy.serviceaccount"  # identity label Cilium derives from the pod
MAX_PORTS = 40  # per toPorts entry (CRD maxItems)
MAX_ICMP_FIELDS = 40  # per icmps entry (CRD maxItems; cilium:pkg/policy/api/rule_validation.go maxICMPFields)
ICMP_FAMILIES = {"ICMP": "IPv4", "ICMPv6": "IPv6"}


def needs_clusterwide(w: Workloads) -> bool:
    """Namespace labels other than the name are only honoured in CiliumClusterwideNetworkPolicy."""
    return any(c.key != NAMESPACE_NAME_LABEL for c in w.namespaces.constraints)


def _namespace_key(k: str) -> str:
    return NAMESPACE_KEY if k == NAMESPACE_NAME_LABEL else NAMESPACE_LABEL_PREFIX + k


def pod_key(k: str) -> str:
    """Pod selector keys as identity labels: the service-account pseudo-label becomes Cilium's own."""
    return SERVICE_ACCOUNT_LABEL if k == SERVICE_ACCOUNT_KEY else k


def pod_selector(selector: Selector) -> dict[str, Any]:
    """A pod selector (``endpointSelector`` of a CNP) over identity labels."""
    return label_selector(selector, pod_key)


def identity_selector(w: Workloads) -> dict[str, Any]:
    """An endpoint selector over Cilium identity labels: pod labels and service account, the namespace
    and its labels."""
    pods = pod_selector(w.pods)
    ns_constraints = w.namespaces.constraints
    if not ns_constraints:
        # a selector without a namespace means "this namespace" in a CNP: say "any" explicitly
        ns_constraints = (Constraint(NAMESPACE_NAME_LABEL, Shape.NOT_IN, (), True),)
    ns = label_selector(Selector(ns_constraints), _namespace_key)
    out: dict[str, Any] = {}
    labels = {**pods.get("matchLabels", {}), **ns.get("matchLabels", {})}
    exprs = [*pods.get("matchExpressions", []), *ns.get("matchExpressions", [])]
    if labels:
        out["matchLabels"] = dict(sorted(labels.items()))
    if exprs:
        out["matchExpressions"] = exprs
    return out


@attrs.frozen
class Features:
    """What the Cilium version the output is for understands in ``toPorts``."""

    end_port: bool = True  # endPort (1.16)
    l7_port_ranges: bool = True  # endPort on ports with HTTP rules (1.17; never with DNS rules)


def _ranges_allowed(http: tuple[HttpMatch, ...], dns: tuple[DnsName, ...], features: Features) -> bool:
    if dns:
        return False  # Cilium rejects DNS rules on port ranges, in every version
    return features.l7_port_ranges if http else features.end_port


def _size(p: PortMatch) -> int:
    return 65535 if p.all_ports else p.last - p.first + 1


def port_problem(ports: Ports, http: tuple[HttpMatch, ...], dns: tuple[DnsName, ...],
                 features: Features) -> PortMatch | None:
    """The first port range that this version cannot write: without endPort a range becomes single
    ports, at most :data:`MAX_PORTS` of them; "all ports" becomes ``port: "0"``, which Cilium refuses
    with L7 rules."""
    if ports is None or _ranges_allowed(http, dns, features):
        return None
    for p in ports:
        if p.is_icmp or p.name or (not p.all_ports and p.first == p.last):
            continue
        if p.all_ports and not (http or dns):
            continue  # port "0"
        if _size(p) > MAX_PORTS:
            return p
    return None


def _port_items(p: PortMatch, ranges: bool, l7: bool) -> list[dict[str, Any]]:
    if p.name:
        return [{"port": p.name, "protocol": p.protocol}]
    if p.all_ports:
        if ranges:
            return [{"port": "1", "endPort": 65535, "protocol": p.protocol}]
        if not l7:
            return [{"port": "0", "protocol": p.protocol}]  # Cilium's "every port" of the protocol
        raise AssertionError(f"{p.describe()} with L7 rules: check port_problem first")
    if p.first == p.last:
        return [{"port": str(p.first), "protocol": p.protocol}]
    if ranges:
        return [{"port": str(p.first), "endPort": p.last, "protocol": p.protocol}]
    assert _size(p) <= MAX_PORTS, f"{p.describe()}: check port_problem first"
    return [{"port": str(n), "protocol": p.protocol} for n in range(p.first, p.last + 1)]


def ports_entries(ports: Ports, http: tuple[HttpMatch, ...], dns: tuple[DnsName, ...],
                  features: Features = Features()) -> list[dict[str, Any]]:
    """``toPorts`` entries: ports (≤40 per entry), with the L7 rules attached to each entry.  Ranges use
    ``endPort`` where the version has it (for L7 ports: 1.17+), else become single ports.  ICMP types are
    left out: they go into :func:`icmp_entries`."""
    if ports is None:
        return []
    ranges = _ranges_allowed(http, dns, features)
    items = [item for p in ports if not p.is_icmp for item in _port_items(p, ranges, bool(http or dns))]
    if not items:
        return []
    rules: dict[str, Any] = {}
    if http:
        rules["http"] = [_http(h) for h in http]
    if dns:
        rules["dns"] = [{"matchName": d.pattern} if d.exact else {"matchPattern": d.pattern} for d in dns]
    out = []
    for i in range(0, len(items), MAX_PORTS):
        entry: dict[str, Any] = {"ports": items[i:i + MAX_PORTS]}
        if rules:
            entry["rules"] = rules
        out.append(entry)
    return out


def icmp_entries(ports: Ports) -> list[dict[str, Any]]:
    """``icmps`` entries: one field ``{family, type}`` per ICMP type, at most :data:`MAX_ICMP_FIELDS` per
    entry.  Cilium has no "every type": every type is 256 fields (its ``type: 0`` would match every type
    of the family, cilium/cilium#41304, but only by accident; the target refuses type 0 alone, NPD215)."""
    fields = [{"family": ICMP_FAMILIES[p.protocol], "type": t} for p in icmp_matches(ports) for t in icmp_types(p)]
    return [{"fields": fields[i:i + MAX_ICMP_FIELDS]} for i in range(0, len(fields), MAX_ICMP_FIELDS)]


def _http(h: HttpMatch) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if h.method is not None:
        out["method"] = h.method
    if h.path is not None:
        out["path"] = h.path
    if h.host is not None:
        out["host"] = h.host
    present = [name for name, value in h.headers if value is None]
    if present:
        out["headers"] = present
    matches = [{"name": name, "value": value} for name, value in h.headers if value is not None]
    if matches:
        out["headerMatches"] = matches
    return out


def _peer_field(peer: Peer, direction: Direction) -> str:
    side = "from" if direction is Direction.INGRESS else "to"
    match peer:
        case Workloads():
            return side + "Endpoints"
        case Network():
            return side + "CIDRSet"
        case DnsName():
            return "toFQDNs"
        case Entity() | Anything():
            return side + "Entities"
    raise AssertionError(peer)


def _peer_item(peer: Peer) -> Any:
    match peer:
        case Workloads():
            return identity_selector(peer)
        case Network():
            item: dict[str, Any] = {"cidr": str(peer.cidr)}
            if peer.excepts:
                item["except"] = [str(e) for e in peer.excepts]
            return item
        case DnsName():
            return {"matchName": peer.pattern} if peer.exact else {"matchPattern": peer.pattern}
        case Entity():
            return peer.kind.value
        case Anything():
            return "all"
    raise AssertionError(peer)


# Every identity but the pod's own node ("host"): what "anything" means in an ingress deny, since
# traffic from its own node (kubelet probes) is never restricted by the intent's semantics.
NOT_HOST_ENTITIES = ("world", "remote-node", "kube-apiserver", "ingress", "health", "init", "unmanaged")
_ALL_PODS = Workloads(Selector(), Selector())


def _items(peer: Peer, direction: Direction, deny: bool) -> list[tuple[str, Any]]:
    """(field, item) pairs for one peer; ingress denies leave the pod's own node out."""
    if deny and direction is Direction.INGRESS and isinstance(peer, Anything | Entity):
        kind = peer.kind if isinstance(peer, Entity) else None
        if kind is EntityKind.HOST:
            return []
        if kind is None or kind is EntityKind.CLUSTER:
            entities = NOT_HOST_ENTITIES if kind is None else ("remote-node", "kube-apiserver")
            return [("fromEndpoints", identity_selector(_ALL_PODS)), *(("fromEntities", e) for e in entities)]
    return [(_peer_field(peer, direction), _peer_item(peer))]


def section(rules: list[Rule], direction: Direction, deny: bool = False,
            features: Features = Features(), cidr_groups: Mapping[Rule, str] | None = None) -> list[dict[str, Any]]:
    """One ingress/egress (or deny) section: rules grouped by traffic, one entry per peer kind
    (Cilium's L3 fields are mutually exclusive within one rule); ``cidr_groups`` names the
    CiliumCIDRGroup a CIDR rule refers to instead of its CIDR."""
    groups: dict[tuple[Any, ...], dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for r in rules:
        traffic = (r.ports is None, r.ports or (), r.http, r.dns)
        group = (cidr_groups or {}).get(r)
        items = _items(r.peer, direction, deny) if group is None else \
            [(_peer_field(r.peer, direction), {"cidrGroupRef": group})]
        for field, item in items:
            if item not in groups[traffic][field]:
                groups[traffic][field].append(item)
    out = []
    for traffic in sorted(groups, key=repr):
        _, ports, http, dns = traffic
        to_ports = ports_entries(None if traffic[0] else ports, http, dns, features)
        # Cilium refuses icmps and toPorts in one rule ("The ICMPs block may only be present without
        # ToPorts", cilium:pkg/policy/api/rule_validation.go): ICMP types get a rule of their own
        icmps = icmp_entries(None if traffic[0] else ports)
        for field in sorted(groups[traffic]):
            if to_ports or not icmps:
                entry: dict[str, Any] = {field: groups[traffic][field]}
                if to_ports:
                    entry["toPorts"] = to_ports
                out.append(entry)
            if icmps:
                out.append({field: groups[traffic][field], "icmps": icmps})
    return out

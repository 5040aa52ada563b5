"""Lowering: a DSL :class:`Policy` becomes an IR :class:`Program` (directed, deduplicated, sorted rules)."""

from __future__ import annotations

import ipaddress

import attrs

from netpol_dsl import values
from netpol_dsl.diagnostics import Code, CompileError, Diagnostic, Location
from netpol_dsl.dsl import expect as dsl_expect
from netpol_dsl.dsl.policy import Baseline, ClusterDNS, Policy, RuleSpec
from netpol_dsl.dsl.ports import PortSet
from netpol_dsl.dsl.zones import AnyOf, Cidr, Entity, EntityName, Fqdn, Namespace, Namespaces, Pods, Zone
from netpol_dsl.ir.peers import Anything, DnsName, EntityKind, Network, Peer, Workloads, namespace_selector
from netpol_dsl.ir.peers import Entity as EntityPeer
from netpol_dsl.ir.ports import PortMatch, Ports, normalize_ports
from netpol_dsl.ir.program import (
    Action,
    ClusterFacts,
    Direction,
    Expectation,
    HttpMatch,
    Isolation,
    Program,
    Rule,
    Tier,
)
from netpol_dsl.ir.selectors import Selector

_ENTITY_KIND = {
    EntityName.CLUSTER: EntityKind.CLUSTER,
    EntityName.HOST: EntityKind.HOST,
    EntityName.REMOTE_NODE: EntityKind.REMOTE_NODE,
    EntityName.KUBE_APISERVER: EntityKind.KUBE_APISERVER,
}
METADATA_CIDR = "169.254.169.254/32"


def zone_peers(zone: Zone) -> tuple[Peer, ...]:
    """The IR peers a zone stands for."""
    match zone:
        case AnyOf():
            return tuple(p for m in zone.members for p in zone_peers(m))
        case Pods():
            return (Workloads(zone.namespaces, zone.pods),)
        case Namespace():
            return (Workloads(namespace_selector(zone.namespace), Selector()),)
        case Namespaces():
            return (Workloads(zone.selector, Selector()),)
        case Cidr():
            return (Network.make(zone.network, zone.excepts),)
        case Fqdn():
            return (DnsName(zone.pattern, zone.exact),)
        case Entity():
            if zone.entity is EntityName.WORLD:
                return (Network(ipaddress.ip_network("0.0.0.0/0")), Network(ipaddress.ip_network("::/0")))
            if zone.entity is EntityName.ANYTHING:
                return (Anything(),)
            return (EntityPeer(_ENTITY_KIND[zone.entity]),)
    raise AssertionError(f"unhandled zone {zone!r}")


def _ports(port_sets: tuple[PortSet, ...]) -> Ports:
    if not port_sets:
        return None
    return normalize_ports(tuple(m for ps in port_sets for m in ps.matches))


class _Lowering:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.tiers = {t.name: Tier(t.order, t.name) for t in policy.tiers}
        self.rules: dict[Rule, Rule] = {}
        self.diags: list[Diagnostic] = []

    def tier_for(self, preferred: str) -> Tier:
        return self.tiers.get(preferred) or min(self.tiers.values())

    def add(self, rule: Rule) -> None:
        prev = self.rules.get(rule)
        if prev is None:
            self.rules[rule] = rule
        else:
            merged = tuple(sorted(set(prev.origins) | set(rule.origins)))
            self.rules[rule] = attrs.evolve(prev, origins=merged)

    def flow(
        self,
        action: Action,
        sources: tuple[Zone, ...],
        destinations: tuple[Zone, ...],
        ports: Ports,
        http: tuple[HttpMatch, ...],
        tier: Tier,
        direction: str,
        label: str,
        location: Location,
        group: str = "",
        log: bool = False,
    ) -> None:
        src = [p for z in sources for p in zone_peers(z)]
        dst = [p for z in destinations for p in zone_peers(z)]
        if any(isinstance(p, DnsName) for p in src):
            self.diags.append(Diagnostic(Code.NPD015, f"flow '{label}': a DNS name can only be a destination",
                                         location))
            return
        made = 0
        if direction in ("both", "egress"):
            for s in src:
                if isinstance(s, Workloads):
                    for d in dst:
                        self.add(Rule(tier, action, Direction.EGRESS, s, d, ports, http, label, group, (location,),
                                      log=log))
                        made += 1
        if direction in ("both", "ingress"):
            for d in dst:
                if isinstance(d, Workloads):
                    for s in src:
                        self.add(Rule(tier, action, Direction.INGRESS, d, s, ports, http, label, group, (location,),
                                      log=log))
                        made += 1
        if not made:
            what = {"both": "either side", "egress": "the source", "ingress": "the destination"}[direction]
            self.diags.append(Diagnostic(
                Code.NPD015,
                f"flow '{label}' has no in-cluster workloads on {what}, so no policy can enforce it",
                location,
                hint="a rule is enforced at pods: make one side a namespace or pods zone",
            ))

    def rule(self, spec: RuleSpec) -> None:
        self.flow(spec.action, spec.flow.sources, spec.flow.destinations, _ports(spec.ports),
                  tuple(h.match for h in spec.http), self.tiers[spec.tier], spec.direction,
                  spec.flow.describe(), spec.location, log=spec.log)

    def fqdn_lookups(self, resolver: ClusterDNS) -> None:
        """An FQDN allow implies the DNS lookups of its names: egress to the cluster DNS on UDP/TCP 53,
        in the same tier, for those names only (Cilium learns the IPs from these answers)."""
        dns53 = normalize_ports((PortMatch("UDP", 53, 53), PortMatch("TCP", 53, 53)))
        [dns_peer] = zone_peers(resolver.zone())
        names: dict[tuple[Tier, Workloads], set[DnsName]] = {}
        origins: dict[tuple[Tier, Workloads], set[Location]] = {}
        for r in list(self.rules):
            if r.action is Action.ALLOW and isinstance(r.peer, DnsName):
                names.setdefault((r.tier, r.subject), set()).add(r.peer)
                origins.setdefault((r.tier, r.subject), set()).update(r.origins)
        for (tier, subject), found in sorted(names.items()):
            if resolver.proxy_all_names:
                found = {DnsName("*", exact=False)}
            self.add(Rule(tier, Action.ALLOW, Direction.EGRESS, subject, dns_peer, dns53, (),
                          "DNS lookups for FQDN egress", "fqdn-dns", tuple(sorted(origins[(tier, subject)])),
                          dns=tuple(sorted(found))))

    def baseline(self, b: Baseline) -> list[Isolation]:
        owned: tuple[Zone, ...] = self.policy.owns
        platform, security = self.tier_for("platform"), self.tier_for("security")
        dns53 = normalize_ports((PortMatch("UDP", 53, 53), PortMatch("TCP", 53, 53)))
        if b.dns is not None:
            self.flow(Action.ALLOW, owned, (b.dns.zone(),), dns53, (), platform, "egress",
                      "baseline: DNS", b.location, "dns")
            if b.dns.node_local_ip is not None:
                net = values.network(b.dns.node_local_ip, "node-local-dns address")
                self.flow(Action.ALLOW, owned, (Cidr(network=net, location=b.location),), dns53, (),
                          platform, "egress", "baseline: node-local DNS", b.location, "dns")
        for c in b.log_collectors:
            self.flow(Action.ALLOW, owned, (c.zone,), _ports(c.ports), (), platform, "egress",
                      f"baseline: logs to {c.zone.label()}", c.location, "logging")
        for c in b.metrics_scrapers:
            self.flow(Action.ALLOW, (c.zone,), owned, _ports(c.ports), (), platform, "ingress",
                      f"baseline: metrics from {c.zone.label()}", c.location, "monitoring")
        for text in b.blocked_cidrs:
            z = Cidr(network=values.network(text, "blocked CIDR"), location=b.location)
            self.flow(Action.DENY, owned, (z,), None, (), security, "egress", f"baseline: block {text}",
                      b.location, "blocklist", log=b.log_blocked)
            self.flow(Action.DENY, (z,), owned, None, (), security, "ingress", f"baseline: block {text}",
                      b.location, "blocklist", log=b.log_blocked)
        for name in b.blocked_domains:
            domain = Fqdn(pattern=values.dns_name(name), location=b.location)
            self.flow(Action.DENY, owned, (domain,), None, (), security, "egress", f"baseline: block {name}",
                      b.location, "blocklist", log=b.log_blocked)
        if b.block_metadata:
            z = Cidr(network=values.network(METADATA_CIDR), location=b.location)
            self.flow(Action.DENY, owned, (z,), None, (), security, "egress", "baseline: block cloud metadata",
                      b.location, "metadata", log=b.log_blocked)
        isolations = []
        if b.default_deny is not None:
            dirs = {"both": (Direction.INGRESS, Direction.EGRESS), "ingress": (Direction.INGRESS,),
                    "egress": (Direction.EGRESS,)}[b.default_deny]
            for ns in self.policy.owns:
                for d in dirs:
                    isolations.append(Isolation(Workloads(namespace_selector(ns.namespace), Selector()), d,
                                                (b.location,)))
        return isolations


def lower(policy: Policy) -> Program:
    """Lower a policy to the IR; raises CompileError with every problem found."""
    lw = _Lowering(policy)
    for spec in policy.rules:
        lw.rule(spec)
    isolations = lw.baseline(policy.baseline) if policy.baseline is not None else []
    lw.fqdn_lookups(policy.baseline.dns if policy.baseline and policy.baseline.dns else ClusterDNS())
    if lw.diags:
        raise CompileError(sorted(lw.diags, key=lambda d: (d.location, d.code.name)))
    rules = sorted(lw.rules.values(), key=Rule.sort_key)
    facts = ClusterFacts(
        pod_cidrs=tuple(values.network(c) for c in policy.cluster.pod_cidrs),
        service_cidrs=tuple(values.network(c) for c in policy.cluster.service_cidrs),
        node_cidrs=tuple(values.network(c) for c in policy.cluster.node_cidrs),
        namespace_labels=tuple(sorted((ns.namespace, ns.labels) for ns in _declared_namespaces(policy))),
    )
    return Program(
        name=policy.name,
        tiers=tuple(sorted(lw.tiers.values())),
        rules=tuple(rules),
        isolations=tuple(sorted(set(isolations), key=lambda i: (i.direction.value, i.subject))),
        owned_namespaces=tuple(sorted(ns.namespace for ns in policy.owns)),
        cluster=facts,
        location=policy.location,
        expectations=tuple(lower_expectation(e) for e in policy.expectations),
    )


def lower_expectation(e: dsl_expect.Expectation) -> Expectation:
    return Expectation(
        sources=zone_peers(e.source),
        destinations=zone_peers(e.destination),
        ports=_ports(e.ports),
        reach=e.reach,
        http=e.http.match if e.http is not None else None,
        text=e.describe(),
        location=e.location,
    )


def _declared_namespaces(policy: Policy) -> list[Namespace]:
    seen: dict[str, Namespace] = {}
    for z in (*policy.owns, *policy.zones()):
        if isinstance(z, Namespace) and (z.namespace not in seen or z.labels):
            seen[z.namespace] = z
    return list(seen.values())

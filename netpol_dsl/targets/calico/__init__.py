"""Target ``calico``: projectcalico.org/v3 Tier, GlobalNetworkPolicy, NetworkPolicy and GlobalNetworkSet.

Calico has what the reference semantics needs, so the IR maps onto it without subtraction:

* every DSL tier becomes a ``Tier`` with the same ``order`` and ``defaultAction: Pass`` (3.29+): a
  tier whose rules do not decide lets the walk go on, as the intent says;
* in a tier, deny policies come first (``order`` 100), then pass (200), then allow (300): Calico's
  first matching rule decides, which gives the intent's "any deny, else any pass, else any allow";
* default deny (the baseline's, and the one an allow list implies) is a rule-less policy in Calico's
  ``default`` tier (where Kubernetes NetworkPolicies live, ``defaultAction: Deny``): a pod that no tier
  decided for is denied there by the end-of-tier deny, exactly when the intent isolates it;
* workloads of one named namespace get a ``NetworkPolicy`` there, others a ``GlobalNetworkPolicy``
  with a ``namespaceSelector``; pod peers are limited to pods (``projectcalico.org/orchestrator ==
  "k8s"``), so a NetworkSet with the same labels never matches by accident;
* CIDR peers become ``nets``/``notNets`` with the cluster's own CIDRs carved out (``nets`` match pod
  addresses too); the baseline blocklist becomes one ``GlobalNetworkSet`` selected with ``global()``;
* ICMP types become rules with ``protocol: ICMP``/``ICMPv6`` and ``icmp: {type}``, one per type (every
  type: no ``icmp``), never with ports; Calico takes types 0-254, so type 255 is NPD215.

Options choose the Calico version (3.29-3.32), policy names with the ``<tier>.`` prefix that 3.29-3.31
require, staged (audit-only) kinds, and HTTP rules for clusters with Istio application layer policy.
FQDN egress is always an error: ``destination.domains`` exists only in Calico Enterprise's API.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from netpol_dsl.diagnostics import Code, CompileError, Diagnostic, Location, Severity
from netpol_dsl.ir.peers import Anything, DnsName, Entity, Network, Peer, Workloads, peer_key
from netpol_dsl.ir.ports import ICMP_TYPES, icmp_matches, ports_overlap
from netpol_dsl.ir.program import Action, Direction, HttpMatch, Program, Rule, Tier
from netpol_dsl.ir.selectors import NAMESPACE_NAME_LABEL
from netpol_dsl.provenance import MANAGED_BY, object_metadata
from netpol_dsl.targets.base import (
    Capability,
    CapabilityNote,
    Manifest,
    Output,
    Support,
    Target,
    object_name,
    option,
    parse_bool,
    parse_choice,
    short_hash,
    version_at_least,
)
from netpol_dsl.targets.calico.rules import by_protocol, cidr_entity, http_match, path_match
from netpol_dsl.targets.calico.selectors import (
    GLOBAL,
    ORCHESTRATOR,
    Unquotable,
    expression,
    namespace_key,
    pod_key,
    quote,
)
from netpol_dsl.targets.labelselector import slug, workloads_slug
from netpol_dsl.targets.networks import expand, outside_cluster

API_VERSION = "projectcalico.org/v3"
VERSIONS = ("3.29", "3.30", "3.31", "3.32")
DEFAULT_TIER = "default"
DEFAULT_TIER_ORDER = 1_000_000  # Calico's built-in tier of Kubernetes NetworkPolicies
DEFAULT = Tier(DEFAULT_TIER_ORDER, DEFAULT_TIER)
RESERVED_TIERS = frozenset({DEFAULT_TIER, "kube-admin", "kube-baseline", "adminnetworkpolicy",
                            "baselineadminnetworkpolicy"})
ORDER = {Action.DENY: 100, Action.PASS: 200, Action.ALLOW: 300}
SET_LABEL = "netpol-dsl.dev/network-set"
MAX_ICMP_TYPE = 254  # icmp.type maximum (CRD; validator.go)
INLINE_NETS = 2  # a flow with more CIDRs than this selects a GlobalNetworkSet
MAX_NETS = 256  # nets/notNets entries per rule (validator); a CIDR with more exceptions becomes a set
_GROUP_NAMES = {"dns": "allow-dns", "logging": "allow-logging", "monitoring": "allow-monitoring",
                "fqdn-dns": "fqdn-dns", "blocklist": "blocklist", "metadata": "block-metadata"}

Y, P, N = Support.YES, Support.PARTIAL, Support.NO


@attrs.frozen(order=True)
class _Key:
    tier: Tier  # DEFAULT for Calico's own default tier (isolation)
    namespace: str  # "" for a GlobalNetworkPolicy
    subject: Workloads
    group: str


class _Policy:
    def __init__(self) -> None:
        self.rules: dict[Direction, list[dict[str, Any]]] = defaultdict(list)
        self.types: set[Direction] = set()
        self.origins: set[Location] = set()


@attrs.frozen
class CalicoTarget(Target):
    name: ClassVar[str] = "calico"
    capabilities: ClassVar[Mapping[Capability, CapabilityNote]] = {
        Capability.POD_SELECTORS: CapabilityNote(Y, "selector expressions and namespaceSelector"),
        Capability.CIDR: CapabilityNote(Y, "nets/notNets, cluster CIDRs carved out; blocklists as GlobalNetworkSet"),
        Capability.FQDN: CapabilityNote(N, "error NPD201 (destination.domains is Calico Enterprise only)"),
        Capability.HTTP: CapabilityNote(P, "error NPD202 unless option alp=true (Istio ALP; ingress only)"),
        Capability.DENY: CapabilityNote(Y, "Deny action, ordered before pass and allow"),
        Capability.TIERS: CapabilityNote(Y, "Tier with order and defaultAction: Pass; Pass action"),
        Capability.CLUSTER_WIDE: CapabilityNote(Y, "GlobalNetworkPolicy"),
        Capability.SERVICE_ACCOUNTS: CapabilityNote(Y, "projectcalico.org/serviceaccount"),
        Capability.ENTITIES: CapabilityNote(N, "error NPD203; world is a CIDR"),
        Capability.PORT_RANGES: CapabilityNote(Y, '"min:max"'),
        Capability.NAMED_PORTS: CapabilityNote(Y),
        Capability.SCTP: CapabilityNote(Y),
        Capability.ICMP: CapabilityNote(P, "protocol ICMP/ICMPv6 with icmp.type, one rule per type; type 255: "
                                           "NPD215 (Calico takes 0-254)"),
        Capability.DOMAIN_BLOCKLIST: CapabilityNote(N, "error NPD209"),
    }

    version: str = option("3.30", "Calico version the output is for: " + ", ".join(VERSIONS),
                          parse_choice(VERSIONS))
    tier_prefix: bool = option(True, "name policies <tier>.<name> outside the default tier (required by 3.29-3.31; "
                               "false needs 3.32+)", parse_bool)
    staged: bool = option(False, "emit StagedGlobalNetworkPolicy/StagedNetworkPolicy (audit only, 3.30+)", parse_bool)
    alp: bool = option(False, "the cluster runs Istio application layer policy: emit HTTP method/path rules "
                       "(ingress, exact or prefix paths)", parse_bool)

    def __attrs_post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"calico.version: expected one of {', '.join(VERSIONS)}, got {self.version!r}")
        if not self.tier_prefix and not version_at_least(self.version, "3.32"):
            raise ValueError(f"calico.tier-prefix=false needs version 3.32 or later (got {self.version}): "
                             "Calico 3.29-3.31 reject policy names without the <tier>. prefix")
        if self.staged and not version_at_least(self.version, "3.30"):
            raise ValueError(f"calico.staged=true needs version 3.30 or later (got {self.version})")

    @property
    def enforcing(self) -> bool:
        return not self.staged

    def compile(self, program: Program) -> Output:
        return _Compiler(program, self).run()


class _Compiler:
    def __init__(self, program: Program, options: CalicoTarget) -> None:
        self.program = program
        self.options = options
        self.diags: list[Diagnostic] = []
        self.policies: dict[_Key, _Policy] = defaultdict(_Policy)
        self.set_of: dict[Rule, str] = {}  # rules whose CIDR peer is a GlobalNetworkSet -> its name
        self.sets: dict[str, tuple[set[str], set[Location]]] = {}  # GlobalNetworkSet name -> (nets, origins)

    # ---- checks ---------------------------------------------------------------------------------

    def error(self, code: Code, rule: Rule, problem: str, hint: str) -> None:
        self.diags.append(Diagnostic(code, f"{rule.action.value} '{rule.flow}' {problem}; target 'calico' cannot "
                                     "express it", rule.location, hint=hint))

    def check(self, rule: Rule) -> bool:
        peer = rule.peer
        if isinstance(peer, DnsName) and rule.action is not Action.ALLOW:
            self.error(Code.NPD209, rule, f"matches traffic by the DNS name {peer.pattern}",
                       "block the provider's CIDRs with blocked_cidrs= instead")
            return False
        if isinstance(peer, DnsName):
            self.error(Code.NPD201, rule, f"needs FQDN egress to {peer.pattern}",
                       "allow an explicit cidr(...) instead (narrower), or use target cilium; Calico matches domains "
                       "only in Calico Enterprise (destination.domains is not in the Open Source API)")
            return False
        if isinstance(peer, Entity):
            self.error(Code.NPD203, rule, f"needs the entity '{peer.kind.value}'",
                       "Calico Open Source has no selector for nodes or the API server: use cidr(...) with your "
                       "node or API server addresses, or target cilium")
            return False
        beyond = [p for p in icmp_matches(rule.ports) if not p.all_ports and p.last > MAX_ICMP_TYPE]
        if beyond:
            p = beyond[0]
            every = "icmp()" if p.protocol == "ICMP" else "icmpv6()"
            self.error(Code.NPD215, rule, f"matches {p.protocol} type {ICMP_TYPES[1]} ({p.describe()})",
                       f"Calico matches ICMP types 0-{MAX_ICMP_TYPE} only (icmp.type): leave type {ICMP_TYPES[1]} "
                       f"out (it is reserved), or match every type with {every}")
            return False
        if rule.http and not self.options.alp:
            self.error(Code.NPD202, rule, "needs HTTP (L7) matching",
                       "Felix ignores http matches without Istio application layer policy, so the rule would allow "
                       "the whole port; if ALP is installed, build with --option calico.alp=true")
            return False
        if rule.http:
            return self.check_http(rule)
        return True

    def check_http(self, rule: Rule) -> bool:
        if rule.direction is Direction.EGRESS and not any(
                o.direction is Direction.INGRESS and o.flow == rule.flow and o.http == rule.http
                and o.action is Action.ALLOW for o in self.program.rules):
            self.error(Code.NPD202, rule, "needs HTTP matching on egress without an ingress half",
                       "application layer policy enforces HTTP rules at the destination pod only: let the flow "
                       "have both halves (the default direction)")
            return False
        if rule.direction is Direction.EGRESS and isinstance(rule.peer, Workloads):
            bypass = next((o for o in self.program.rules if self.bypasses(o, rule)), None)
            if bypass is not None:
                self.error(Code.NPD202, rule, f"relies on the destination to enforce its HTTP rules, but "
                           f"'{bypass.flow}' (at {bypass.location}) admits the same traffic there without them",
                           "application layer policy enforces HTTP rules at the destination pod only, so the "
                           "source side is an L4 allow: narrow one of the two rules so that they do not overlap")
                return False
        for h in rule.http:
            problem = None
            if h.host is not None or h.headers:
                problem = "matches the Host header or other headers"
            elif h.method is not None and not re.fullmatch(r"[A-Z]+", h.method):
                problem = f"matches methods by the pattern {h.method!r}"
            elif h.path is not None and path_match(h.path) is None:
                problem = f"matches paths by the pattern {h.path!r}, neither an exact path nor a prefix"
            if problem:
                self.error(Code.NPD202, rule, f"{problem} with application layer policy",
                           "Calico matches a method list and exact or prefix paths only")
                return False
        return True

    @staticmethod
    def _overlaps(peer: Peer, pods: Workloads) -> bool:
        return isinstance(peer, Anything) or (isinstance(peer, Workloads) and peer.conjoin(pods) is not None)

    def bypasses(self, other: Rule, rule: Rule) -> bool:
        """Whether ``other``, an ingress allow at ``rule``'s destination, admits some of ``rule``'s traffic
        without ``rule``'s HTTP matches (then the L4 egress half of ``rule`` would be wider than intended)."""
        assert isinstance(rule.peer, Workloads)
        return (other.direction is Direction.INGRESS and other.action is Action.ALLOW and other.http != rule.http
                and other.subject.conjoin(rule.peer) is not None and self._overlaps(other.peer, rule.subject)
                and ports_overlap(other.ports, rule.ports))

    def check_tiers(self) -> None:
        for tier in self.program.tiers:
            problem = None
            if tier.name in RESERVED_TIERS:
                problem = f"tier name {tier.name!r} is one of Calico's own tiers"
            elif tier.order >= DEFAULT_TIER_ORDER:
                problem = (f"tier {tier.name!r} has order {tier.order}, not before Calico's default tier "
                           f"({DEFAULT_TIER_ORDER}) where default deny is enforced")
            if problem:
                self.diags.append(Diagnostic(Code.NPD017, f"{problem}; target 'calico' cannot place it",
                                             self.program.location, hint="rename the tier or lower its order"))

    # ---- structure ------------------------------------------------------------------------------

    def place(self, subject: Workloads) -> str:
        """The namespace of a NetworkPolicy for ``subject``, or "" for a GlobalNetworkPolicy."""
        name = subject.namespace
        if name is not None and subject.namespaces.without(NAMESPACE_NAME_LABEL).is_all:
            return name
        return ""

    def run(self) -> Output:
        self.check_tiers()
        rules = [r for r in self.program.rules if self.check(r)]
        self.plan_sets(rules)
        for r in rules:
            key = _Key(r.tier, self.place(r.subject), r.subject,
                       f"{r.group}:{r.action.value}")
            pol = self.policies[key]
            pol.types.add(r.direction)
            pol.origins.update(r.origins)
            for rendered in self.rule(r, key.namespace):
                if rendered not in pol.rules[r.direction]:
                    pol.rules[r.direction].append(rendered)
        self.isolate(rules)
        if any(d.severity is Severity.ERROR for d in self.diags):
            raise CompileError(sorted(set(self.diags), key=lambda d: (d.location, d.code.name, d.message)))
        manifests = self.tiers()
        used: set[tuple[str, str, str]] = set()
        manifests += [self.policy(k, self.policies[k], used) for k in sorted(self.policies)]
        manifests += self.network_sets()
        return Output(tuple(sorted(manifests, key=lambda m: m.filename)),
                      tuple(sorted(set(self.diags), key=lambda d: (d.location, d.code.name, d.message))))

    def isolate(self, rules: list[Rule]) -> None:
        """Default deny in Calico's default tier for every pod the intent isolates: the baseline's, and the
        subjects of allow lists (a pod selected by an allow is default-deny in that direction).  A subject
        inside a baseline default deny or inside a namespace-wide allow subject needs no policy of its own
        (comparing with those few keeps this linear in the number of rules)."""
        for direction in (Direction.INGRESS, Direction.EGRESS):
            baseline = [i for i in self.program.isolations if i.direction is direction]
            allows = [r for r in rules if r.action is Action.ALLOW and r.direction is direction]
            kept: dict[Workloads, set[Location]] = {}
            for i in baseline:
                kept.setdefault(i.subject, set()).update(i.origins)
            from_baseline = set(kept)
            wide = [r.subject for r in allows if r.subject.pods.is_all]
            covers = list(dict.fromkeys([*sorted(from_baseline), *wide]))
            for r in allows:
                cover = r.subject if r.subject in kept else next(
                    (c for c in covers if r.subject.issubset(c)), r.subject)
                origins = kept.setdefault(cover, set())
                if cover not in from_baseline:
                    origins.update(r.origins)
            for subject, origins in kept.items():
                pol = self.policies[_Key(DEFAULT, self.place(subject), subject, "default-deny")]
                pol.types.add(direction)
                pol.origins.update(origins)

    # ---- rules ----------------------------------------------------------------------------------

    def rule(self, r: Rule, namespace: str) -> list[dict[str, Any]]:
        """The Calico rules for one IR rule: one per peer alternative and protocol."""
        action = {Action.ALLOW: "Allow", Action.DENY: "Deny", Action.PASS: "Pass"}[r.action]
        out = []
        # ALP ANDs a rule's methods and paths: one Calico rule per request shape, never their cross product
        requests: list[HttpMatch | None] = list(r.http) if r.http and r.direction is Direction.INGRESS else [None]
        for peer, (protocol, ports, icmp), request in itertools.product(self.peer(r, namespace),
                                                                        by_protocol(r.ports), requests):
            rule: dict[str, Any] = {"action": action}
            if protocol:
                rule["protocol"] = protocol
            if icmp is not None:
                rule["icmp"] = {"type": icmp}
            here: dict[str, Any] = {}
            if ports:
                here["ports"] = ports
            if r.direction is Direction.INGRESS:
                if peer:
                    rule["source"] = peer
                if here:
                    rule["destination"] = here
            else:
                merged = {**peer, **here}
                if merged:
                    rule["destination"] = merged
            if request is not None:
                rule["http"] = http_match(request)
            if r.log:  # Log goes on to the next rule; http is for Allow rules only, so it logs the L4 match
                log = {"action": "Log", **{k: v for k, v in rule.items() if k not in ("action", "http")}}
                if log not in out:
                    out.append(log)
            out.append(rule)
        return out

    def peer(self, r: Rule, namespace: str) -> list[dict[str, Any]]:
        """Entity rules (without ports) for the rule's peer; [] when nothing is left of it."""
        peer: Peer = r.peer
        if isinstance(peer, Anything):
            return [{}]
        if isinstance(peer, Workloads):
            return [self.workloads(peer, namespace, r)]
        if isinstance(peer, Network):
            pieces, problem = outside_cluster(peer, r, self.program.cluster, "Calico's nets")
            if problem is not None:
                self.diags.append(problem)
            name = self.set_of.get(r)
            if name is not None:
                nets, origins = self.sets.setdefault(name, (set(), set()))
                nets.update(str(n) for p in pieces for n in expand(p))
                origins.update(r.origins)
                return [{"selector": f"{SET_LABEL} == {quote(name)}", "namespaceSelector": GLOBAL}]
            return [cidr_entity(p) for p in pieces]
        raise AssertionError(f"unchecked peer {peer!r}")

    def workloads(self, w: Workloads, namespace: str, r: Rule) -> dict[str, Any]:
        try:
            entity: dict[str, Any] = {"selector": expression(w.pods, pod_key, (f"{ORCHESTRATOR} == \"k8s\"",))}
            if not (namespace and w.namespace == namespace and
                    w.namespaces.without(NAMESPACE_NAME_LABEL).is_all):
                entity["namespaceSelector"] = expression(w.namespaces, namespace_key)
        except Unquotable as exc:
            self.diags.append(Diagnostic(Code.NPD002, f"{r.action.value} '{r.flow}': {exc}", r.location))
            return {}
        return entity

    def plan_sets(self, rules: list[Rule]) -> None:
        """CIDR peers that go into GlobalNetworkSets: the baseline blocklist, a zone of more than INLINE_NETS
        CIDRs in one flow (one set per flow, selected by one rule instead of one per CIDR), and a CIDR with
        more exceptions than a rule's notNets holds (the set lists what is left, exactly)."""
        groups: dict[tuple[object, ...], list[Rule]] = defaultdict(list)
        for r in rules:
            if isinstance(r.peer, Network):
                groups[(r.tier, r.action.value, r.direction.value, r.subject, r.ports, r.http, r.flow,
                        r.group)].append(r)
        by_content: dict[tuple[object, ...], str] = {}  # the same CIDRs in several flows: one set
        names: dict[str, tuple[object, ...]] = {}
        for members in sorted(groups.values(), key=lambda m: m[0].sort_key()):
            first = members[0]
            many_excepts = any(len(p.excepts) > MAX_NETS for r in members if isinstance(r.peer, Network)
                               for p in outside_cluster(r.peer, r, self.program.cluster, "")[0])
            if first.group != "blocklist" and (len(members) > INLINE_NETS or many_excepts):
                label = re.sub(r"[^a-z0-9]+", "-", first.flow.lower())
                name = object_name(f"{self.program.name}-{label}", f"{self.program.name} {first.flow}")
            elif first.group == "blocklist":
                name = object_name(f"{self.program.name}-blocklist", self.program.name)
            else:
                continue
            # every blocklist CIDR goes into the one blocklist set; other sets hold exactly their flow's CIDRs
            content = ("blocklist",) if first.group == "blocklist" else tuple(sorted(peer_key(r.peer) for r in members))
            if content not in by_content and names.get(name, content) != content:  # another list has the name
                name = f"{name[:56]}-{short_hash(repr(content))}"
            name = by_content.setdefault(content, name)
            names[name] = content
            self.set_of.update((r, name) for r in members)

    # ---- objects --------------------------------------------------------------------------------

    def tiers(self) -> list[Manifest]:
        out = []
        for tier in sorted({k.tier for k in self.policies if k.tier != DEFAULT}):
            body = {"apiVersion": API_VERSION, "kind": "Tier",
                    "metadata": {"name": tier.name, "labels": dict(MANAGED_BY)},
                    "spec": {"order": tier.order, "defaultAction": "Pass"}}
            out.append(Manifest("Tier", tier.name, None, body, f"tier_{tier.name}.yaml"))
        return out

    def network_sets(self) -> list[Manifest]:
        out = []
        for name, (nets, origins) in sorted(self.sets.items()):
            metadata = object_metadata(name, None, self.program.name, origins)
            metadata["labels"][SET_LABEL] = name
            body = {"apiVersion": API_VERSION, "kind": "GlobalNetworkSet", "metadata": metadata,
                    "spec": {"nets": sorted(nets, key=_net_order)}}
            out.append(Manifest("GlobalNetworkSet", name, None, body, f"globalnetworkset_{name}.yaml"))
        return out

    def policy(self, key: _Key, pol: _Policy, used: set[tuple[str, str, str]]) -> Manifest:
        staged = self.options.staged
        kind = ("Staged" if staged else "") + ("NetworkPolicy" if key.namespace else "GlobalNetworkPolicy")
        group, _, action = key.group.partition(":")
        subject = slug(key.subject.pods) if key.namespace else workloads_slug(key.subject)
        base = _GROUP_NAMES.get(group, group)
        if not base:
            base = subject
        elif not key.subject.pods.is_all or not key.namespace:
            base = f"{base}-{subject}"
        if action in ("deny", "pass") and not group:
            base = f"{base}-{action}"
        if not key.namespace:
            base = f"{self.program.name}-{base}"
        name = object_name(base, repr(key))
        if key.tier != DEFAULT:
            tier = key.tier.name
            name = f"{tier}.{name}" if self.options.tier_prefix else object_name(f"{tier}-{name}", repr(key))
        if (kind, key.namespace, name) in used:
            name = f"{name}-{short_hash(repr(key))}"
        used.add((kind, key.namespace, name))
        spec: dict[str, Any] = {"tier": key.tier.name,
                                "order": ORDER[Action(action)] if action else 1000}
        if key.namespace:
            spec["selector"] = expression(key.subject.pods, pod_key)
        else:
            spec["selector"] = expression(key.subject.pods, pod_key, (f"{ORCHESTRATOR} == \"k8s\"",))
            spec["namespaceSelector"] = expression(key.subject.namespaces, namespace_key)
        spec["types"] = [d.value.capitalize() for d in (Direction.INGRESS, Direction.EGRESS) if d in pol.types]
        for direction in (Direction.INGRESS, Direction.EGRESS):
            if pol.rules.get(direction):
                spec[direction.value] = pol.rules[direction]
        if staged:
            spec = {"stagedAction": "Set", **spec}
        metadata = object_metadata(name, key.namespace or None, self.program.name, pol.origins)
        body = {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}
        filename = f"{kind.lower()}_{key.namespace + '_' if key.namespace else ''}{name}.yaml"
        return Manifest(kind, name, key.namespace or None, body, filename)


def _net_order(text: str) -> tuple[int, str]:
    return (6 if ":" in text else 4, text)


__all__ = ["CalicoTarget"]

"""Target ``kubernetes``: networking.k8s.io/v1 NetworkPolicy.

NetworkPolicy is allow-only, per namespace and unordered, so tiers, denies and
passes are compiled by exact subtraction (:mod:`netpol_dsl.ir.flatten`).  Every
intent it cannot express exactly (FQDN, HTTP, entities, cluster-wide
workloads, service accounts, ICMP) is an error naming the rule and the alternative.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from netpol_dsl.diagnostics import Code, CompileError, Diagnostic, Location, Severity
from netpol_dsl.ir.flatten import flatten
from netpol_dsl.ir.peers import Anything, DnsName, Entity, Network, Peer, Workloads, namespace_selector
from netpol_dsl.ir.ports import Ports, icmp_matches
from netpol_dsl.ir.program import Action, Direction, HttpMatch, Isolation, Program, Rule
from netpol_dsl.ir.selectors import NAMESPACE_NAME_LABEL, SERVICE_ACCOUNT_KEY, Selector
from netpol_dsl.provenance import object_metadata
from netpol_dsl.targets.base import (
    Capability,
    CapabilityNote,
    Manifest,
    Output,
    Support,
    Target,
    object_name,
    unlogged,
)
from netpol_dsl.targets.labelselector import label_selector, slug
from netpol_dsl.targets.networks import outside_cluster

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
_GROUP_NAMES = {"dns": "allow-dns", "logging": "allow-logging", "monitoring": "allow-monitoring"}

Y, P, N = Support.YES, Support.PARTIAL, Support.NO


def selector_body(selector: Selector) -> dict[str, Any]:
    return label_selector(selector)


@attrs.frozen(order=True)
class _Key:
    namespace: str
    subject: Selector
    group: str


class _Policy:
    def __init__(self) -> None:
        self.types: set[Direction] = set()
        self.rules: dict[Direction, list[Rule]] = defaultdict(list)
        self.origins: set[Location] = set()


@attrs.frozen
class KubernetesTarget(Target):
    name: ClassVar[str] = "kubernetes"
    capabilities: ClassVar[Mapping[Capability, CapabilityNote]] = {
        Capability.POD_SELECTORS: CapabilityNote(Y, "podSelector AND namespaceSelector in one peer"),
        Capability.CIDR: CapabilityNote(Y, "ipBlock with except; cluster CIDRs carved out"),
        Capability.FQDN: CapabilityNote(N, "error NPD201"),
        Capability.HTTP: CapabilityNote(N, "error NPD202"),
        Capability.DENY: CapabilityNote(P, "by exact subtraction from allows (NPD205 where impossible)"),
        Capability.TIERS: CapabilityNote(P, "flattened: higher-tier denies and passes carve lower allows"),
        Capability.CLUSTER_WIDE: CapabilityNote(N, "one namespace per policy; error NPD204"),
        Capability.SERVICE_ACCOUNTS: CapabilityNote(N, "error NPD211; select by a pod label"),
        Capability.ENTITIES: CapabilityNote(N, "error NPD203; world is a CIDR"),
        Capability.PORT_RANGES: CapabilityNote(Y, "endPort (Kubernetes 1.25+)"),
        Capability.NAMED_PORTS: CapabilityNote(Y),
        Capability.SCTP: CapabilityNote(Y),
        Capability.ICMP: CapabilityNote(N, "error NPD215 for allows; rules without ports allow all traffic, ICMP "
                                           "included"),
        Capability.DOMAIN_BLOCKLIST: CapabilityNote(N, "error NPD209"),
    }

    def compile(self, program: Program) -> Output:
        return _Compiler(program).run()


class _Compiler:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.diags: list[Diagnostic] = []
        self.policies: dict[_Key, _Policy] = defaultdict(_Policy)

    def error(self, code: Code, what: str, location: Location, problem: str, hint: str) -> None:
        self.diags.append(Diagnostic(
            code, f"{what} {problem}; target 'kubernetes' cannot express it", location, hint=hint))

    def namespace_of(self, subject: Workloads, what: str, location: Location) -> str | None:
        """The one namespace of a subject ('' when it selects nothing), checking other namespace
        requirements against the declared namespace labels."""
        name = subject.namespace
        if name is None:
            self.error(Code.NPD204, what, location,
                       f"applies to workloads in several namespaces ({subject.describe()})",
                       "NetworkPolicy lives in one namespace: name the namespace with namespace(...).pods(...); "
                       "cluster-wide workloads need Cilium or Calico cluster-wide policies")
            return None
        rest = subject.namespaces.without(NAMESPACE_NAME_LABEL)
        if rest.is_all:
            return name
        labels = self.program.cluster.labels_of(name)
        # declared labels are what we know, not necessarily all there is: a requirement on any other key
        # (even 'absent') cannot be decided when compiling
        if labels is None or any(c.key not in labels for c in rest.constraints):
            self.error(Code.NPD204, what, location, f"depends on labels of namespace {name!r} that the module does "
                       "not declare", f"declare them: namespace({name!r}, labels={{...}})")
            return None
        labels[NAMESPACE_NAME_LABEL] = name
        return name if rest.matches(labels) else ""

    def check(self, rule: Rule) -> bool:
        """Whether NetworkPolicy can express the rule at all; reports why not."""
        peer = rule.peer
        what, loc = f"{rule.action.value} '{rule.flow}'", rule.location
        # both sides, sorted: the two halves of a rule give one message
        by_account = sorted({w.describe() for w in (rule.subject, peer)
                             if isinstance(w, Workloads) and w.pods.get(SERVICE_ACCOUNT_KEY) is not None})
        if by_account:
            self.error(Code.NPD211, what, loc, f"selects pods by service account ({' and '.join(by_account)})",
                       "NetworkPolicy selects pods only by labels: select them by a pod label instead "
                       "(namespace(...).pods(app=...)), or build for 'cilium' or 'calico', which select by service "
                       "account")
            return False
        if isinstance(peer, DnsName) and rule.action is not Action.ALLOW:
            self.error(Code.NPD209, what, loc, f"matches traffic by the DNS name {peer.pattern}",
                       "block the provider's CIDRs with blocked_cidrs= instead; no engine can deny by DNS name "
                       "except Calico Enterprise")
            return False
        if isinstance(peer, DnsName):
            self.error(Code.NPD201, what, loc, f"needs FQDN egress to {peer.pattern}",
                       "allow an explicit cidr(...) instead (narrower); FQDN egress needs Cilium's toFQDNs")
            return False
        if rule.http:
            self.error(Code.NPD202, what, loc, "needs HTTP (L7) matching",
                       "drop http= to allow the whole port (wider: your decision); HTTP rules need Cilium's L7 policy")
            return False
        if isinstance(peer, Entity):
            self.error(Code.NPD203, what, loc, f"needs the entity '{peer.kind.value}'",
                       "use all_pods() or cidr(...) for what NetworkPolicy can select; entities need Cilium")
            return False
        icmp = icmp_matches(rule.ports)
        # only allows are written out: a deny or pass of ICMP is subtracted exactly (nothing of TCP, UDP or
        # SCTP to remove; from "all traffic" it is NotExact, NPD206/NPD210)
        if icmp and rule.action is Action.ALLOW:
            self.error(Code.NPD215, what, loc, f"matches ICMP ({','.join(p.describe() for p in icmp)})",
                       "NetworkPolicy ports are TCP, UDP and SCTP only: allow all traffic with no ports (wider: your "
                       "decision), or build for 'cilium' or 'calico', which match ICMP types")
            return False
        return True

    def run(self) -> Output:
        program = self.program
        self.diags += unlogged(program, "kubernetes", "NetworkPolicy has no logging")
        # report what NetworkPolicy cannot express first, and flatten only the rest
        expressible = tuple(r for r in program.rules if self.check(r))
        flat = flatten(attrs.evolve(program, rules=expressible))
        self.diags += flat.diagnostics
        baseline_iso = {(i.subject, i.direction) for i in program.isolations}
        for rule in flat.allows:
            ns = self.namespace_of(rule.subject, f"{rule.action.value} '{rule.flow}'", rule.location)
            if not ns:
                continue
            pol = self.policies[_Key(ns, rule.subject.pods, rule.group)]
            pol.types.add(rule.direction)
            pol.rules[rule.direction].append(rule)
            pol.origins.update(rule.origins)
        for iso in flat.isolations:
            loc = iso.origins[0] if iso.origins else program.location
            ns = self.namespace_of(iso.subject, f"the default deny ({iso.direction.value})", loc)
            if not ns:
                continue
            baseline = (iso.subject, iso.direction) in baseline_iso
            if not baseline and self.isolated_already(ns, iso):
                continue
            pol = self.policies[_Key(ns, iso.subject.pods, "default-deny" if baseline else "")]
            pol.types.add(iso.direction)
            pol.origins.update(iso.origins)
        manifests = []
        used: dict[tuple[str, str], _Key] = {}
        for key in sorted(self.policies):
            manifests.append(self.manifest(key, self.policies[key], used))
        errors = [d for d in self.diags if d.severity is Severity.ERROR]
        if errors:
            raise CompileError(sorted(set(self.diags), key=lambda d: (d.location, d.code.name, d.message)))
        warnings = sorted(set(self.diags), key=lambda d: (d.location, d.code.name, d.message))
        return Output(tuple(sorted(manifests, key=lambda m: (m.namespace or "", m.name))), tuple(warnings))

    def isolated_already(self, namespace: str, iso: Isolation) -> bool:
        """Whether a baseline default deny, or a policy emitted for exactly these pods, already isolates them."""
        if any(b.direction is iso.direction and iso.subject.issubset(b.subject) for b in self.program.isolations):
            return True
        return any(k.namespace == namespace and k.subject == iso.subject.pods and iso.direction in p.types
                   for k, p in self.policies.items())

    def manifest(self, key: _Key, pol: _Policy, used: dict[tuple[str, str], _Key]) -> Manifest:
        base = {"default-deny": "default-deny"}.get(key.group) or _GROUP_NAMES.get(key.group) or slug(key.subject)
        if key.group in _GROUP_NAMES and not key.subject.is_all:
            base = f"{base}-{slug(key.subject)}"
        name = object_name(base, repr(key))
        if (key.namespace, name) in used:
            name = object_name(base + "-x", repr(key), limit=len(base) + 8)
        used[(key.namespace, name)] = key
        spec: dict[str, Any] = {
            "podSelector": selector_body(key.subject),
            "policyTypes": [d.value.capitalize() for d in (Direction.INGRESS, Direction.EGRESS) if d in pol.types],
        }
        for direction, field, peers in ((Direction.INGRESS, "ingress", "from"), (Direction.EGRESS, "egress", "to")):
            rendered = self.rules(key.namespace, pol.rules[direction], peers)
            if rendered:
                spec[field] = rendered
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": object_metadata(name, key.namespace, self.program.name, pol.origins),
            "spec": spec,
        }
        return Manifest(KIND, name, key.namespace, body, f"networkpolicy_{key.namespace}_{name}.yaml")

    def rules(self, namespace: str, rules: list[Rule], field: str) -> list[dict[str, Any]]:
        by_traffic: dict[tuple[Ports, tuple[HttpMatch, ...]], list[Rule]] = defaultdict(list)
        for r in rules:
            by_traffic[(r.ports, r.http)].append(r)
        out = []
        for (ports, _http), group in sorted(by_traffic.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or ())):
            entry: dict[str, Any] = {}
            if not any(isinstance(r.peer, Anything) for r in group):
                rendered = []
                for r in group:
                    rendered += self.peer(namespace, r.peer, r)
                if not rendered:
                    continue  # every peer was carved away; an empty list would mean "all peers"
                entry[field] = _dedupe(rendered)
            if ports is not None:
                entry["ports"] = [_port(p.protocol, p.first, p.last, p.name) for p in ports]
            out.append(entry)
        return out

    def peer(self, namespace: str, peer: Peer, rule: Rule) -> list[dict[str, Any]]:
        if isinstance(peer, Workloads):
            if peer.namespaces == namespace_selector(namespace):
                return [{"podSelector": selector_body(peer.pods)}]
            item: dict[str, Any] = {"namespaceSelector": selector_body(peer.namespaces)}
            if not peer.pods.is_all:
                item["podSelector"] = selector_body(peer.pods)
            return [item]
        if isinstance(peer, Network):
            return [{"ipBlock": _ip_block(n)} for n in self.external(peer, rule)]
        raise AssertionError(f"unchecked peer {peer!r}")

    def external(self, net: Network, rule: Rule) -> list[Network]:
        """Carve the cluster's own CIDRs out: ipBlock must never match pods (it does on some engines)."""
        pieces, problem = outside_cluster(net, rule, self.program.cluster, "ipBlock (on some engines)")
        if problem is not None:
            self.diags.append(problem)
        return pieces


def _ip_block(net: Network) -> dict[str, Any]:
    block: dict[str, Any] = {"cidr": str(net.cidr)}
    if net.excepts:
        block["except"] = [str(e) for e in net.excepts]
    return block


def _port(protocol: str, first: int, last: int, name: str) -> dict[str, Any]:
    port: dict[str, Any] = {"protocol": protocol}
    if name:
        port["port"] = name
    elif first:
        port["port"] = first
        if last != first:
            port["endPort"] = last
    return port


def _dedupe(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for i in items:
        if i not in seen:
            seen.append(i)
    return seen

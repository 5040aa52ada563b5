"""Target ``cilium``: cilium.io/v2 CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy.

Cilium has deny (``ingressDeny``/``egressDeny``, which beats every allow) but no order
beyond that, so tiers are compiled by :func:`netpol_dsl.ir.flatten.layer`: allows lose what
a pass of their tier covers, denies lose what an allow of an earlier tier decides.
Workloads in one named namespace get a CNP; anything that selects by namespace labels
(honoured only cluster-wide) or spans namespaces gets a CCNP.  Deny-only objects set
``enableDefaultDeny: false`` (Cilium 1.16+) so that a deny never puts a workload into
default deny; allow objects do put their subjects into default deny, as the intent says.
An FQDN allow comes with the DNS rule Cilium's proxy needs, for exactly its names.

The option ``version`` (1.14-1.20, default 1.16) says which Cilium the output is for.  Before 1.16
there is no ``enableDefaultDeny``: a deny-only object is written without it only where every
workload it selects is default-deny in that direction anyway (baseline default deny, or an allow
list of ours for a superset), else NPD212.  Before 1.16 there is no ``endPort`` either, and before
1.17 none on ports with HTTP rules: a range becomes single ports (at most 40 per toPorts entry,
else NPD213) and "all ports" of a protocol becomes ``port: "0"`` (refused with L7 rules: NPD213).
FQDN patterns with a leading ``**.`` match any depth only from 1.19 (before: NPD214).  From 1.18
the baseline blocklist is one ``CiliumCIDRGroup`` (cilium.io/v2 since 1.18) referred to by ``cidrGroupRef``.

ICMP and ICMPv6 types become ``icmps`` fields, in a rule of their own (Cilium refuses ``icmps`` with
``toPorts``).  Cilium keeps an ICMP type where other protocols keep the port, and port 0 is its
wildcard: ``type: 0`` matches every type of its family (cilium/cilium#41304, open).  So type 0 is
written only as part of every type (all 256 listed), and a rule with type 0 but not every type is NPD215.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from netpol_dsl.diagnostics import Code, CompileError, Diagnostic, Location, Severity
from netpol_dsl.ir.flatten import layer
from netpol_dsl.ir.peers import DnsName, Network, Workloads
from netpol_dsl.ir.ports import describe_ports, icmp_matches
from netpol_dsl.ir.program import Action, Direction, Isolation, Program, Rule
from netpol_dsl.ir.selectors import NAMESPACE_NAME_LABEL
from netpol_dsl.provenance import object_metadata
from netpol_dsl.targets.base import (
    Capability,
    CapabilityNote,
    Manifest,
    Output,
    Support,
    Target,
    object_name,
    option,
    parse_choice,
    unlogged,
    version_at_least,
)
from netpol_dsl.targets.cilium.render import (
    MAX_PORTS,
    Features,
    identity_selector,
    needs_clusterwide,
    pod_selector,
    port_problem,
    section,
)
from netpol_dsl.targets.labelselector import slug, workloads_slug

API_VERSION = "cilium.io/v2"
CNP = "CiliumNetworkPolicy"
CCNP = "CiliumClusterwideNetworkPolicy"
CIDR_GROUP = "CiliumCIDRGroup"
VERSIONS = ("1.14", "1.15", "1.16", "1.17", "1.18", "1.19", "1.20")
DEFAULT_DENY_TOGGLE = "1.16"  # enableDefaultDeny (cilium/cilium#30572)
END_PORT = "1.16"  # endPort (cilium/cilium#32807)
L7_PORT_RANGES = "1.17"  # endPort on ports with HTTP rules (1.16 rejects them: cilium/cilium#36050)
CIDR_GROUP_V2 = "1.18"  # CiliumCIDRGroup in cilium.io/v2 (cilium/cilium#38940; v2alpha1 before)
MULTI_LEVEL_WILDCARD = "1.19"  # matchPattern "**." for any depth (cilium/cilium#43420); before: "**" is "*"

Y, P, N = Support.YES, Support.PARTIAL, Support.NO


@attrs.frozen(order=True)
class _Key:
    clusterwide: bool
    namespace: str  # "" for clusterwide
    subject: Workloads
    group: str
    deny_only: bool


class _Policy:
    def __init__(self) -> None:
        self.sections: dict[str, list[Rule]] = defaultdict(list)
        self.origins: set[Location] = set()
        self.isolate: set[Direction] = set()


@attrs.frozen
class CiliumTarget(Target):
    name: ClassVar[str] = "cilium"
    capabilities: ClassVar[Mapping[Capability, CapabilityNote]] = {
        Capability.POD_SELECTORS: CapabilityNote(Y, "identity labels; namespace labels via CCNP"),
        Capability.CIDR: CapabilityNote(Y, "toCIDRSet/fromCIDRSet with except; never matches pods"),
        Capability.FQDN: CapabilityNote(Y, "toFQDNs plus the DNS proxy rule for exactly those names"),
        Capability.HTTP: CapabilityNote(Y, "toPorts rules.http (the whole port becomes L7)"),
        Capability.DENY: CapabilityNote(Y, "ingressDeny/egressDeny (L3/L4), enableDefaultDeny: false (1.16+; before, "
                                           "NPD212 unless already default-deny)"),
        Capability.TIERS: CapabilityNote(P, "deny beats allow; earlier-tier allows carve later denies"),
        Capability.CLUSTER_WIDE: CapabilityNote(Y, "CiliumClusterwideNetworkPolicy"),
        Capability.SERVICE_ACCOUNTS: CapabilityNote(Y, "io.cilium.k8s.policy.serviceaccount"),
        Capability.ENTITIES: CapabilityNote(Y, "toEntities/fromEntities"),
        Capability.PORT_RANGES: CapabilityNote(Y, f"endPort (Cilium {END_PORT}+; single ports before, NPD213 "
                                                  f"above {MAX_PORTS})"),
        Capability.NAMED_PORTS: CapabilityNote(Y),
        Capability.SCTP: CapabilityNote(Y),
        Capability.ICMP: CapabilityNote(P, "icmps fields, one per type (every type: 256 fields); type 0 only with "
                                           "every type of its family, Cilium reads it as all types: NPD215"),
        Capability.DOMAIN_BLOCKLIST: CapabilityNote(N, "deny rules have no toFQDNs: error NPD209"),
    }

    version: str = option("1.16", "Cilium version the output is for: " + ", ".join(VERSIONS) + "; before 1.16 "
                          "deny-only objects need an existing default deny (no enableDefaultDeny) and port ranges "
                          "become single ports (no endPort), before 1.17 also on ports with HTTP rules; "
                          "before 1.19 FQDN patterns '**.' are refused",
                          parse_choice(VERSIONS))

    def __attrs_post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"cilium.version: expected one of {', '.join(VERSIONS)}, got {self.version!r}")

    def at_least(self, version: str) -> bool:
        return version_at_least(self.version, version)

    @property
    def features(self) -> Features:
        return Features(end_port=self.at_least(END_PORT), l7_port_ranges=self.at_least(L7_PORT_RANGES))

    def compile(self, program: Program) -> Output:
        return _Compiler(program, self).run()


class _Compiler:
    def __init__(self, program: Program, options: CiliumTarget) -> None:
        self.program = program
        self.options = options
        self.features = options.features
        self.diags: list[Diagnostic] = []
        self.policies: dict[_Key, _Policy] = defaultdict(_Policy)
        self.group_of: dict[Rule, str] = {}  # blocklist denies -> the CiliumCIDRGroup they refer to
        self.group_origins: set[Location] = set()

    def check(self, rule: Rule) -> bool:
        if rule.action is not Action.ALLOW and isinstance(rule.peer, DnsName):
            self.diags.append(Diagnostic(
                Code.NPD209, f"{rule.action.value} '{rule.flow}' matches traffic by the DNS name {rule.peer.pattern}; "
                "target 'cilium' cannot express it (deny rules have no toFQDNs)", rule.location,
                hint="block the provider's CIDRs with blocked_cidrs= instead"))
            return False
        if isinstance(rule.peer, DnsName) and rule.peer.pattern.startswith("**.") \
                and not self.options.at_least(MULTI_LEVEL_WILDCARD):
            self.diags.append(Diagnostic(
                Code.NPD214, f"{rule.action.value} '{rule.flow}' matches {rule.peer.pattern} at any depth; Cilium "
                f"{self.options.version} reads '**' as '*' (one label), so the output would allow less than the "
                "intent", rule.location,
                hint=f"build for Cilium {MULTI_LEVEL_WILDCARD} or later (-O cilium.version={MULTI_LEVEL_WILDCARD}), "
                "or list each depth you need ('*.example.com', '*.*.example.com')"))
            return False
        return True

    def key(self, subject: Workloads, group: str, deny_only: bool, peers_clusterwide: bool) -> _Key:
        name = subject.namespace
        rest = subject.namespaces.without(NAMESPACE_NAME_LABEL)
        if name is not None and rest.is_all and not peers_clusterwide:
            return _Key(False, name, subject, group, deny_only)
        return _Key(True, "", subject, group, deny_only)

    def run(self) -> Output:
        self.diags += unlogged(self.program, "cilium", "Cilium has no per-rule log; Hubble shows the flows")
        program = attrs.evolve(self.program, rules=tuple(r for r in self.program.rules if self.check(r)))
        layered = layer(program)
        self.diags += layered.diagnostics
        for r in (*layered.allows, *layered.denies):
            self.check_ports(r)
            self.check_icmp(r)
        for r in layered.allows:
            if r.http:
                self.diags.append(Diagnostic(
                    Code.NPD301, f"allow '{r.flow}' puts HTTP rules on {describe_ports(r.ports)}: Cilium sends every "
                    "connection on that port between these workloads through its HTTP proxy, so other requests get "
                    "403 and non-HTTP traffic (websockets, raw TCP) is dropped", r.location, Severity.WARNING,
                    hint="give such traffic a port of its own"))
        by_subject: dict[tuple[Workloads, str, bool], list[Rule]] = defaultdict(list)
        for r in layered.allows:
            by_subject[(r.subject, r.group, False)].append(r)
        for r in layered.denies:
            by_subject[(r.subject, r.group, True)].append(r)
        for (subject, group, deny_only), rules in by_subject.items():
            clusterwide = any(isinstance(r.peer, Workloads) and needs_clusterwide(r.peer) for r in rules)
            pol = self.policies[self.key(subject, group, deny_only, clusterwide)]
            for r in rules:
                field = ("ingress" if r.direction is Direction.INGRESS else "egress") + ("Deny" if deny_only else "")
                pol.sections[field].append(r)
                pol.origins.update(r.origins)
        baseline = {(i.subject, i.direction) for i in program.isolations}
        for iso in layered.isolations:
            if (iso.subject, iso.direction) in baseline:
                pol = self.policies[self.key(iso.subject, "default-deny", False, False)]
            elif self.isolated_already(iso):
                continue
            else:  # carving left this allow's subject nothing: it must stay default-deny
                pol = self.policies[self.key(iso.subject, "", False, False)]
            pol.isolate.add(iso.direction)
            pol.origins.update(iso.origins)
        if not self.options.at_least(DEFAULT_DENY_TOGGLE):
            self.check_denies_isolate_nothing(layered.isolations)
        if any(d.severity is Severity.ERROR for d in self.diags):
            raise CompileError(sorted(set(self.diags), key=lambda d: (d.location, d.code.name, d.message)))
        self.plan_cidr_group(layered.denies)
        used: set[tuple[str, str, str]] = set()
        manifests = [self.manifest(k, self.policies[k], used) for k in sorted(self.policies)]
        manifests += self.cidr_groups()
        return Output(tuple(sorted(manifests, key=lambda m: m.filename)), tuple(self.diags))

    def plan_cidr_group(self, denies: tuple[Rule, ...] | list[Rule]) -> None:
        """From Cilium 1.18 (CiliumCIDRGroup in cilium.io/v2), the baseline blocklist as one CiliumCIDRGroup
        that every deny section refers to (one list to update, however many namespaces); a piece with
        ``except`` stays inline (cidrGroupRef has none)."""
        blocked = [r for r in denies if r.group == "blocklist" and isinstance(r.peer, Network) and not r.peer.excepts]
        if not blocked or not self.options.at_least(CIDR_GROUP_V2):
            return
        name = object_name(f"{self.program.name}-blocklist", self.program.name)
        self.group_of.update((r, name) for r in blocked)
        self.group_origins.update(loc for r in blocked for loc in r.origins)

    def cidr_groups(self) -> list[Manifest]:
        names = sorted(set(self.group_of.values()))
        out = []
        for name in names:
            cidrs = sorted({r.peer.cidr for r, n in self.group_of.items() if n == name and isinstance(r.peer, Network)},
                           key=lambda c: (c.version, c))
            body = {"apiVersion": API_VERSION, "kind": CIDR_GROUP,
                    "metadata": object_metadata(name, None, self.program.name, self.group_origins),
                    "spec": {"externalCIDRs": [str(c) for c in cidrs]}}
            out.append(Manifest(CIDR_GROUP, name, None, body, f"ciliumcidrgroup_{name}.yaml"))
        return out

    def check_ports(self, r: Rule) -> None:
        p = port_problem(r.ports, r.http, r.dns, self.features)
        if p is None:
            return
        version, l7 = self.options.version, "DNS" if r.dns else "HTTP" if r.http else ""
        if r.dns:
            limit, upgrade = "Cilium takes no port range on ports with DNS rules", ""
        elif r.http:
            limit, upgrade = f"Cilium {version} takes no port range on ports with HTTP rules", L7_PORT_RANGES
        else:
            limit, upgrade = f"Cilium {version} has no endPort", END_PORT
        what = f"every {p.protocol} port" if p.all_ports else f"the port range {p.describe()}"
        if l7:
            what += f" with {l7} rules"
        if p.all_ports:
            limit += " and refuses L7 rules on port 0 (every port)"
        size = 65535 if p.all_ports else p.last - p.first + 1
        hint = f"narrow the ports to at most {MAX_PORTS}"
        if upgrade:
            hint = f"build for Cilium {upgrade} or later (-O cilium.version={upgrade}), or " + hint
        self.diags.append(Diagnostic(  # once per flow and port, not per direction: the message names neither
            Code.NPD213,
            f"{r.action.value} '{r.flow}' matches {what}: {limit}, and as single ports it is "
            f"{size} ports, more than the {MAX_PORTS} one toPorts entry holds; target 'cilium' for Cilium {version} "
            "cannot express it", r.location, hint=hint))

    def check_icmp(self, r: Rule) -> None:
        """ICMP type 0 without every other type of its family: Cilium's ``type: 0`` matches them all."""
        for p in icmp_matches(r.ports):
            if p.all_ports or p.first != 0:
                continue
            every = "icmp()" if p.protocol == "ICMP" else "icmpv6()"
            types = ",".join(q.describe() for q in icmp_matches(r.ports) if q.protocol == p.protocol)
            why = ("the echo reply to an allowed echo request passes as its reply" if p.protocol == "ICMP"
                   else "ICMPv6 type 0 is reserved")
            self.diags.append(Diagnostic(  # once per flow: the message names no direction
                Code.NPD215,
                f"{r.action.value} '{r.flow}' matches {p.protocol} type 0 but not every {p.protocol} type "
                f"({types}): Cilium reads 'type: 0' as every type of the family (cilium/cilium#41304), so "
                f"the output would {r.action.value} more than the intent; target 'cilium' cannot express it",
                r.location,
                hint=f"leave type 0 out ({why}), or match every type with {every}"))

    def check_denies_isolate_nothing(self, isolations: tuple[Isolation, ...]) -> None:
        """Without enableDefaultDeny a deny section puts its subjects into default deny for its direction:
        harmless only where the output isolates them there anyway (baseline default deny, allow lists)."""
        for key, pol in self.policies.items():
            if not key.deny_only:
                continue
            for field, rules in sorted(pol.sections.items()):
                direction = Direction.INGRESS if field.startswith("ingress") else Direction.EGRESS
                if any(i.direction is direction and key.subject.issubset(i.subject) for i in isolations):
                    continue
                d = direction.value
                for r in rules:
                    self.diags.append(Diagnostic(
                        Code.NPD212,
                        f"{r.action.value} '{r.flow}' ({r.describe()}) would put {key.subject.describe()} into "
                        f"default deny for {d}: Cilium {self.options.version} has no enableDefaultDeny "
                        f"({DEFAULT_DENY_TOGGLE}+), so its {field} section isolates the pods it selects, and nothing "
                        f"else in the output makes them default-deny for {d}",
                        r.location,
                        hint=f"build for Cilium {DEFAULT_DENY_TOGGLE} or later (-O cilium.version="
                        f"{DEFAULT_DENY_TOGGLE}), or add a default deny ({d}) for these workloads: "
                        f"baseline(default_deny=...) for their namespace, or an {d} allow list of their own"))

    def isolated_already(self, iso: Isolation) -> bool:
        """A baseline default deny covering these pods, or an allow section for exactly them."""
        if any(b.direction is iso.direction and iso.subject.issubset(b.subject) for b in self.program.isolations):
            return True
        field = "ingress" if iso.direction is Direction.INGRESS else "egress"
        return any(k.subject == iso.subject and not k.deny_only and p.sections.get(field)
                   for k, p in self.policies.items())

    def manifest(self, key: _Key, pol: _Policy, used: set[tuple[str, str, str]]) -> Manifest:
        kind = CCNP if key.clusterwide else CNP
        base = {"": "", "default-deny": "default-deny", "dns": "allow-dns", "logging": "allow-logging",
                "monitoring": "allow-monitoring", "fqdn-dns": "fqdn-dns", "blocklist": "blocklist",
                "metadata": "block-metadata"}.get(key.group, key.group)
        subject = slug(key.subject.pods)
        if key.clusterwide:
            subject = workloads_slug(key.subject)
        if not base:
            base = subject
        elif not key.subject.pods.is_all or key.clusterwide:
            base = f"{base}-{subject}"
        if key.deny_only and key.group == "":
            base = f"{base}-deny"
        if key.clusterwide:
            base = f"{self.program.name}-{base}"
        name = object_name(base, repr(key))
        if (kind, key.namespace, name) in used:
            name = object_name(base + "-x", repr(key), limit=len(base) + 8)
        used.add((kind, key.namespace, name))
        spec: dict[str, Any] = {
            "endpointSelector": pod_selector(key.subject.pods) if not key.clusterwide
            else identity_selector(key.subject),
        }
        for field in ("ingress", "egress", "ingressDeny", "egressDeny"):
            direction = Direction.INGRESS if field.startswith("ingress") else Direction.EGRESS
            rules = pol.sections.get(field)
            if rules:
                spec[field] = section(rules, direction, deny=field.endswith("Deny"), features=self.features,
                                      cidr_groups=self.group_of)
            elif field == direction.value and direction in pol.isolate:
                spec[field] = [{}]  # an empty rule: default deny, nothing allowed
        if key.deny_only and self.options.at_least(DEFAULT_DENY_TOGGLE):
            spec["enableDefaultDeny"] = {"ingress": False, "egress": False}
        metadata = object_metadata(name, None if key.clusterwide else key.namespace, self.program.name, pol.origins)
        body = {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}
        filename = (f"ciliumclusterwidenetworkpolicy_{name}.yaml" if key.clusterwide
                    else f"ciliumnetworkpolicy_{key.namespace}_{name}.yaml")
        return Manifest(kind, name, key.namespace or None, body, filename)


__all__ = ["CiliumTarget"]

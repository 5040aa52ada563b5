"""CIDR peers on engines whose CIDR rules also match pod and node addresses (NetworkPolicy ipBlock on
some engines, Calico ``nets`` always): the cluster's own CIDRs are carved out, so that a CIDR zone
stays what the intent says, external addresses only."""

from __future__ import annotations

import ipaddress

from netpol_dsl.diagnostics import Code, Diagnostic
from netpol_dsl.ir.peers import Network, exclude
from netpol_dsl.ir.program import Action, ClusterFacts, Rule
from netpol_dsl.values import IPNetwork

# address space where pod and service IPs usually live
PRIVATE = tuple(ipaddress.ip_network(n) for n in
                ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))


def outside_cluster(
    net: Network, rule: Rule, facts: ClusterFacts, what: str
) -> tuple[list[Network], Diagnostic | None]:
    """``net`` minus the declared pod, service and node CIDRs; without those declarations, ``net`` itself and
    an NPD207 error when it overlaps private address space (``what`` names the construct, e.g. "ipBlock")."""
    if not facts.pod_cidrs or not facts.node_cidrs:
        if any(net.cidr.version == p.version and net.cidr.overlaps(p) for p in PRIVATE):
            return [net], Diagnostic(
                Code.NPD207,
                f"{rule.action.value} '{rule.flow}' reaches {net.describe()}, which overlaps private address space "
                f"where pod and node IPs live; {what} also matches pods and nodes, so the output could "
                + ("allow more than the intent" if rule.action is Action.ALLOW else
                   f"{rule.action.value} more than the intent"),
                rule.location,
                hint="declare cluster=cluster_info(pod_cidrs=[...], node_cidrs=[...]) so they are carved out",
            )
        return [net], None
    pieces = [net]
    for c in (*facts.pod_cidrs, *facts.service_cidrs, *facts.node_cidrs):
        pieces = [q for p in pieces for q in p.minus(Network(c))]
    return pieces, None


def expand(net: Network) -> list[IPNetwork]:
    """The CIDRs that make up ``net`` without its exceptions (for sets that cannot say "except")."""
    return exclude(net.cidr, net.excepts)

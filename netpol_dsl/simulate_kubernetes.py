"""``--engine kubernetes`` of the simulator: plain NetworkPolicy (netpol_dsl.engines.kubernetes) behind
:class:`~netpol_dsl.simulate.SimEngine`.  Registered by :mod:`netpol_dsl.simulate`, which loads it on first use."""

from __future__ import annotations

from collections.abc import Sequence

from netpol_dsl.endpoints import Connection, Endpoint, Pod
from netpol_dsl.engines.kubernetes import KubernetesEngine, SideTrace, Trace, validate
from netpol_dsl.inventory import InputError, Inventory
from netpol_dsl.simulate import Decision, Manifest, Query, _describe, _provenance, _what, cluster_dns_lookup


class KubernetesSimulator:
    """``--engine kubernetes``: plain NetworkPolicy (netpol_dsl.engines.kubernetes)."""

    name = "kubernetes"

    def __init__(self, manifests: Sequence[Manifest], inventory: Inventory) -> None:
        bodies = [m.body for m in manifests]
        problems = [f"{manifests[e.position].where}: {e.detail} (engine kubernetes)" for e in validate(bodies)]
        self.where: dict[str, str] = {}
        for manifest in manifests:
            metadata = manifest.body.get("metadata") or {}
            ident = f"{metadata.get('namespace') or 'default'}/{metadata.get('name')}"
            if ident in self.where:
                problems.append(f"{manifest.where}: NetworkPolicy {ident} is defined twice "
                                f"(first at {self.where[ident]}); the API server would keep one")
            self.where.setdefault(ident, manifest.where)
        if problems:
            raise InputError(problems)
        self.engine = KubernetesEngine(bodies)
        self.inventory = inventory

    def decide(self, query: Query, conn: Connection) -> Decision:
        verdict = self.engine.evaluate(conn)
        lines = list(verdict.explanation)
        trace = self.engine.trace(conn)
        for side in (trace.egress, trace.ingress):
            for rule in side.allowing if side else ():
                if rule.policy.source:
                    lines.insert(-1, f"{rule.label} comes from {rule.policy.source}")
        if query.icmp is not None:  # the engine says icmp/0; there is no port
            lines = [line.replace(f" {query.protocol.lower()}/0", f" {query.protocol.lower()}") for line in lines]
            lines.insert(-1, f"{query.protocol} type {query.icmp[0]} code {query.icmp[1]}: NetworkPolicy has no "
                             "ICMP match; only rules without ports allow it")
        if query.http is not None:
            lines.insert(-1, "http: NetworkPolicy cannot see HTTP; the request is opaque bytes, "
                             "allowed iff the connection is")
        return Decision("allow" if verdict.allowed else "drop", tuple(lines))

    def dns(self, client: Endpoint, lookup: str) -> Decision:
        return cluster_dns_lookup(self.engine.evaluate, self.inventory, client, lookup)

    def reachability(self, sources: Sequence[Pod], destinations: Sequence[Pod], protocol: str,
                     port: int) -> list[int]:
        return self.engine.reachability(sources, destinations, protocol, port)

    def explain(self, conn: Connection) -> list[str]:
        trace = self.engine.trace(conn)
        lines = [f"connection: {_describe(conn)}", "engine: kubernetes (networking.k8s.io/v1 NetworkPolicy)"]
        if trace.loopback:
            lines += ["", f"{conn.src.describe()} talks to itself: loopback traffic never passes NetworkPolicy",
                      "", "verdict: allow"]
            return lines
        assert trace.egress is not None and trace.ingress is not None
        lines += ["", *self._explain_side(1, trace.egress, conn)]
        lines += ["", *self._explain_side(2, trace.ingress, conn)]
        lines += ["", f"verdict: {'allow' if trace.allowed else 'drop'}" + self._blame(trace)]
        return lines

    @staticmethod
    def _blame(trace: Trace) -> str:
        denied = [s.direction for s in (trace.egress, trace.ingress) if s is not None and not s.allowed]
        return f" (denied by {' and '.join(denied)})" if denied else ""

    def _explain_side(self, step: int, side: SideTrace, conn: Connection) -> list[str]:
        role = "source" if side.direction == "egress" else "destination"
        kind = side.direction.capitalize()
        lines = [f"{step}. {side.direction} at the {role} {side.subject.describe()}"]
        if side.reason == "not-a-pod":
            return [*lines, f"   {side.subject.describe()} is not a pod: no NetworkPolicy applies",
                    f"   => {side.direction} allowed"]
        if side.reason == "own-node":
            return [*lines, f"   the source is the pod's own node {side.peer.describe()}: always allowed",
                    f"   => {side.direction} allowed"]
        if side.reason == "not-isolated":
            return [*lines, f"   no NetworkPolicy with policyType {kind} selects it: not isolated for {side.direction}",
                    f"   => {side.direction} allowed"]
        lines.append(f"   selected by (policyType {kind}):")
        width = max(len(p.ident) for p in side.selecting)
        for policy in side.selecting:
            lines.append(f"     {policy.ident:<{width}}  podSelector {policy.pod_selector}  "
                         f"[{', '.join(policy.types)}]")
            lines.append(f"     {'':<{width}}  from {_provenance(policy.source, self.where.get(policy.ident, '?'))}")
        lines.append(f"   isolated for {side.direction}: only what one of their {side.direction} rules allows passes")
        field = "to" if side.direction == "egress" else "from"
        if not side.rules:
            lines.append(f"   they have no {side.direction} rules (default deny)")
        for rule in side.rules:
            if rule.matched:
                lines.append(f"   {rule.label}: matches ({field}: {rule.peers}; ports: {rule.ports})")
                continue
            why = []
            if not rule.peer_ok:
                why.append(f"{side.peer.describe()} does not match {field}: {rule.peers}")
            if not rule.port_ok:
                why.append(f"{_what(conn)} does not match ports: {rule.ports}")
            lines.append(f"   {rule.label}: no match: {'; and '.join(why)}")
        if side.allowing:
            for rule in side.allowing:
                source = f" (netpol-dsl source {rule.policy.source})" if rule.policy.source else ""
                lines.append(f"   => {side.direction} allowed by {rule.label}{source}")
        else:
            lines.append(f"   => {side.direction} denied: no {side.direction} rule of a selecting policy matches")
        return lines

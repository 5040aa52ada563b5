"""``--engine calico`` of the simulator: Calico's semantics (netpol_dsl.engines.calico) behind :class:`SimEngine`.

Registered by :mod:`netpol_dsl.simulate` (which this module imports, so it is loaded lazily from there).
What it adds to the evaluator (docs/simulate.md, "The calico engine"):

* **Inventory.** Namespace labels (for NetworkSets selected through a ``namespaceSelector``) and, on
  each pod, its ServiceAccount's labels come from the inventory.
* **ICMP.** The query's ``icmp`` type and code (by default echo request, code 0) are matched against
  ``icmp``/``notICMP``; ``src_port`` against source ``ports``/``notPorts``.
* **HTTP.** Felix does not enforce ``http`` matches (Istio ALP does): a query's ``http`` request is
  opaque bytes, allowed iff the connection is.
* **Provenance.** Explanations name the manifest file and document of every policy they mention and,
  for manifests netpol-dsl built, its ``netpol-dsl.dev/source`` annotation.
* **Matrix.** Naive per-pair evaluation (the identity fast path is kubernetes-only for now).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from netpol_dsl.endpoints import Connection, Endpoint, Pod
from netpol_dsl.engines.calico import CalicoEngine, ManifestError, SideTrace, TierTrace, Trace, parse_documents
from netpol_dsl.engines.calico.model import Direction, Policy
from netpol_dsl.inventory import InputError, Inventory
from netpol_dsl.simulate import (
    ICMP_PROTOCOLS,
    Decision,
    Manifest,
    Query,
    _describe,
    cluster_dns_lookup,
    pairwise_reachability,
)
from netpol_dsl.simulate_origins import ManifestOrigins

_CALICO = "projectcalico.org/v3"
_ENGINE_LINE = ("engine: calico (projectcalico.org/v3 Tier, GlobalNetworkPolicy, NetworkPolicy, GlobalNetworkSet, "
                "NetworkSet; networking.k8s.io/v1 NetworkPolicy the Calico way)")


def _object_ident(body: Mapping[str, Any]) -> str | None:
    """The evaluator's name of a policy (``KIND namespace/name``, ``KIND name`` for global ones); None
    for anything else."""
    kind, api_version, metadata = body.get("kind"), body.get("apiVersion"), body.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    name, namespace = metadata.get("name"), metadata.get("namespace") or "default"
    if api_version == "networking.k8s.io/v1" and kind == "NetworkPolicy":
        return f"KubernetesNetworkPolicy {namespace}/{name}"
    if api_version != _CALICO:
        return None
    if kind in ("GlobalNetworkPolicy", "GlobalNetworkSet", "Tier"):
        return f"{kind} {name}"
    if kind in ("NetworkPolicy", "NetworkSet"):
        return f"{kind} {namespace}/{name}"
    return None


class CalicoSimulator:
    """``--engine calico``: Calico tiers, (Global)NetworkPolicy, (Global)NetworkSet and plain NetworkPolicy."""

    name = "calico"

    def __init__(self, manifests: Sequence[Manifest], inventory: Inventory) -> None:
        self.origins = ManifestOrigins(manifests, _object_ident)
        problems = list(self.origins.problems)
        namespaces = {n.name: dict(n.labels) for n in inventory.namespaces}
        try:
            self.engine = CalicoEngine([m.body for m in manifests], namespaces)
        except ManifestError as first:
            problems += self._every_problem(manifests) or [f"{manifests[first.position].where}: {first.detail}"]
        if problems:
            raise InputError(f"{problem} (engine calico)" for problem in dict.fromkeys(problems))
        self.inventory = inventory
        self._rule_policy = {r.label: p for p in self.engine.policies for r in (*p.ingress, *p.egress)}

    @staticmethod
    def _every_problem(manifests: Sequence[Manifest]) -> list[str]:
        """Each document read with the Tiers (the evaluator stops at the first bad one; a policy needs the
        Tier it names)."""
        tiers = [m.body for m in manifests if m.body.get("kind") == "Tier" and m.body.get("apiVersion") == _CALICO]
        good_tiers = []
        for tier in tiers:
            try:
                parse_documents([tier])
            except ManifestError:
                continue
            good_tiers.append(tier)
        problems = []
        for manifest in manifests:
            context = [] if manifest.body in tiers else good_tiers
            try:
                parse_documents([*context, manifest.body])
            except ManifestError as exc:
                problems.append(f"{manifest.where}: {exc.detail}")
        return problems

    # -- provenance

    def _deciding(self, trace: Trace) -> list[str]:
        """``RULE comes from MODULE:LINE`` for every rule that decided a tier, if its policy has a source."""
        lines = []
        for side in (trace.egress, trace.ingress):
            for step in side.tiers:
                check = step.decided_by
                policy = self._rule_policy.get(check.rule.label) if check is not None else None
                source = self.origins.source.get(policy.ident, "") if policy is not None else ""
                if check is not None and source:
                    lines.append(f"{check.rule.label} comes from {source}")
        return list(dict.fromkeys(lines))

    # -- decisions

    @staticmethod
    def _icmp(conn: Connection, icmp: tuple[int, int] | None) -> tuple[Connection, int | None]:
        """The connection as the evaluator takes ICMP (``port`` carries the type) and the ICMP code."""
        if conn.protocol not in ICMP_PROTOCOLS:
            return conn, None
        kind, code = icmp if icmp is not None else ICMP_PROTOCOLS[conn.protocol]
        return Connection(conn.src, conn.dst, conn.protocol, kind, conn.http), code

    def decide(self, query: Query, conn: Connection) -> Decision:
        conn, code = self._icmp(conn, query.icmp)
        verdict = self.engine.evaluate(conn, src_port=query.src_port, icmp_code=code)
        lines = list(verdict.explanation)
        if verdict.trace is not None:
            lines[-1:-1] = self._deciding(verdict.trace)
        if query.icmp is not None:
            lines = [line.replace(f" {query.protocol.lower()}/{conn.port}:", f" {query.protocol.lower()}:")
                     for line in lines]
            lines.insert(-1, f"{query.protocol} type {query.icmp[0]} code {query.icmp[1]}: matched against the "
                             "rules' icmp/notICMP type and code")
        if query.http is not None:
            lines.insert(-1, "http: Felix does not see HTTP (only Istio Application Layer Policy does); the request "
                             "is opaque bytes, allowed iff the connection is")
        return Decision("allow" if verdict.allowed else "drop", tuple(lines))

    def dns(self, client: Endpoint, lookup: str) -> Decision:
        return cluster_dns_lookup(self.engine.evaluate, self.inventory, client, lookup)

    def reachability(self, sources: Sequence[Pod], destinations: Sequence[Pod], protocol: str,
                     port: int) -> list[int]:
        """Naive per-pair evaluation (ICMP: echo request unless a type is given as the port)."""
        return pairwise_reachability(sources, destinations, protocol, port,
                                     lambda conn: self.engine.evaluate(conn).allowed)

    # -- explain

    def explain(self, conn: Connection) -> list[str]:
        icmp = conn.protocol in ICMP_PROTOCOLS
        conn, code = self._icmp(conn, None)
        lines = [f"connection: {_describe(conn)}", _ENGINE_LINE]
        if icmp:
            lines.append(f"{conn.protocol}: explained as echo request (type {conn.port}, code {code})")
        if self.engine.staged:
            lines.append(f"staged, never enforced: {', '.join(self.engine.staged)}")
        verdict = self.engine.evaluate(conn, icmp_code=code)
        trace = verdict.trace
        assert trace is not None
        if trace.loopback:
            return [*lines, "", *verdict.explanation, "", "verdict: allow"]
        lines += ["", *self._explain_side(1, trace.egress)]
        lines += ["", *self._explain_side(2, trace.ingress)]
        notes = list(dict.fromkeys(n for s in (trace.egress, trace.ingress) for n in s.notes))
        if notes:
            lines += ["", *notes]
        sources = self._deciding(trace)
        conclusion = verdict.explanation[-1]
        if icmp:  # the evaluator says icmp/8; there is no port
            conclusion = conclusion.replace(f" {conn.protocol.lower()}/{conn.port}:", f" {conn.protocol.lower()}:")
        lines += ["", *sources, conclusion, f"verdict: {'allow' if verdict.allowed else 'drop'}"]
        return lines

    def _explain_side(self, step: int, side: SideTrace) -> list[str]:
        role = "source" if side.direction == "egress" else "destination"
        lines = [f"{step}. {side.direction} at the {role} {side.subject.describe()}"]
        if side.reason != "tiers":
            return [*lines, f"   {side.line()}"]
        assert isinstance(side.subject, Pod)
        lines += self._selected(side.subject, side.direction)
        for tier in side.tiers:
            lines += self._explain_tier(tier)
        verdict = "allowed" if side.allowed else "denied"
        last = side.tiers[-1]
        if side.allowed and last.outcome in ("pass", "default-pass"):
            lines.append(f"   => {side.direction} allowed: no later tier has a policy for it (the namespace's "
                         "Kubernetes profile allows everything)")
        elif last.decided_by is not None:
            lines.append(f"   => {side.direction} {verdict} by {last.decided_by.rule.label}")
        else:
            lines.append(f"   => {side.direction} denied: end-of-tier deny of tier {last.tier.name}")
        return lines

    def _selected(self, pod: Pod, direction: Direction) -> list[str]:
        lines = [f"   selected by (type {direction.capitalize()}), in evaluation order:"]
        by_tier: dict[str, list[Policy]] = {}
        for policy in self.engine.selecting(pod, direction):
            by_tier.setdefault(policy.tier, []).append(policy)
        for tier in self.engine.tiers:
            if tier.name not in by_tier:
                continue
            ident = f"Tier {tier.name}"
            origin = f"; from {self.origins.describe(ident)}" if ident in self.origins.where else ""
            lines.append(f"     {tier.describe()}{origin}")
            for policy in by_tier[tier.name]:
                order = "no order" if policy.order is None else f"order {policy.order:g}"
                lines += [f"       {policy.ident} ({order})", f"         from {self.origins.describe(policy.ident)}"]
        return lines

    @staticmethod
    def _explain_tier(tier: TierTrace) -> list[str]:
        lines = [f"   {tier.tier.describe()}:"]
        lines += [f"     {check.describe()}" for check in tier.checks]
        if tier.outcome == "default-deny":
            lines.append(f"     no rule matches: end-of-tier deny (defaultAction {tier.tier.default_action})")
        elif tier.outcome == "default-pass":
            lines.append("     no rule matches: defaultAction Pass, on to the next tier")
        return lines

"""Per-connection evaluation (:class:`CalicoEngine`): tiers, policies and rules in order, first match wins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from netpol_dsl.endpoints import Connection, Endpoint, External, Node, Pod
from netpol_dsl.engines.calico.model import (
    NAME_KEY,
    Direction,
    EntityRule,
    NetworkSet,
    Policy,
    PortMatch,
    Rule,
    Tier,
    View,
    connection_family,
    pod_labels,
    protocol_name,
    protocol_number,
)
from netpol_dsl.engines.calico.parse import parse_documents
from netpol_dsl.engines.kubernetes import Verdict

SideReason = Literal["not-a-pod", "loopback", "own-node", "no-policy", "tiers"]
TierOutcome = Literal["allow", "deny", "pass", "default-deny", "default-pass"]
_OUTCOMES: dict[str, TierOutcome] = {"Allow": "allow", "Deny": "deny", "Pass": "pass"}


@attrs.frozen
class RuleCheck:
    """One rule checked against the connection: ``why`` is None when it matched, else what failed."""

    rule: Rule
    why: str | None
    via: tuple[str, ...] = ()  # how an end matched a selector through a network set

    @property
    def matched(self) -> bool:
        return self.why is None

    def describe(self) -> str:
        head = f"{self.rule.label} ({self.rule.action})"
        if self.why is not None:
            return f"{head}: no match: {self.why}"
        effect = {"Allow": "allowed", "Deny": "denied", "Pass": "passed to the next tier",
                  "Log": "logged, evaluation continues"}[self.rule.action]
        via = f" ({'; '.join(self.via)})" if self.via else ""
        return f"{head}: matches{via}: {effect}"


@attrs.frozen
class TierTrace:
    """A tier that had policies selecting the endpoint for the direction, and what it decided."""

    tier: Tier
    policies: tuple[Policy, ...]
    checks: tuple[RuleCheck, ...]
    outcome: TierOutcome

    @property
    def decided_by(self) -> RuleCheck | None:
        if self.outcome in ("default-deny", "default-pass"):
            return None
        return self.checks[-1]

    def describe(self) -> str:
        head = self.tier.describe()
        logged = [c.rule.label for c in self.checks if c.matched and c.rule.action == "Log"]
        if logged:
            head += f" (logged by {', '.join(logged)})"
        decided = self.decided_by
        if decided is not None:
            return f"{head}: {decided.describe()}"
        names = ", ".join(p.ident for p in self.policies)
        misses = "; ".join(f"{c.rule.label}: {c.why}" for c in self.checks if c.why is not None)
        why = f" ({misses})" if misses else ""
        if self.outcome == "default-deny":
            return f"{head}: no rule of {names} matches{why}: end-of-tier deny"
        return f"{head}: no rule of {names} matches{why}: defaultAction Pass, on to the next tier"


@attrs.frozen
class SideTrace:
    """The decision for one direction: egress at the source, or ingress at the destination."""

    direction: Direction
    subject: Endpoint
    peer: Endpoint
    reason: SideReason
    tiers: tuple[TierTrace, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return not any(t.outcome in ("deny", "default-deny") for t in self.tiers)

    def line(self) -> str:
        role = "source" if self.direction == "egress" else "destination"
        if self.reason == "not-a-pod":
            return f"{self.direction}: {role} {self.subject.describe()} is not a pod; no policy applies"
        at = f"{self.direction} at {self.subject.describe()}"
        if self.reason == "own-node":
            return (f"{at}: allowed, traffic from the pod's own node {self.peer.describe()} is never policed "
                    "(Felix does not apply workload ingress policy to host-originated traffic)")
        if self.reason == "no-policy":
            return (f"{at}: no policy with type {self.direction.capitalize()} selects it: allowed "
                    "(the namespace's Kubernetes profile allows everything)")
        steps = "; ".join(t.describe() for t in self.tiers)
        if self.allowed and (not self.tiers or self.tiers[-1].outcome in ("pass", "default-pass")):
            steps += ("; no later tier has a policy for it: allowed (the namespace's Kubernetes profile allows "
                      "everything)")
        return f"{at}: {steps}"


@attrs.frozen
class Trace:
    conn: Connection
    egress: SideTrace
    ingress: SideTrace

    @property
    def loopback(self) -> bool:
        return self.egress.reason == "loopback"

    @property
    def allowed(self) -> bool:
        return self.loopback or (self.egress.allowed and self.ingress.allowed)


@attrs.frozen
class CalicoVerdict(Verdict):
    """A :class:`Verdict` with the :class:`Trace` it was read from."""

    trace: Trace | None = None


@attrs.frozen
class _Context:
    """What rule matching needs: the connection's facts and the Calico endpoints of both ends."""

    conn: Connection
    protocol: int | None
    family: int
    src_port: int | None
    icmp_code: int
    src_views: tuple[View, ...]
    dst_views: tuple[View, ...]


class CalicoEngine:
    """Calico policy semantics over a fixed set of manifests; see :mod:`netpol_dsl.engines.calico`.

    ``namespaces``: the labels of each namespace (without ``projectcalico.org/name``, which is added),
    used for NetworkSets, whose namespace labels a ``namespaceSelector`` reads; a namespace not given
    has only ``kubernetes.io/metadata.name``.  Pods carry their namespace's labels themselves.
    """

    def __init__(self, manifests: Sequence[Mapping[str, Any]],
                 namespaces: Mapping[str, Mapping[str, str]] | None = None) -> None:
        parsed = parse_documents(manifests)
        self.tiers = tuple(sorted(parsed.tiers.values(), key=lambda t: t.sort_key))
        self.policies = tuple(sorted(parsed.policies, key=lambda p: p.sort_key))
        self.network_sets = parsed.network_sets
        self.staged = parsed.staged
        self._namespaces = {k: dict(v) for k, v in (namespaces or {}).items()}
        self._by_tier = {t.name: tuple(p for p in self.policies if p.tier == t.name) for t in self.tiers}
        self._views: dict[tuple[Endpoint, tuple[tuple[str, str], ...]], tuple[View, ...]] = {}
        self._selecting: dict[tuple[Pod, tuple[tuple[str, str], ...]], tuple[Policy, ...]] = {}

    # -- public

    def evaluate(self, conn: Connection, *, src_port: int | None = None, icmp_code: int | None = None,
                 ) -> CalicoVerdict:
        """Decide ``conn``.  ``src_port``: the source port, if known (a rule with source ``ports`` needs it;
        unknown, it is in no listed range).  ``icmp_code``: for ICMP, whose type ``conn.port`` carries;
        unknown, it is taken as 0 (echo request and reply have only code 0)."""
        trace = self.trace(conn, src_port=src_port, icmp_code=icmp_code)
        if trace.loopback:
            return CalicoVerdict(True, (f"loopback: {conn.src.describe()} talks to itself; policy never applies",
                                        f"{conn.describe()}: allowed"), trace)
        sides = (trace.egress, trace.ingress)
        notes = tuple(dict.fromkeys(n for s in sides for n in s.notes))
        if trace.allowed:
            conclusion = f"{conn.describe()}: allowed"
        else:
            conclusion = f"{conn.describe()}: denied by {' and '.join(s.direction for s in sides if not s.allowed)}"
        return CalicoVerdict(trace.allowed, (trace.egress.line(), trace.ingress.line(), *notes, conclusion), trace)

    def trace(self, conn: Connection, *, src_port: int | None = None, icmp_code: int | None = None) -> Trace:
        """Every tier, policy and rule the decision on ``conn`` went through (see :meth:`evaluate`)."""
        if isinstance(conn.src, Pod) and conn.src == conn.dst:
            loop = SideTrace("egress", conn.src, conn.dst, "loopback")
            return Trace(conn, loop, attrs.evolve(loop, direction="ingress"))
        ctx = _Context(conn, protocol_number(conn.protocol), connection_family(conn), src_port,
                       0 if icmp_code is None else icmp_code, self.views(conn.src), self.views(conn.dst))
        egress = self._side("egress", conn.src, conn.dst, ctx)
        return Trace(conn, egress, self._side("ingress", conn.dst, conn.src, ctx))

    def selecting(self, pod: Pod, direction: Direction | None = None) -> tuple[Policy, ...]:
        """The policies (in evaluation order) that apply to ``pod``, for ``direction`` if given."""
        key = (pod, pod.service_account_labels)
        found = self._selecting.get(key)
        if found is None:
            labels = pod_labels(pod)
            found = self._selecting[key] = tuple(p for p in self.policies if p.selects(pod, labels))
        return found if direction is None else tuple(p for p in found if direction in p.types)

    def views(self, endpoint: Endpoint) -> tuple[View, ...]:
        """The Calico endpoints ``endpoint``'s address belongs to: its own workload endpoint (a pod), then
        every network set whose nets contain its address."""
        key = (endpoint, endpoint.service_account_labels if isinstance(endpoint, Pod) else ())
        found = self._views.get(key)
        if found is not None:
            return found
        views: list[View] = []
        if isinstance(endpoint, Pod):
            views.append(View(f"pod {endpoint.describe()}", pod_labels(endpoint), True, endpoint))
        ip = endpoint.ip if isinstance(endpoint, Pod | External | Node) else None
        if ip is not None:
            views += [s.view(self._namespace_labels(s)) for s in self.network_sets if s.contains(ip)]
        found = self._views[key] = tuple(views)
        return found

    def _namespace_labels(self, network_set: NetworkSet) -> dict[str, str]:
        namespace = network_set.namespace or ""
        labels = dict(self._namespaces.get(namespace, {}))
        labels.setdefault("kubernetes.io/metadata.name", namespace)
        labels[NAME_KEY] = namespace
        return labels

    # -- one direction

    def _side(self, direction: Direction, subject: Endpoint, peer: Endpoint, ctx: _Context) -> SideTrace:
        if not isinstance(subject, Pod):
            return SideTrace(direction, subject, peer, "not-a-pod")
        if direction == "ingress" and isinstance(peer, Node) and peer.name and peer.name == subject.node:
            return SideTrace(direction, subject, peer, "own-node")
        selecting = self.selecting(subject, direction)
        if not selecting:
            return SideTrace(direction, subject, peer, "no-policy")
        tiers: list[TierTrace] = []
        notes: list[str] = []
        for tier in self.tiers:
            policies = tuple(p for p in self._by_tier[tier.name] if p in selecting)
            if not policies:
                continue
            step = self._tier(tier, policies, direction, ctx, notes)
            tiers.append(step)
            if step.outcome in ("allow", "deny", "default-deny"):
                break
        return SideTrace(direction, subject, peer, "tiers", tuple(tiers), tuple(notes))

    def _tier(self, tier: Tier, policies: tuple[Policy, ...], direction: Direction, ctx: _Context,
              notes: list[str]) -> TierTrace:
        checks: list[RuleCheck] = []
        for policy in policies:
            for rule in policy.rules(direction):
                via: list[str] = []
                check = RuleCheck(rule, self._mismatch(rule, ctx, via), tuple(via))
                checks.append(check)
                if not check.matched:
                    continue
                if rule.http:
                    notes.append(f"note: {rule.label} has an http match, which Felix does not enforce (only "
                                 "Istio Application Layer Policy does): evaluated as its L3/L4 part alone")
                if rule.action == "Log":
                    continue
                return TierTrace(tier, policies, tuple(checks), _OUTCOMES[rule.action])
        default: TierOutcome = "default-deny" if tier.default_action == "Deny" else "default-pass"
        return TierTrace(tier, policies, tuple(checks), default)

    # -- rule matching

    def _mismatch(self, rule: Rule, ctx: _Context, via: list[str]) -> str | None:
        """None if ``rule`` matches the connection, else the first condition that does not hold; ``via``
        collects the network sets through which an end matched a selector."""
        conn = ctx.conn
        if rule.ip_version is not None and rule.ip_version != ctx.family:
            return f"ipVersion {rule.ip_version}, the connection is IPv{ctx.family}"
        if rule.protocol is not None and rule.protocol != ctx.protocol:
            return f"protocol {protocol_name(rule.protocol)}, the connection is {conn.protocol}"
        if rule.not_protocol is not None and rule.not_protocol == ctx.protocol:
            return f"notProtocol {protocol_name(rule.not_protocol)}"
        if rule.icmp is not None and not rule.icmp.matches(conn.port, ctx.icmp_code):
            return f"icmp {rule.icmp.describe()}, the connection is type {conn.port} code {ctx.icmp_code}"
        if rule.not_icmp is not None and ctx.protocol in (1, 58) and rule.not_icmp.matches(conn.port, ctx.icmp_code):
            return f"notICMP {rule.not_icmp.describe()}"
        why = self._entity(rule, rule.source, "source", conn.src, ctx.src_views, ctx.src_port, ctx, via)
        if why is not None:
            return f"source: {why}"
        why = self._entity(rule, rule.destination, "destination", conn.dst, ctx.dst_views, conn.port, ctx, via)
        return None if why is None else f"destination: {why}"

    def _entity(self, rule: Rule, entity: EntityRule, end: str, endpoint: Endpoint, views: tuple[View, ...],
                port: int | None, ctx: _Context, via: list[str]) -> str | None:
        who = endpoint.describe()
        if entity.has_positive:
            matching = [v for v in views if entity.positive(v)]
            if not matching:
                return f"{who} does not match {entity.describe_peer()}"
            if all(v.pod is None for v in matching):
                via.append(f"{end} {who} is in {', '.join(v.what for v in matching)}")
        elif entity.not_selector is not None and any(entity.not_selector.matches(v.labels) for v in views):
            return f"{who} matches notSelector {entity.not_selector.describe()!r}"
        ip = endpoint.ip if isinstance(endpoint, Pod | External | Node) else None
        if entity.nets is not None:
            if ip is None:
                return f"{who} has no known address, so it is in no nets"
            if not any(ip.version == n.version and ip in n for n in entity.nets):
                return f"{ip} is not in nets {', '.join(str(n) for n in entity.nets)}"
        if ip is not None and any(ip.version == n.version and ip in n for n in entity.not_nets):
            return f"{ip} is in notNets {', '.join(str(n) for n in entity.not_nets)}"
        if entity.ports is None and not entity.not_ports:
            return None
        if port is None:
            if entity.ports is not None:
                return f"the {end} port is unknown, so it is in no listed port"
            return None
        if entity.ports is not None and not any(self._port(p, port, rule, entity, views, ctx) for p in entity.ports):
            return f"{end} port {port} is not in ports {', '.join(p.describe() for p in entity.ports)}"
        if any(self._port(p, port, rule, entity, views, ctx) for p in entity.not_ports):
            return f"{end} port {port} is in notPorts {', '.join(p.describe() for p in entity.not_ports)}"
        return None

    @staticmethod
    def _port(match: PortMatch, port: int, rule: Rule, entity: EntityRule, views: tuple[View, ...],
              ctx: _Context) -> bool:
        if not match.name:
            return match.first <= port <= match.last
        # a named port is an IP set of (address, protocol, port) of the endpoints that have it and match
        # the positive selector; the protocol is the rule's (TCP when it names none)
        protocol = rule.named_port_protocol
        if ctx.protocol != protocol:
            return False
        for view in views:
            if view.pod is None or (entity.has_positive and not entity.positive(view)):
                continue
            if view.pod.named_ports(protocol_name(protocol)).get(match.name) == port:
                return True
        return False

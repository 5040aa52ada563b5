"""The per-connection evaluator (:class:`KubernetesEngine`, :func:`evaluate`) and its traces and explanations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from netpol_dsl.endpoints import Connection, Endpoint, Node, Pod
from netpol_dsl.engines.kubernetes.model import Direction, PolicyRef, _parse_policy, _Policy
from netpol_dsl.engines.kubernetes.reachability import _Reachability
from netpol_dsl.engines.manifest import reading_document


@attrs.frozen
class Verdict:
    """Whether a connection is allowed, with one explanation line per side and a conclusion."""

    allowed: bool
    explanation: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# traces: what evaluate() decided, and why, as data


@attrs.frozen
class RuleCheck:
    """One rule of a selecting policy, checked against the connection."""

    policy: PolicyRef
    direction: Direction
    index: int
    peers: str  # described, e.g. "podSelector{app=web} | ipBlock 10.0.0.0/8"
    ports: str  # described, e.g. "TCP/8080, UDP/53"
    peer_ok: bool
    port_ok: bool

    @property
    def matched(self) -> bool:
        return self.peer_ok and self.port_ok

    @property
    def label(self) -> str:
        return f"{self.policy.ident} {self.direction}[{self.index}]"


SideReason = Literal["not-a-pod", "own-node", "not-isolated", "isolated"]


@attrs.frozen
class SideTrace:
    """The decision of one side: egress at the source or ingress at the destination."""

    direction: Direction
    subject: Endpoint
    peer: Endpoint
    reason: SideReason
    selecting: tuple[PolicyRef, ...] = ()
    rules: tuple[RuleCheck, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.reason != "isolated" or any(r.matched for r in self.rules)

    @property
    def allowing(self) -> tuple[RuleCheck, ...]:
        return tuple(r for r in self.rules if r.matched)


@attrs.frozen
class Trace:
    """Both sides of a connection; ``loopback`` when a pod talks to itself (no policy applies)."""

    conn: Connection
    loopback: bool
    egress: SideTrace | None
    ingress: SideTrace | None

    @property
    def allowed(self) -> bool:
        return self.loopback or bool(self.egress and self.egress.allowed and self.ingress and self.ingress.allowed)


def _is_loopback(conn: Connection) -> bool:
    return isinstance(conn.src, Pod) and conn.src == conn.dst


def _side_line(side: SideTrace, conn: Connection) -> str:
    direction = side.direction
    role = "source" if direction == "egress" else "destination"
    if side.reason == "not-a-pod":
        return f"{direction}: {role} {side.subject.describe()} is not a pod; no policy applies"
    at = f"{direction} at {side.subject.describe()}"
    if side.reason == "own-node":
        return f"{at}: allowed, traffic from the pod's own node {side.peer.describe()} is always allowed"
    if side.reason == "not-isolated":
        kind = "Ingress" if direction == "ingress" else "Egress"
        return f"{at}: not isolated (no policy with policyType {kind} selects it)"
    isolated = f"{at}: isolated by {', '.join(p.ident for p in side.selecting)}"
    if side.allowing:
        return f"{isolated}; allowed by {', '.join(r.label for r in side.allowing)}"
    return f"{isolated}; no {direction} rule allows {conn.describe()}"


# --------------------------------------------------------------------------------------------
# evaluation


class KubernetesEngine:
    """NetworkPolicy semantics over a fixed set of policies, indexed by namespace.

    Build it once and call :meth:`evaluate` for as many connections as needed.

    Node exception: the Kubernetes documentation states that traffic from the node on which a
    pod runs is always allowed (kubelet health checks and the like), so a connection whose
    source is a :class:`~netpol_dsl.endpoints.Node` named like the destination pod's ``node``
    is allowed on the ingress side even when the pod is isolated for ingress.  Nodes never
    have egress policy themselves, so such a connection is always allowed.
    """

    def __init__(self, policies: Sequence[Mapping[str, Any]]) -> None:
        by_namespace: dict[str, list[_Policy]] = {}
        parsed: list[_Policy] = []
        for position, document in enumerate(policies):
            with reading_document(position):
                policy = _parse_policy(document)
            parsed.append(policy)
            by_namespace.setdefault(policy.namespace, []).append(policy)
        self._policies = tuple(parsed)
        self._by_namespace: dict[str, tuple[_Policy, ...]] = {
            ns: tuple(items) for ns, items in by_namespace.items()
        }

    @property
    def policies(self) -> tuple[PolicyRef, ...]:
        """Every policy, in the order given."""
        return tuple(p.ref for p in self._policies)

    def evaluate(self, conn: Connection) -> Verdict:
        t = self.trace(conn)
        if t.loopback:
            return Verdict(True, (
                f"loopback: {conn.src.describe()} talks to itself; NetworkPolicy never applies",
                f"{conn.describe()}: allowed",
            ))
        assert t.egress is not None and t.ingress is not None
        egress_ok, ingress_ok = t.egress.allowed, t.ingress.allowed
        if egress_ok and ingress_ok:
            conclusion = f"{conn.describe()}: allowed"
        else:
            denied = [side for side, ok in (("egress", egress_ok), ("ingress", ingress_ok)) if not ok]
            conclusion = f"{conn.describe()}: denied by {' and '.join(denied)}"
        return Verdict(egress_ok and ingress_ok, (_side_line(t.egress, conn), _side_line(t.ingress, conn), conclusion))

    def trace(self, conn: Connection) -> Trace:
        """Every selecting policy and every one of their rules checked against ``conn``."""
        if _is_loopback(conn):
            return Trace(conn, True, None, None)
        return Trace(conn, False, self._side("egress", conn.src, conn.dst, conn),
                     self._side("ingress", conn.dst, conn.src, conn))

    def _side(self, direction: Direction, subject: Endpoint, peer: Endpoint, conn: Connection) -> SideTrace:
        """Whether ``subject``'s ``direction`` policy admits the connection to/from ``peer``."""
        if not isinstance(subject, Pod):
            return SideTrace(direction, subject, peer, "not-a-pod")
        if direction == "ingress" and isinstance(peer, Node) and peer.name and peer.name == subject.node:
            return SideTrace(direction, subject, peer, "own-node")
        labels = subject.label_map
        selecting = [
            policy
            for policy in self._by_namespace.get(subject.namespace, ())
            if policy.rules(direction) is not None and policy.pod_selector.matches(labels)
        ]
        if not selecting:
            return SideTrace(direction, subject, peer, "not-isolated")
        checks = []
        for policy in selecting:
            ref = policy.ref
            for rule in policy.rules(direction) or ():
                checks.append(RuleCheck(
                    ref, direction, rule.index, rule.describe_peers(), rule.describe_ports(),
                    rule.peer_matches(peer, policy.namespace), rule.port_matches(conn),
                ))
        return SideTrace(direction, subject, peer, "isolated", tuple(p.ref for p in selecting), tuple(checks))

    def reachability(
        self, sources: Sequence[Pod], destinations: Sequence[Pod], protocol: str, port: int
    ) -> list[int]:
        """Every source-to-destination decision at once, for one protocol and port.

        Returns one bitset per source: bit ``j`` of ``result[i]`` is set iff ``sources[i]`` may
        open ``protocol``/``port`` to ``destinations[j]``; the same answers as :meth:`evaluate`
        (loopback included), computed over pod identities (see :class:`_Reachability`).
        """
        return _Reachability(self._policies, sources, destinations, protocol.upper(), port).rows()


def evaluate(policies: Sequence[Mapping[str, Any]], conn: Connection) -> Verdict:
    """Evaluate one connection against ``policies`` (see :class:`KubernetesEngine`)."""
    return KubernetesEngine(policies).evaluate(conn)


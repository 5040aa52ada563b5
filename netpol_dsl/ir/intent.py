"""The reference semantics of intent: what a policy means for one concrete connection.

This evaluator is the definition every target must implement (docs/concepts.md,
"Reference semantics").  For a connection from ``src`` to ``dst``:

1. The connection is allowed only if the *egress* decision at ``src`` and the
   *ingress* decision at ``dst`` both allow it.  Only pods decide; external
   addresses, nodes and the API server never restrict anything.
2. A decision walks the tiers in ascending order.  In a tier, the rules whose
   subject selects the pod and whose peer, ports (and HTTP request, for L7
   allows) match the connection are collected: any **deny** ends the walk with
   deny; otherwise any **pass** skips the rest of the tier; otherwise any
   **allow** ends the walk with allow; with no match the walk goes on.  Within a
   tier, order of declaration never matters.
3. If no tier decided, the pod's default applies: **deny** if the pod is
   *isolated* in that direction, **allow** otherwise.  A pod is isolated in a
   direction when the baseline makes its namespace default-deny for it, or when
   any allow rule in that direction selects it (an allow list is exhaustive).
4. Ingress from the node a pod runs on is always allowed (kubelet health checks; the
   NetworkPolicy API guarantees it and no engine lets a policy block it), and so is a
   pod's traffic to itself (loopback).
5. An allow with HTTP rules makes its port an HTTP port between its subject and its peer:
   there, traffic that is not an HTTP request is dropped, whatever other allows say (every
   L7 engine hands the whole port to an HTTP proxy).  HTTP requests are decided as above:
   they pass an HTTP allow whose rules match them, or an allow without HTTP rules.

Ports match by protocol and number.  An ICMP or ICMPv6 connection carries its *type* in ``port``
(as the engines do) and matches ``icmp(...)``/``icmpv6(...)`` by type; a rule without ports matches
every protocol, ICMP included.
"""

from __future__ import annotations

import attrs

from netpol_dsl.endpoints import ApiServer, Connection, Endpoint, External, Node, Pod
from netpol_dsl.ir.peers import Anything, DnsName, Entity, EntityKind, Network, Peer, Workloads
from netpol_dsl.ir.program import Action, Direction, HttpMatch, Program, Rule
from netpol_dsl.ir.selectors import SERVICE_ACCOUNT_KEY


@attrs.frozen
class Decision:
    allowed: bool
    reason: str
    rule: Rule | None = None


def intent_labels(pod: Pod) -> dict[str, str]:
    """The pod labels pod selectors of the intent match: the pod's own labels plus its service account
    under the reserved key ``SERVICE_ACCOUNT_KEY`` (``Pod.label_map`` stays the real labels engines see)."""
    return {**pod.label_map, SERVICE_ACCOUNT_KEY: pod.service_account}


def peer_matches(peer: Peer, endpoint: Endpoint, subject: Pod) -> bool:
    """Whether ``endpoint`` is in ``peer``, seen from the enforcing pod ``subject``."""
    match peer:
        case Anything():
            return True
        case Workloads():
            return isinstance(endpoint, Pod) and peer.matches(endpoint.namespace_label_map, intent_labels(endpoint))
        case Network():
            return isinstance(endpoint, External) and peer.contains(endpoint.ip)
        case DnsName():
            return isinstance(endpoint, External) and any(peer.matches(n) for n in endpoint.names)
        case Entity():
            kind = peer.kind
            if kind is EntityKind.CLUSTER:
                return isinstance(endpoint, Pod | Node | ApiServer)
            if kind is EntityKind.KUBE_APISERVER:
                return isinstance(endpoint, ApiServer)
            if isinstance(endpoint, Node):
                return (endpoint.name == subject.node) == (kind is EntityKind.HOST)
            return False
    raise AssertionError(peer)


def http_matches(match: HttpMatch, conn: Connection) -> bool:
    import re

    req = conn.http
    if req is None:
        return False
    if match.method is not None and not re.fullmatch(match.method, req.method):
        return False
    if match.path is not None and not re.fullmatch(match.path, req.path):
        return False
    if match.host is not None and not re.fullmatch(match.host, req.host):
        return False
    headers = {k.lower(): v for k, v in req.headers}
    for name, value in match.headers:
        got = headers.get(name.lower())
        if got is None or (value is not None and got != value):
            return False
    return True


def rule_matches(rule: Rule, subject: Pod, peer: Endpoint, conn: Connection) -> bool:
    return l4_matches(rule, subject, peer, conn) and (
        not rule.http or any(http_matches(h, conn) for h in rule.http))


def l4_matches(rule: Rule, subject: Pod, peer: Endpoint, conn: Connection) -> bool:
    """Subject, peer and port match (HTTP rules not considered)."""
    if not rule.subject.matches(subject.namespace_label_map, intent_labels(subject)):
        return False
    if not peer_matches(rule.peer, peer, subject):
        return False
    if rule.ports is not None:
        named = conn.dst.named_ports(conn.protocol) if isinstance(conn.dst, Pod) else {}
        if not any(p.matches(conn.protocol, conn.port, named) for p in rule.ports):
            return False
    return True


def is_isolated(program: Program, pod: Pod, direction: Direction) -> bool:
    ns, labels = pod.namespace_label_map, intent_labels(pod)
    return any(i.direction is direction and i.subject.matches(ns, labels) for i in program.isolations) or any(
        r.action is Action.ALLOW and r.direction is direction and r.subject.matches(ns, labels)
        for r in program.rules
    )


def decide_side(program: Program, pod: Pod, direction: Direction, conn: Connection) -> Decision:
    peer = conn.dst if direction is Direction.EGRESS else conn.src
    if direction is Direction.INGRESS and isinstance(peer, Node) and pod.node and peer.name == pod.node:
        return Decision(True, f"ingress of {pod.describe()} from its own node is always allowed")
    candidates = [r for r in program.rules if r.direction is direction]
    if conn.http is None:
        l7 = next((r for r in candidates
                   if r.action is Action.ALLOW and r.http and l4_matches(r, pod, peer, conn)), None)
        if l7 is not None:
            return Decision(False, f"{conn.protocol.lower()}/{conn.port} is an HTTP port here ({l7.describe()}): "
                            "traffic that is not an HTTP request is dropped", l7)
    for tier in program.tiers:
        matched = [r for r in candidates if r.tier == tier and rule_matches(r, pod, peer, conn)]
        for action in (Action.DENY, Action.PASS, Action.ALLOW):
            hit = next((r for r in matched if r.action is action), None)
            if hit is None:
                continue
            if action is Action.PASS:
                break
            return Decision(action is Action.ALLOW, f"{action.value} by {hit.describe()}", hit)
    if is_isolated(program, pod, direction):
        return Decision(False, f"{direction.value} of {pod.describe()} is default-deny and no rule allowed it")
    return Decision(True, f"{direction.value} of {pod.describe()} is not isolated")


def decide(program: Program, conn: Connection) -> Decision:
    """The intended verdict for ``conn``."""
    if isinstance(conn.src, Pod) and conn.src == conn.dst:
        return Decision(True, f"{conn.src.describe()} to itself is loopback, never restricted")
    if isinstance(conn.src, Pod):
        out = decide_side(program, conn.src, Direction.EGRESS, conn)
        if not out.allowed:
            return out
    if isinstance(conn.dst, Pod):
        return decide_side(program, conn.dst, Direction.INGRESS, conn)
    return Decision(True, "no pod restricts this connection")

"""Per-connection evaluation (:class:`CiliumEngine`): deny, default deny, allow, then L7."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import attrs

from netpol_dsl.endpoints import Connection, Endpoint, External, Pod
from netpol_dsl.engines.cilium.l7 import DnsPattern, describe_request
from netpol_dsl.engines.cilium.model import Direction, Policy, PortRule, Rule, entity_matches
from netpol_dsl.engines.cilium.parse import parse_documents
from netpol_dsl.engines.cilium.selectors import EndpointPeer, Identity, is_own_node, peer_identity, pod_identity
from netpol_dsl.engines.kubernetes import Verdict

Outcome = Literal["allow", "drop", "l7-deny"]
_SEVERITY: dict[Outcome, int] = {"allow": 0, "l7-deny": 1, "drop": 2}


@attrs.frozen
class CiliumVerdict(Verdict):
    """A :class:`Verdict` with Cilium's three outcomes: ``allow``, ``drop`` (L3/L4, or a connection
    that does not speak HTTP on a port proxied for HTTP) and ``l7-deny`` (HTTP 403 from the proxy,
    or a DNS query refused by the DNS proxy).  ``allowed`` is ``outcome == "allow"``."""

    outcome: Outcome = "allow"


class DnsLookup(NamedTuple):
    """Whether ``src`` may query ``dns_pod`` for a name, and whether Cilium's DNS proxy then sees the
    name (so ``toFQDNs`` rules can learn its addresses)."""

    allowed: bool
    proxied_visible: bool
    explanation: tuple[str, ...]


@attrs.frozen
class _Side:
    outcome: Outcome
    line: str
    notes: tuple[str, ...] = ()
    visible: bool = False  # DNS lookups: a rules.dns pattern of an allowing rule covers the name


@attrs.frozen
class _Match:
    rule: Rule
    entries: tuple[PortRule | None, ...]  # the toPorts entries that matched (None: no L7 there)


@attrs.frozen
class _Context:
    direction: Direction
    subject: Pod
    peer: Endpoint
    peer_identity: Identity
    conn: Connection
    dns_names: tuple[str, ...]
    visible: Callable[[str], bool]


class CiliumEngine:
    """Cilium policy semantics over a fixed set of manifests; see :mod:`netpol_dsl.engines.cilium`.

    Build it once and call :meth:`evaluate` (or :meth:`verdict`, :meth:`dns_lookup`) for as many
    connections as needed.  ``cluster_name`` is the value of the ``io.cilium.k8s.policy.cluster``
    identity label of every pod.
    """

    def __init__(self, policies: Sequence[Mapping[str, Any]], cluster_name: str = "default") -> None:
        self._policies = parse_documents(policies)
        self.cluster_name = cluster_name
        self._selecting_cache: dict[Pod, tuple[Policy, ...]] = {}

    @property
    def policies(self) -> tuple[str, ...]:
        """Every policy (one per ``spec``/``specs[]`` item), named like the explanations name it."""
        return tuple(p.ident for p in self._policies)

    def selecting(self, pod: Pod) -> tuple[str, ...]:
        """The policies whose endpointSelector (podSelector) selects ``pod``."""
        return tuple(p.ident for p in self._selecting(pod))

    # -- public decisions

    def evaluate(self, conn: Connection, dns_names: Sequence[str] = ()) -> CiliumVerdict:
        """Decide ``conn``.  ``dns_names``: the names the source resolved, through Cilium's DNS proxy,
        to reach ``conn.dst`` (``toFQDNs`` matches only such names; see :meth:`dns_lookup`)."""
        if isinstance(conn.src, Pod) and conn.src == conn.dst:
            return CiliumVerdict(True, (
                f"loopback: {conn.src.describe()} talks to itself; policy never applies",
                f"{conn.describe()}: allowed",
            ), "allow")
        egress = self._side("egress", conn.src, conn.dst, conn, tuple(dns_names), None)
        ingress = self._side("ingress", conn.dst, conn.src, conn, (), None)
        outcome = max(egress.outcome, ingress.outcome, key=_SEVERITY.__getitem__)
        lines = (egress.line, ingress.line, *dict.fromkeys(egress.notes + ingress.notes),
                 _conclusion(conn.describe(), outcome, egress, ingress))
        return CiliumVerdict(outcome == "allow", lines, outcome)

    def verdict(self, conn: Connection, dns_names: Sequence[str] = ()) -> Outcome:
        """``allow``, ``drop`` or ``l7-deny`` for ``conn`` (see :meth:`evaluate`)."""
        return self.evaluate(conn, dns_names).outcome

    def dns_lookup(self, src: Pod, dns_pod: Pod, name: str) -> DnsLookup:
        """Whether the query ``src`` -> ``dns_pod`` UDP/53 for ``name`` is allowed (L3/L4 on both sides,
        and the DNS proxy's ``rules.dns`` when the allowing egress rules have some), and whether a
        ``rules.dns`` pattern of an allowing egress rule covers ``name`` (``proxied_visible``)."""
        conn = Connection(src, dns_pod, "UDP", 53)
        what = f"DNS query for {name}: {conn.describe()}"
        if src == dns_pod:
            return DnsLookup(True, False, (f"{what}: loopback, policy never applies (no proxy sees it)",))
        egress = self._side("egress", src, dns_pod, conn, (), name)
        ingress = self._side("ingress", dns_pod, src, conn, (), None)
        outcome = max(egress.outcome, ingress.outcome, key=_SEVERITY.__getitem__)
        allowed = outcome == "allow"
        visible = allowed and egress.visible
        lines = (egress.line, ingress.line, *dict.fromkeys(egress.notes + ingress.notes),
                 _conclusion(what, outcome, egress, ingress)
                 + ("; the DNS proxy sees the name" if visible else "; the DNS proxy does not learn this name"))
        return DnsLookup(allowed, visible, lines)

    # -- one side

    def _selecting(self, pod: Pod) -> tuple[Policy, ...]:
        found = self._selecting_cache.get(pod)
        if found is None:
            identity = pod_identity(pod, self.cluster_name)
            found = self._selecting_cache[pod] = tuple(p for p in self._policies if p.selects(pod, identity))
        return found

    def _side(self, direction: Direction, subject: Endpoint, peer: Endpoint, conn: Connection,
              dns_names: tuple[str, ...], dns_query: str | None) -> _Side:
        role = "source" if direction == "egress" else "destination"
        if not isinstance(subject, Pod):
            return _Side("allow", f"{direction}: {role} {subject.describe()} is not a pod; no policy applies")
        at = f"{direction} at {subject.describe()}"
        selecting = self._selecting(subject)
        patterns: tuple[DnsPattern, ...] = ()
        if direction == "egress":
            patterns = tuple(d for p in selecting for r in p.egress for e in r.to_ports for d in e.dns or ())
        ctx = _Context(direction, subject, peer, peer_identity(peer, subject, self.cluster_name), conn, dns_names,
                       lambda name: any(d.matches(name) for d in patterns))
        notes: list[str] = []
        denied = [r.label for p in selecting for r in p.denies(direction) if self._match(r, ctx, notes) is not None]
        if denied:
            return _Side("drop", f"{at}: dropped by {', '.join(denied)} (deny beats every allow)", tuple(notes))
        if direction == "ingress" and is_own_node(subject, peer):
            return _Side("allow", f"{at}: allowed, traffic from the pod's own node {peer.describe()} is always "
                         "allowed (Cilium's allow-localhost)", tuple(notes))
        matches = []
        for policy in selecting:
            for rule in policy.allows(direction):
                entries = self._match(rule, ctx, notes)
                if entries is not None:
                    matches.append(_Match(rule, entries))
        enforcing = [p.ident for p in selecting if direction in p.default_deny]
        if enforcing:
            head = f"{at}: default deny (by {', '.join(enforcing)})"
            if not matches:
                return _Side("drop", f"{head}; no {direction} rule allows {conn.describe()}", tuple(notes))
            head += f"; allowed by {', '.join(m.rule.label for m in matches)}"
        else:
            why = f"selected only by {', '.join(p.ident for p in selecting)}" if selecting else "no policy selects it"
            head = f"{at}: not in default deny ({why}); allowed at L3/L4"
        if dns_query is not None:
            return _dns_l7(head, matches, dns_query, tuple(notes))
        return _http_l7(head, matches, conn, tuple(notes))

    # -- rule matching

    def _match(self, rule: Rule, ctx: _Context, notes: list[str]) -> tuple[PortRule | None, ...] | None:
        """The matching toPorts entries of ``rule`` if its L3 and L4 match the connection, else None."""
        entries = rule.match_l4(ctx.conn)
        if entries is None:
            return None
        if not rule.has_l3:
            # only L4: every peer; neither (an empty rule {}): nothing
            return entries if rule.has_l4 else None
        return entries if self._l3(rule, ctx, notes) else None

    def _l3(self, rule: Rule, ctx: _Context, notes: list[str]) -> bool:
        if rule.any_peer:
            return True
        ok = False
        for peer in rule.endpoints or ():
            if peer.ignored:
                if EndpointPeer(peer.selector, pods_only=True).matches(ctx.peer_identity):
                    notes.append(
                        f"note: {rule.label} selects {peer.selector.describe()} by namespace labels "
                        f"({', '.join(peer.ignored)}), which Cilium does not honour in a CiliumNetworkPolicy peer: "
                        "the selector matches nothing (use a CiliumClusterwideNetworkPolicy)")
            elif peer.matches(ctx.peer_identity):
                ok = True
        if any(entity_matches(e, ctx.subject, ctx.peer) for e in rule.entities or ()):
            ok = True
        for cidr in rule.cidrs or ():
            if cidr.matches(ctx.peer):
                ok = True
            elif not cidr.sets and isinstance(ctx.peer, External):
                notes.append(f"note: {rule.label} {cidr.text}")
        if rule.fqdns is not None and self._fqdn(rule, rule.fqdns, ctx, notes):
            ok = True
        return ok

    def _fqdn(self, rule: Rule, fqdns: tuple[DnsPattern, ...], ctx: _Context, notes: list[str]) -> bool:
        if not isinstance(ctx.peer, External):
            return False  # IPs learned for names inside the cluster are not applied to toFQDNs
        if not ctx.dns_names:
            notes.append(f"note: {rule.label} has toFQDNs, but no DNS name was resolved for "
                         f"{ctx.peer.ip} through the DNS proxy (dns_names is empty)")
            return False
        for name in ctx.dns_names:
            if any(f.matches(name) for f in fqdns):
                if ctx.visible(name):
                    return True
                notes.append(f"note: {name} matches toFQDNs of {rule.label}, but no rules.dns pattern in the "
                             f"egress policy of {ctx.subject.describe()} covers it, so the DNS proxy never "
                             "learns its addresses and toFQDNs allows nothing")
        return False


# --------------------------------------------------------------------------------------------
# L7


def _no_l7(entry: PortRule | None) -> bool:
    return entry is None or not entry.has_l7


def _http_l7(head: str, matches: list[_Match], conn: Connection, notes: tuple[str, ...]) -> _Side:
    """Once an allowing rule has HTTP rules on the port, the request must match one of them, unless
    another allowing rule covers the same peer and port without L7 rules (Cilium's L7 wildcard)."""
    proxied = [e for m in matches for e in m.entries if e is not None and e.http is not None]
    if not proxied:
        return _Side("allow", head, notes)
    where = ", ".join(dict.fromkeys(e.label for e in proxied))
    if conn.http is None:
        return _Side("drop", f"{head}; but the port is proxied for HTTP ({where}) and the connection carries "
                     "no HTTP request: dropped by the proxy", notes)
    request = describe_request(conn.http)
    wildcard = [m.rule.label for m in matches if any(_no_l7(e) for e in m.entries)]
    if wildcard:
        return _Side("allow", f"{head}; L7: {request} allowed, {', '.join(wildcard)} allows this peer and port "
                     "without HTTP rules (L7 wildcard)", notes)
    for entry in proxied:
        for rule in entry.http or ():
            if rule.matches(conn.http):
                return _Side("allow", f"{head}; L7: {request} matches {rule.describe()}", notes)
    return _Side("l7-deny", f"{head}; L7: {request} matches no HTTP rule of {where}: 403 Access denied", notes)


def _dns_l7(head: str, matches: list[_Match], name: str, notes: tuple[str, ...]) -> _Side:
    proxied = [e for m in matches for e in m.entries if e is not None and e.dns is not None]
    if not proxied:
        return _Side("allow", f"{head}; no rules.dns on this port: the DNS proxy does not see the query", notes)
    for entry in proxied:
        for pattern in entry.dns or ():
            if pattern.matches(name):
                return _Side("allow", f"{head}; DNS proxy: {name} allowed by {entry.label} {pattern.describe()}",
                             notes, visible=True)
    wildcard = [m.rule.label for m in matches if any(_no_l7(e) for e in m.entries)]
    if wildcard:
        return _Side("allow", f"{head}; DNS proxy: no rules.dns pattern covers {name}, but {', '.join(wildcard)} "
                     "allows this peer and port without L7 rules (L7 wildcard)", notes)
    where = ", ".join(dict.fromkeys(e.label for e in proxied))
    return _Side("l7-deny", f"{head}; DNS proxy: no rules.dns pattern of {where} covers {name}: refused", notes)


def _conclusion(what: str, outcome: Outcome, egress: _Side, ingress: _Side) -> str:
    if outcome == "allow":
        return f"{what}: allowed"
    sides = " and ".join(name for name, side in (("egress", egress), ("ingress", ingress)) if side.outcome == outcome)
    if outcome == "drop":
        return f"{what}: dropped by {sides}"
    return f"{what}: denied at L7 by {sides}"

"""Who is on the other side of a rule: workloads, external networks, DNS names, entities.

Model assumption shared by every target: CIDR and DNS-name peers denote
addresses *outside* the cluster, never pods or nodes (Cilium's default; the
Kubernetes target carves the declared cluster CIDRs out of every ipBlock to
keep that true on engines where ipBlock also matches pods).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Mapping

import attrs

from netpol_dsl.ir.selectors import NAMESPACE_NAME_LABEL, Constraint, Selector, Shape
from netpol_dsl.values import IPNetwork


class NotExact(Exception):
    """A set difference has no exact finite form (the caller reports why)."""


@attrs.frozen(order=True)
class Workloads:
    """Pods matching ``pods`` in namespaces matching ``namespaces`` (AND)."""

    namespaces: Selector = Selector()
    pods: Selector = Selector()

    @property
    def namespace(self) -> str | None:
        """The single namespace this set lives in, when the namespace selector names exactly one."""
        c = self.namespaces.get(NAMESPACE_NAME_LABEL)
        if c is not None and c.shape is Shape.IN and len(c.values) == 1:
            return c.values[0]
        return None

    def matches(self, namespace_labels: Mapping[str, str], pod_labels: Mapping[str, str]) -> bool:
        return self.namespaces.matches(namespace_labels) and self.pods.matches(pod_labels)

    def conjoin(self, other: Workloads) -> Workloads | None:
        ns = self.namespaces.conjoin(other.namespaces)
        pods = self.pods.conjoin(other.pods)
        return None if ns is None or pods is None else Workloads(ns, pods)

    def minus(self, other: Workloads) -> tuple[Workloads, ...]:
        if self.conjoin(other) is None:
            return (self,)
        pieces = [Workloads(ns, self.pods) for ns in self.namespaces.minus(other.namespaces)]
        pieces += [Workloads(self.namespaces, p) for p in self.pods.minus(other.pods)]
        return tuple(minimal_workloads(pieces))

    def issubset(self, other: Workloads) -> bool:
        return self.namespaces.issubset(other.namespaces) and self.pods.issubset(other.pods)

    def describe(self) -> str:
        ns = self.namespace or ("*" if self.namespaces.is_all else f"ns[{self.namespaces.describe()}]")
        return f"{ns}/{self.pods.describe()}"


def minimal_workloads(items: list[Workloads]) -> list[Workloads]:
    items = sorted(set(items))
    return [w for i, w in enumerate(items) if not any(j != i and w.issubset(o) for j, o in enumerate(items))]


def namespace_selector(name: str) -> Selector:
    return Selector((Constraint(NAMESPACE_NAME_LABEL, Shape.IN, (name,)),))


@attrs.frozen(order=True)
class Network:
    """External addresses in ``cidr`` but not in any of ``excepts``."""

    cidr: IPNetwork = attrs.field(order=lambda n: (n.version, n))
    excepts: tuple[IPNetwork, ...] = attrs.field(default=(), order=lambda t: [(n.version, n) for n in t])

    @classmethod
    def make(cls, cidr: IPNetwork, excepts: tuple[IPNetwork, ...] = ()) -> Network:
        inside: list[IPNetwork] = [e for e in excepts if e.version == cidr.version and e.subnet_of(cidr)]  # type: ignore[arg-type]
        collapsed: list[IPNetwork] = list(ipaddress.collapse_addresses(inside))  # type: ignore[type-var]
        return cls(cidr, tuple(sorted(collapsed, key=lambda n: (n.version, n))))

    def contains(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return ip.version == self.cidr.version and ip in self.cidr and not any(ip in e for e in self.excepts)

    def minus(self, other: Network) -> tuple[Network, ...]:
        a, b = self.cidr, other.cidr
        if a.version != b.version or not a.overlaps(b):
            return (self,)
        if a.subnet_of(b):  # type: ignore[arg-type]
            # a ∩ (other's excepts) survive, minus our own excepts
            out = []
            for f in other.excepts:
                if f.subnet_of(a):  # type: ignore[arg-type]
                    out.append(Network.make(f, self.excepts))
                elif a.subnet_of(f):  # type: ignore[arg-type]
                    out.append(self)
            return tuple(n for n in out if not _covered(n.cidr, self.excepts))
        # b strictly inside a: carve b out, keep the parts of b that other excepts
        out = [Network.make(a, (*self.excepts, b))]
        out += [Network.make(f, self.excepts) for f in other.excepts]
        return tuple(n for n in out if not _covered(n.cidr, self.excepts))

    def describe(self) -> str:
        return str(self.cidr) + (f" except {', '.join(map(str, self.excepts))}" if self.excepts else "")


def exclude(net: IPNetwork, avoid: Iterable[IPNetwork]) -> list[IPNetwork]:
    """``net`` minus every network of ``avoid``, as a sorted list of CIDRs."""
    pieces = [net]
    for a in avoid:
        nxt: list[IPNetwork] = []
        for p in pieces:
            if p.version != a.version or not p.overlaps(a):
                nxt.append(p)
            elif not p.subnet_of(a):  # type: ignore[arg-type]
                nxt += p.address_exclude(a)  # type: ignore[arg-type]
        pieces = nxt
    return sorted(pieces, key=lambda n: (n.version, n))


def _covered(cidr: IPNetwork, excepts: tuple[IPNetwork, ...]) -> bool:
    return any(cidr.subnet_of(e) for e in excepts)  # type: ignore[arg-type]


@attrs.frozen(order=True)
class DnsName:
    """External hosts by DNS name: an exact name, or a pattern (``*`` within a label, ``**.`` any depth)."""

    pattern: str
    exact: bool = True

    def matches(self, name: str) -> bool:
        name = name.rstrip(".").lower()
        if self.exact:
            return name == self.pattern
        return dns_pattern_regex(self.pattern).fullmatch(name) is not None

    def describe(self) -> str:
        return self.pattern


def dns_pattern_regex(pattern: str) -> re.Pattern[str]:
    if pattern == "*":
        return re.compile(r"[-a-z0-9_.]+")
    labels = pattern.split(".")
    prefix = ""
    if labels[0] == "**":
        prefix, labels = r"(?:[-a-z0-9_]+\.)+", labels[1:]
    body = r"\.".join(re.escape(label).replace(r"\*", "[-a-z0-9_]*") for label in labels)
    return re.compile(prefix + body)


class EntityKind(enum.Enum):
    """Well-known peers that are neither pods nor external networks."""

    HOST = "host"
    REMOTE_NODE = "remote-node"
    KUBE_APISERVER = "kube-apiserver"
    CLUSTER = "cluster"  # every pod and node of the cluster


@attrs.frozen(order=True)
class Entity:
    kind: EntityKind = attrs.field(order=lambda k: k.value)

    def describe(self) -> str:
        return self.kind.value


@attrs.frozen(order=True)
class Anything:
    """Every peer: all pods, nodes and external addresses."""

    def describe(self) -> str:
        return "anything"


Peer = Workloads | Network | DnsName | Entity | Anything

_PEER_ORDER = {Workloads: 0, Network: 1, DnsName: 2, Entity: 3, Anything: 4}


def peer_key(peer: Peer) -> tuple[int, str]:
    return (_PEER_ORDER[type(peer)], repr(peer))


def subtract_peer(peer: Peer, other: Peer) -> tuple[Peer, ...]:
    """``peer − other`` as a union of peers; raises NotExact when no exact form exists."""
    if isinstance(other, Anything):
        return ()
    match peer:
        case Anything():
            raise NotExact(f"'anything' minus {other.describe()} has no exact form")
        case Workloads():
            if isinstance(other, Workloads):
                return peer.minus(other)
            if isinstance(other, Entity) and other.kind is EntityKind.CLUSTER:
                return ()
            return (peer,)
        case Network():
            if isinstance(other, Network):
                return peer.minus(other)
            if isinstance(other, DnsName):
                raise NotExact(f"the addresses of {other.describe()} are not known when compiling")
            return (peer,)
        case DnsName():
            if isinstance(other, DnsName):
                if peer == other or (not other.exact and peer.exact and other.matches(peer.pattern)):
                    return ()
                if peer.exact and other.exact:
                    return (peer,)
                raise NotExact(f"{peer.describe()} minus {other.describe()} has no exact form")
            if isinstance(other, Network):
                raise NotExact(f"the addresses of {peer.describe()} are not known when compiling")
            return (peer,)
        case Entity():
            if isinstance(other, Entity):
                if other == peer or other.kind is EntityKind.CLUSTER:
                    return ()
                if peer.kind is EntityKind.CLUSTER:
                    raise NotExact(f"entity 'cluster' minus {other.describe()} has no exact form")
                return (peer,)
            if isinstance(other, Workloads) and peer.kind is EntityKind.CLUSTER:
                raise NotExact(f"entity 'cluster' minus {other.describe()} has no exact form")
            return (peer,)
    raise AssertionError(peer)


"""IR nodes: tiers, directed rules and the program a policy module lowers to."""

from __future__ import annotations

import enum

import attrs

from netpol_dsl.diagnostics import Location
from netpol_dsl.ir.peers import DnsName, Peer, Workloads, peer_key
from netpol_dsl.ir.ports import Ports, describe_ports
from netpol_dsl.values import IPNetwork


class Action(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    PASS = "pass"


class Direction(enum.Enum):
    """The side of a connection where a rule is enforced."""

    INGRESS = "ingress"
    EGRESS = "egress"


@attrs.frozen(order=True)
class Tier:
    """An ordered layer of rules; lower ``order`` is evaluated first."""

    order: int
    name: str


@attrs.frozen(order=True)
class HttpMatch:
    """One allowed request shape; every field is optional (None: any)."""

    method: str | None = None
    path: str | None = None  # a regex matched against the whole path
    host: str | None = None  # a regex matched against the whole Host header
    headers: tuple[tuple[str, str | None], ...] = ()  # (name, value) pairs; value None: present

    def describe(self) -> str:
        parts = [self.method or "*", self.path or "/*"]
        if self.host:
            parts.append(f"host={self.host}")
        parts += [f"{k}: {v}" if v is not None else k for k, v in self.headers]
        return " ".join(parts)


def _origins_default() -> tuple[Location, ...]:
    return ()


@attrs.frozen
class Rule:
    """One directed rule: at ``subject`` workloads, for traffic in ``direction`` to/from ``peer``."""

    tier: Tier
    action: Action = attrs.field(order=lambda a: a.value)
    direction: Direction = attrs.field(order=lambda d: d.value)
    subject: Workloads
    peer: Peer = attrs.field(order=peer_key)
    ports: Ports = attrs.field(order=lambda p: (p is not None, p or ()))
    http: tuple[HttpMatch, ...] = ()
    flow: str = ""  # the flow this rule came from, e.g. "frontend -> backend"; for messages
    group: str = ""  # "" for user rules; the baseline feature ("dns", "logging", ...) otherwise
    origins: tuple[Location, ...] = attrs.field(default=(), eq=False, order=False)
    dns: tuple[DnsName, ...] = ()  # DNS lookups of these names only (the lookups an FQDN allow needs)
    log: bool = False  # log matching traffic where the engine can; never changes a verdict

    def sort_key(self) -> tuple[object, ...]:
        return (
            self.tier,
            self.group,
            self.direction.value,
            self.subject,
            self.action.value,
            peer_key(self.peer),
            self.ports is not None,
            self.ports or (),
            self.http,
            self.dns,
            self.log,
        )

    def describe(self) -> str:
        arrow = "<-" if self.direction is Direction.INGRESS else "->"
        peer, ports = self.peer.describe(), describe_ports(self.ports)
        text = f"{self.action.value} {self.subject.describe()} {arrow} {peer} {ports}"
        if self.http:
            text += " http[" + "; ".join(h.describe() for h in self.http) + "]"
        return f"{text} (tier {self.tier.name})"

    @property
    def location(self) -> Location:
        return self.origins[0] if self.origins else Location("<baseline>", 0)


@attrs.frozen
class Isolation:
    """Workloads that are default-deny in one direction even without allow rules (baseline)."""

    subject: Workloads
    direction: Direction = attrs.field(order=lambda d: d.value)
    origins: tuple[Location, ...] = attrs.field(default=(), eq=False)


@attrs.frozen
class ClusterFacts:
    """What the compiler may assume about the cluster (declared by the module)."""

    pod_cidrs: tuple[IPNetwork, ...] = ()
    service_cidrs: tuple[IPNetwork, ...] = ()
    node_cidrs: tuple[IPNetwork, ...] = ()
    namespace_labels: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()  # declared namespaces

    def labels_of(self, namespace: str) -> dict[str, str] | None:
        for name, labels in self.namespace_labels:
            if name == namespace:
                return dict(labels)
        return None


@attrs.frozen
class Expectation:
    """A stated expectation, lowered: every source peer can (or cannot) reach every destination peer."""

    sources: tuple[Peer, ...]
    destinations: tuple[Peer, ...]
    ports: Ports
    reach: bool
    http: HttpMatch | None
    text: str
    location: Location = attrs.field(eq=False)


@attrs.frozen
class Program:
    """Everything one policy module declared, normalised: the input of every target."""

    name: str
    tiers: tuple[Tier, ...]
    rules: tuple[Rule, ...]
    isolations: tuple[Isolation, ...]
    owned_namespaces: tuple[str, ...]
    cluster: ClusterFacts
    location: Location = attrs.field(eq=False)
    expectations: tuple[Expectation, ...] = ()

"""The compiled policy model: L4 (ports, ICMP), L3 peers (endpoints, entities, CIDRs, FQDNs), rules, policies."""

from __future__ import annotations

from typing import Literal

import attrs

from netpol_dsl.endpoints import ApiServer, Connection, Endpoint, External, Node, Pod
from netpol_dsl.engines.cilium.l7 import DnsPattern, HttpRule
from netpol_dsl.engines.cilium.selectors import EndpointPeer, Identity, Selector, is_own_node
from netpol_dsl.engines.manifest import CidrBlock, PortSpec

Direction = Literal["ingress", "egress"]

PORT_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})
# need --enable-extended-ip-protocols; matched by protocol alone (they have no ports)
EXTENDED_PROTOCOLS = frozenset({"VRRP", "IGMP", "GRE", "IPIP", "IPV6", "ESP", "AH"})

ENTITIES = frozenset({
    "all", "world", "cluster", "host", "remote-node", "kube-apiserver",
    "init", "health", "unmanaged", "ingress", "none",
})

# ICMP type names accepted by Cilium (pkg/policy/api/icmp.go), per family
ICMP_TYPES: dict[str, dict[str, int]] = {
    "IPv4": {
        "EchoReply": 0, "DestinationUnreachable": 3, "Redirect": 5, "Echo": 8, "EchoRequest": 8,
        "RouterAdvertisement": 9, "RouterSelection": 10, "TimeExceeded": 11, "ParameterProblem": 12,
        "Timestamp": 13, "TimestampReply": 14, "Photuris": 40, "ExtendedEchoRequest": 42,
        "ExtendedEchoReply": 43,
    },
    "IPv6": {
        "DestinationUnreachable": 1, "PacketTooBig": 2, "TimeExceeded": 3, "ParameterProblem": 4,
        "EchoRequest": 128, "EchoReply": 129, "MulticastListenerQuery": 130,
        "MulticastListenerReport": 131, "MulticastListenerDone": 132, "RouterSolicitation": 133,
        "RouterAdvertisement": 134, "NeighborSolicitation": 135, "NeighborAdvertisement": 136,
        "RedirectMessage": 137, "RouterRenumbering": 138, "ICMPNodeInformationQuery": 139,
        "ICMPNodeInformationResponse": 140, "InverseNeighborDiscoverySolicitation": 141,
        "InverseNeighborDiscoveryAdvertisement": 142, "HomeAgentAddressDiscoveryRequest": 144,
        "HomeAgentAddressDiscoveryReply": 145, "MobilePrefixSolicitation": 146,
        "MobilePrefixAdvertisement": 147, "DuplicateAddressRequestCodeSuffix": 157,
        "DuplicateAddressConfirmationCodeSuffix": 158, "ExtendedEchoRequest": 160, "ExtendedEchoReply": 161,
    },
}
# the Connection.protocol spelling of each ICMP family (upper-cased before comparing)
ICMP_PROTOCOLS = {"IPv4": frozenset({"ICMP"}), "IPv6": frozenset({"ICMPV6", "ICMP6"})}


# --------------------------------------------------------------------------------------------
# L4


@attrs.frozen
class PortProtocol(PortSpec):
    """One ``ports[]`` item: ``protocol`` TCP/UDP/SCTP/ANY (or an extended IP protocol), ``port``
    a number, a named container port or None (every port), ``end_port`` an inclusive range end."""

    def matches(self, protocol: str, port: int, destination: Endpoint) -> bool:
        if self.protocol in EXTENDED_PROTOCOLS:
            return protocol == self.protocol
        if protocol not in PORT_PROTOCOLS or self.protocol not in ("ANY", protocol):
            return False
        return self.covers(protocol, port, destination)


@attrs.frozen
class IcmpField:
    """``icmps[].fields[]``: the Connection's ``port`` carries the ICMP type.

    Cilium turns each field into a port rule whose port is the type, and port 0 is its wildcard: a
    field of type 0 matches every type of its family (cilium/cilium#41304, open; the datapath keys
    ICMP by ``type << 8``, so type 0 is also the wildcard there)."""

    family: str  # IPv4 | IPv6
    type: int

    def matches(self, protocol: str, port: int) -> bool:
        return protocol in ICMP_PROTOCOLS[self.family] and (self.type == 0 or port == self.type)

    def describe(self) -> str:
        kind = f"type {self.type}" if self.type else "type 0 (every type: cilium/cilium#41304)"
        return f"{'ICMP' if self.family == 'IPv4' else 'ICMPv6'} {kind}"


@attrs.frozen
class PortRule:
    """One ``toPorts`` entry: its ports (empty: every TCP/UDP/SCTP port) and L7 rules."""

    label: str
    ports: tuple[PortProtocol, ...]
    http: tuple[HttpRule, ...] | None = None
    dns: tuple[DnsPattern, ...] | None = None

    def matches(self, conn: Connection) -> bool:
        protocol = conn.protocol.upper()
        ports = self.ports or (PortProtocol("ANY"),)
        return any(p.matches(protocol, conn.port, conn.dst) for p in ports)

    @property
    def has_l7(self) -> bool:
        return self.http is not None or self.dns is not None

    def describe(self) -> str:
        return ", ".join(p.describe() for p in self.ports) if self.ports else "ANY/any"


# --------------------------------------------------------------------------------------------
# L3


@attrs.frozen
class CidrSet(CidrBlock):
    """A CIDR with exceptions of a CIDR peer."""


@attrs.frozen
class CidrPeer:
    """A ``toCIDR`` item, a ``toCIDRSet`` item (possibly a CiliumCIDRGroup, resolved) or a Kubernetes
    ``ipBlock``.  CIDR peers only ever match :class:`External` endpoints (Cilium's default
    ``policy-cidr-match-mode``: pods and nodes are selected by identity, never by address)."""

    sets: tuple[CidrSet, ...]
    text: str

    def matches(self, endpoint: Endpoint) -> bool:
        return isinstance(endpoint, External) and any(s.matches(endpoint.ip) for s in self.sets)


def entity_matches(entity: str, subject: Pod, peer: Endpoint) -> bool:
    """Whether ``peer`` belongs to the entity, seen from the policy's subject pod."""
    if entity == "all":
        return True
    if entity == "world":
        return isinstance(peer, External)
    if entity == "cluster":
        return isinstance(peer, Pod | Node | ApiServer)
    if entity == "host":
        return is_own_node(subject, peer)
    if entity == "remote-node":
        return isinstance(peer, Node) and not is_own_node(subject, peer)
    if entity == "kube-apiserver":
        return isinstance(peer, ApiServer)
    return False  # init, health, unmanaged, ingress, none: no such endpoints here


_ICMP_FAMILY = {name: family for family, names in ICMP_PROTOCOLS.items() for name in names}


@attrs.frozen
class _IcmpIndex:
    """The (family, type) pairs of some ``icmps`` fields, and the families with a type-0 field (every type)."""

    types: frozenset[tuple[str, int]]
    every: frozenset[str]

    def matches(self, protocol: str, port: int) -> bool:
        family = _ICMP_FAMILY[protocol]
        return family in self.every or (family, port) in self.types


@attrs.frozen
class Rule:
    """One rule of an ``ingress``/``egress``/``ingressDeny``/``egressDeny`` section.

    Each L3 field is None when absent and a tuple (maybe empty: selects nothing) when given; the
    rule's L3 is the union of the given fields.  No L3 field: every peer if the rule has L4,
    nothing otherwise (an empty rule ``{}``).  ``any_peer``: a Kubernetes rule without
    ``from``/``to``.  No L4 (``to_ports`` and ``icmps`` empty): every port and protocol.
    """

    label: str
    endpoints: tuple[EndpointPeer, ...] | None = None
    entities: tuple[str, ...] | None = None
    cidrs: tuple[CidrPeer, ...] | None = None
    fqdns: tuple[DnsPattern, ...] | None = None
    any_peer: bool = False
    to_ports: tuple[PortRule, ...] = ()
    icmps: tuple[IcmpField, ...] = ()
    _icmp_index: _IcmpIndex = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        index = _IcmpIndex(frozenset((f.family, f.type) for f in self.icmps),
                           frozenset(f.family for f in self.icmps if f.type == 0))
        object.__setattr__(self, "_icmp_index", index)

    @property
    def has_l3(self) -> bool:
        return self.any_peer or any(
            f is not None for f in (self.endpoints, self.entities, self.cidrs, self.fqdns)
        )

    @property
    def has_l4(self) -> bool:
        return bool(self.to_ports or self.icmps)

    def match_l4(self, conn: Connection) -> tuple[PortRule | None, ...] | None:
        """None if no L4 item matches; else the matching ``toPorts`` entries (None for an
        ICMP match or a rule without L4, which carry no L7 rules)."""
        if not self.has_l4:
            return (None,)
        protocol = conn.protocol.upper()
        found: list[PortRule | None] = [p for p in self.to_ports if p.matches(conn)]
        # every ICMP type may be listed (256 fields): look the connection up instead of trying each
        if self.icmps and protocol in _ICMP_FAMILY and self._icmp_index.matches(protocol, conn.port):
            found.append(None)
        return tuple(found) or None

    def describe_l4(self) -> str:
        items = [p.describe() for p in self.to_ports] + [f.describe() for f in self.icmps]
        return ", ".join(items) if items else "any port"


@attrs.frozen
class Policy:
    """One rule set (``spec`` or an item of ``specs``) of a CNP/CCNP, or a Kubernetes NetworkPolicy.

    ``namespace`` is None for a CCNP; ``subject`` is None for a host policy (``nodeSelector``),
    which never selects pods.  ``default_deny`` holds the directions this policy puts its subjects
    into default deny for (sections present and not disabled by ``enableDefaultDeny``).
    """

    kind: str
    name: str
    namespace: str | None
    subject: Selector | None
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    ingress_deny: tuple[Rule, ...] = ()
    egress_deny: tuple[Rule, ...] = ()
    default_deny: frozenset[Direction] = frozenset()
    spec_index: int | None = None

    @property
    def ident(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace is not None else self.name
        suffix = f" specs[{self.spec_index}]" if self.spec_index is not None else ""
        return f"{self.kind} {where}{suffix}"

    def selects(self, pod: Pod, identity: Identity) -> bool:
        if self.subject is None:
            return False
        if self.namespace is not None and pod.namespace != self.namespace:
            return False
        return self.subject.matches(identity)

    def allows(self, direction: Direction) -> tuple[Rule, ...]:
        return self.ingress if direction == "ingress" else self.egress

    def denies(self, direction: Direction) -> tuple[Rule, ...]:
        return self.ingress_deny if direction == "ingress" else self.egress_deny

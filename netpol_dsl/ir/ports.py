"""What traffic a rule matches: protocol, port or range or named port, or ICMP types.

``None`` in place of a tuple of ports means *all traffic* (every protocol, ICMP included).

TCP, UDP and SCTP have ports 1-65535, so port 0 is free to mean "every port" (``first == 0``).
ICMP and ICMPv6 have types 0-255, and type 0 is echo reply: there ``first..last`` is always a
range of types, and "every type" is the whole range ``0..255`` (:meth:`PortMatch.every`).
"""

from __future__ import annotations

from typing import Literal

import attrs

from netpol_dsl.ir.peers import NotExact

Protocol = Literal["TCP", "UDP", "SCTP", "ICMP", "ICMPv6"]
PORT_PROTOCOLS: tuple[Protocol, ...] = ("TCP", "UDP", "SCTP")  # any_protocol(), Cilium's ANY
ICMP_PROTOCOLS: tuple[Protocol, ...] = ("ICMP", "ICMPv6")
ALL_PROTOCOLS: tuple[Protocol, ...] = (*PORT_PROTOCOLS, *ICMP_PROTOCOLS)  # the order of normalized ports
ICMP_TYPES = (0, 255)
# the numbers each protocol has: ports, or ICMP types
SPAN: dict[str, tuple[int, int]] = {**dict.fromkeys(PORT_PROTOCOLS, (1, 65535)),
                                    **dict.fromkeys(ICMP_PROTOCOLS, ICMP_TYPES)}


@attrs.frozen(order=True)
class PortMatch:
    """One protocol with all ports (``first == 0``), a range ``first..last``, or a named port; for ICMP and
    ICMPv6 a range of types ``first..last``, all types being ``0..255`` (build it with :meth:`every`:
    ``PortMatch("ICMP")`` is type 0 alone, echo reply)."""

    protocol: Protocol
    first: int = 0
    last: int = 0
    name: str = ""

    @classmethod
    def every(cls, protocol: Protocol) -> PortMatch:
        """Every port (every type, for ICMP and ICMPv6) of ``protocol``."""
        return cls(protocol, *ICMP_TYPES) if protocol in ICMP_PROTOCOLS else cls(protocol)

    @property
    def is_icmp(self) -> bool:
        return self.protocol in ICMP_PROTOCOLS

    @property
    def all_ports(self) -> bool:
        """Every port, or every ICMP type, of the protocol."""
        if self.protocol in ICMP_PROTOCOLS:
            return (self.first, self.last) == ICMP_TYPES
        return self.first == 0 and not self.name

    @property
    def span(self) -> tuple[int, int]:
        """The numbers matched (ports or ICMP types), as an inclusive range; not for named ports."""
        return SPAN[self.protocol] if self.all_ports else (self.first, self.last)

    def matches(self, protocol: str, port: int, named: dict[str, int] | None = None) -> bool:
        """Whether a connection of ``protocol`` to ``port`` (for ICMP: of that type) matches."""
        if protocol != self.protocol:
            return False
        if self.name:
            return named is not None and named.get(self.name) == port
        return self.all_ports or self.first <= port <= self.last

    def describe(self) -> str:
        p = self.protocol.lower()
        if self.name:
            return f"{p}/{self.name}"
        if self.all_ports:
            return p
        return f"{p}/{self.first}" if self.first == self.last else f"{p}/{self.first}-{self.last}"


Ports = tuple[PortMatch, ...] | None


def icmp_matches(ports: Ports) -> tuple[PortMatch, ...]:
    """The ICMP and ICMPv6 entries of ``ports``."""
    return tuple(p for p in ports or () if p.is_icmp)


def icmp_types(p: PortMatch) -> range:
    """Every ICMP type an ICMP or ICMPv6 entry matches."""
    lo, hi = p.span
    return range(lo, hi + 1)


def normalize_ports(ports: Ports) -> Ports:
    """Sort, drop duplicates and ranges covered by another entry, merge adjacent ranges."""
    if ports is None:
        return None
    out: list[PortMatch] = []
    for proto in ALL_PROTOCOLS:
        mine = [p for p in ports if p.protocol == proto]
        if any(p.all_ports for p in mine):
            out.append(PortMatch.every(proto))
            continue
        names = sorted({p.name for p in mine if p.name})
        ranges = sorted((p.first, p.last) for p in mine if not p.name)
        merged: list[list[int]] = []
        for lo, hi in ranges:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        out += [PortMatch.every(proto) if (lo, hi) == SPAN[proto] else PortMatch(proto, lo, hi)
                for lo, hi in merged]
        out += [PortMatch(proto, name=n) for n in names]
    return tuple(out)


def ports_overlap(a: Ports, b: Ports) -> bool:
    if a is None or b is None:
        return True
    for x in a:
        for y in b:
            if x.protocol != y.protocol:
                continue
            if x.all_ports or y.all_ports:
                return True
            if x.name or y.name:
                return True  # a name may resolve to any number: assume overlap
            if x.first <= y.last and y.first <= x.last:
                return True
    return False


def subtract_ports(a: Ports, b: Ports) -> Ports:
    """``a − b``; the empty tuple means no traffic left.  Raises NotExact where no exact form exists."""
    if b is None:
        return ()
    if a is None:
        raise NotExact("'all traffic' minus some ports would need every other IP protocol listed")
    out: list[PortMatch] = []
    for x in a:
        pieces = [x]
        for y in b:
            if y.protocol != x.protocol:
                continue
            nxt: list[PortMatch] = []
            for p in pieces:
                nxt += _minus_one(p, y)
            pieces = nxt
        out += pieces
    return normalize_ports(tuple(out))


def _minus_one(p: PortMatch, y: PortMatch) -> list[PortMatch]:
    if y.all_ports:
        return []
    if p.name or y.name:
        if p.name and p.name == y.name:
            return []
        raise NotExact(f"{p.describe()} minus {y.describe()}: a named port's number is only known per pod")
    lo, hi = p.span
    if y.last < lo or y.first > hi:
        return [p]
    out = []
    if lo < y.first:
        out.append(PortMatch(p.protocol, lo, y.first - 1))
    if y.last < hi:
        out.append(PortMatch(p.protocol, y.last + 1, hi))
    return out


def describe_ports(ports: Ports) -> str:
    return "any" if ports is None else ",".join(p.describe() for p in ports)

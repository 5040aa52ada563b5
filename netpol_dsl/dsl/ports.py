"""Ports and protocols: ``tcp(8080)``, ``udp(53)``, ``tcp(port_range(8000, 8080))``, ``tcp("http")``, ``icmp(8)``."""

from __future__ import annotations

import attrs
from typeguard import typechecked

from netpol_dsl import values
from netpol_dsl.diagnostics import Location, caller_location
from netpol_dsl.ir.ports import PORT_PROTOCOLS, PortMatch, Protocol


@attrs.frozen
class PortRange:
    """An inclusive range of port numbers."""

    first: int
    last: int


@attrs.frozen
class PortSet:
    """Traffic on some ports of some protocols (or some ICMP types); the unit flows are written with."""

    matches: tuple[PortMatch, ...]
    location: Location = attrs.field(eq=False, factory=caller_location)

    def __or__(self, other: PortSet) -> PortSet:
        return PortSet(self.matches + other.matches)

    def describe(self) -> str:
        return ",".join(m.describe() for m in self.matches)


PortSpec = int | str | PortRange


@typechecked
def port_range(first: int, last: int) -> PortRange:
    """Ports ``first`` to ``last`` inclusive, e.g. ``tcp(port_range(8000, 8080))``."""
    values.port_range(first, last)
    return PortRange(first, last)


def _matches(protocols: tuple[Protocol, ...], ports: tuple[PortSpec, ...]) -> tuple[PortMatch, ...]:
    out: list[PortMatch] = []
    for proto in protocols:
        if not ports:
            out.append(PortMatch(proto))
        for p in ports:
            if isinstance(p, PortRange):
                out.append(PortMatch(proto, p.first, p.last))
            elif isinstance(p, str):
                out.append(PortMatch(proto, name=values.port_name(p)))
            else:
                n = values.port_number(p)
                out.append(PortMatch(proto, n, n))
    return tuple(out)


@typechecked
def tcp(*ports: int | str | PortRange) -> PortSet:
    """TCP on the given ports (numbers, ``port_range(...)`` or named container ports); no ports: all TCP."""
    return PortSet(_matches(("TCP",), ports))


@typechecked
def udp(*ports: int | str | PortRange) -> PortSet:
    """UDP on the given ports; no ports: all UDP."""
    return PortSet(_matches(("UDP",), ports))


@typechecked
def sctp(*ports: int | str | PortRange) -> PortSet:
    """SCTP on the given ports; no ports: all SCTP."""
    return PortSet(_matches(("SCTP",), ports))


@typechecked
def any_protocol(*ports: int | str | PortRange) -> PortSet:
    """TCP, UDP and SCTP on the given ports (Cilium's ``ANY``)."""
    return PortSet(_matches(PORT_PROTOCOLS, ports))


def _types(protocol: Protocol, types: tuple[int, ...]) -> tuple[PortMatch, ...]:
    if not types:
        return (PortMatch.every(protocol),)
    field = f"{protocol} type"
    return tuple(PortMatch(protocol, t, t) for t in (values.icmp_type(t, field) for t in types))


@typechecked
def icmp(*types: int) -> PortSet:
    """ICMP (IPv4) messages of the given types; no types: every ICMP type.

    Types only: codes cannot be matched (Cilium matches the type alone). ICMP is not a port protocol:
    ``any_protocol()`` does not include it, and NetworkPolicy cannot match it (``kubernetes``: NPD215).

    Args:
        types: ICMP types from 0 to 255 (NPD004), e.g. 8 (echo request), 0 (echo reply),
            3 (destination unreachable).

    Returns:
        A PortSet to pass to ``allow``/``deny``/``pass_`` or an expectation, alone or joined with ``|``.

    Example:
        ``allow(monitoring >> web, icmp(8))`` lets the monitoring pods ping the web pods.
    """
    return PortSet(_types("ICMP", types))


@typechecked
def icmpv6(*types: int) -> PortSet:
    """ICMPv6 messages of the given types; no types: every ICMPv6 type.

    Args:
        types: ICMPv6 types from 0 to 255 (NPD004), e.g. 128 (echo request), 129 (echo reply),
            2 (packet too big).

    Returns:
        A PortSet, as :func:`icmp`.

    Example:
        ``allow(monitoring >> web, icmp(8), icmpv6(128))`` allows ping over IPv4 and IPv6.
    """
    return PortSet(_types("ICMPv6", types))

"""Ports and protocols: ``tcp(8080)``, ``udp(53)``, ``tcp(port_range(8000, 8080))``, ``tcp("http")``."""

from __future__ import annotations

import attrs
from typeguard import typechecked

from netpol_dsl import values
from netpol_dsl.diagnostics import Location, caller_location
from netpol_dsl.ir.ports import PROTOCOLS, PortMatch, Protocol


@attrs.frozen
class PortRange:
    """An inclusive range of port numbers."""

    first: int
    last: int


@attrs.frozen
class PortSet:
    """Traffic on some ports of some protocols; the unit flows are written with."""

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
    return PortSet(_matches(PROTOCOLS, ports))

"""Expectations stated next to the rules: ``expect(frontend).reaches(backend, tcp(8080))``.

``netpol-dsl verify`` compiles the policy, simulates the target's output on a synthesized
inventory and reports every expectation that does not hold, at the line that states it.
"""

from __future__ import annotations

import attrs
from typeguard import typechecked

from netpol_dsl.diagnostics import Location, caller_location
from netpol_dsl.dsl.http import HttpRule
from netpol_dsl.dsl.ports import PortSet
from netpol_dsl.dsl.zones import Zone


@attrs.frozen
class Expectation:
    """``source`` can (``reach=True``) or cannot reach ``destination`` on ``ports`` (none: any port)."""

    source: Zone
    destination: Zone
    ports: tuple[PortSet, ...]
    reach: bool
    http: HttpRule | None = None
    location: Location = attrs.field(eq=False, factory=caller_location)

    def describe(self) -> str:
        verb = "reaches" if self.reach else "does not reach"
        ports = " ".join(p.describe() for p in self.ports) or "any port"
        return f"{self.source.label()} {verb} {self.destination.label()} on {ports}"


@attrs.frozen
class Expect:
    """The subject of an expectation; see :func:`expect`."""

    zone: Zone

    @typechecked
    def reaches(self, destination: Zone, *ports: PortSet, http: HttpRule | None = None) -> Expectation:
        """Every pod (or address) of the zone can open a connection to every one of ``destination``
        on every given port (none: on every port the policy mentions and one it does not)."""
        return Expectation(self.zone, destination, ports, True, http)

    @typechecked
    def does_not_reach(self, destination: Zone, *ports: PortSet) -> Expectation:
        """No member of the zone can connect to any member of ``destination`` on the ports."""
        return Expectation(self.zone, destination, ports, False)


@typechecked
def expect(zone: Zone) -> Expect:
    """Start an expectation: ``expect(frontend).reaches(backend, tcp(8080))``."""
    return Expect(zone)

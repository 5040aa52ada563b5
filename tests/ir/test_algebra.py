"""Exactness of the IR's set algebra, checked against membership on an exhaustive label universe."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from netpol_dsl.ir.peers import Network, NotExact
from netpol_dsl.ir.ports import PortMatch, normalize_ports, subtract_ports
from netpol_dsl.ir.selectors import Selector
from tests.strategies import label_universe, selectors

LABELS = label_universe()


@given(selectors, selectors)
def test_conjoin_is_and(a: Selector, b: Selector) -> None:
    both = a.conjoin(b)
    for labels in LABELS:
        expected = a.matches(labels) and b.matches(labels)
        assert (both is not None and both.matches(labels)) == expected


@given(selectors)
def test_negate_is_not(a: Selector) -> None:
    pieces = a.negate()
    for labels in LABELS:
        assert any(p.matches(labels) for p in pieces) == (not a.matches(labels))


@given(selectors, selectors)
def test_minus_is_exact(a: Selector, b: Selector) -> None:
    pieces = a.minus(b)
    for labels in LABELS:
        assert any(p.matches(labels) for p in pieces) == (a.matches(labels) and not b.matches(labels))


@given(selectors, selectors)
def test_subset_is_sound(a: Selector, b: Selector) -> None:
    if a.issubset(b):
        assert all(b.matches(labels) for labels in LABELS if a.matches(labels))


nets = st.sampled_from(["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.2.0.0/16", "0.0.0.0/0", "::/0"])


@st.composite
def networks(draw: st.DrawFn) -> Network:
    cidr = ipaddress.ip_network(draw(nets))
    excepts = [ipaddress.ip_network(e) for e in draw(st.lists(nets, max_size=2))]
    return Network.make(cidr, tuple(e for e in excepts if e != cidr))


PROBES = [ipaddress.ip_address(a) for a in
          ("10.0.0.1", "10.1.0.1", "10.1.2.3", "10.2.0.1", "10.3.0.1", "8.8.8.8", "2001:db8::1")]


@given(networks(), networks())
def test_network_minus_is_exact(a: Network, b: Network) -> None:
    pieces = a.minus(b)
    for ip in PROBES:
        assert any(p.contains(ip) for p in pieces) == (a.contains(ip) and not b.contains(ip))


port_matches = st.one_of(
    st.builds(lambda p, lo, w: PortMatch(p, lo, min(lo + w, 65535)), st.sampled_from(["TCP", "UDP"]),
              st.integers(1, 100), st.integers(0, 50)),
    st.builds(PortMatch, st.sampled_from(["TCP", "UDP"])),
)
port_tuples = st.one_of(st.none(), st.lists(port_matches, max_size=3).map(tuple))


@given(port_tuples, port_tuples)
def test_port_minus_is_exact_or_refused(a: tuple[PortMatch, ...] | None, b: tuple[PortMatch, ...] | None) -> None:
    try:
        left = subtract_ports(normalize_ports(a), normalize_ports(b))
    except NotExact:
        assert a is None  # only 'all traffic' minus ports is refused (no named ports here)
        return

    def has(ports: tuple[PortMatch, ...] | None, proto: str, port: int) -> bool:
        return ports is None or any(p.matches(proto, port) for p in ports)

    for proto in ("TCP", "UDP"):
        for port in (1, 2, 50, 99, 100, 150, 151, 200, 65535):
            assert has(left, proto, port) == (has(a, proto, port) and not has(b, proto, port))


def test_network_minus_drops_pieces_inside_our_own_excepts() -> None:
    """Found by test_network_minus_is_exact: (10/8 except 10.1/16) − (10/8 except 10.1.2/24) is empty."""
    a = Network.make(ipaddress.ip_network("10.0.0.0/8"), (ipaddress.ip_network("10.1.0.0/16"),))
    b = Network.make(ipaddress.ip_network("10.0.0.0/8"), (ipaddress.ip_network("10.1.2.0/24"),))
    assert a.minus(b) == ()

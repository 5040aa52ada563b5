"""Exactness of the IR's set algebra, checked against membership on an exhaustive label universe."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netpol_dsl.ir.peers import Network, NotExact
from netpol_dsl.ir.ports import SPAN, PortMatch, normalize_ports, ports_overlap, subtract_ports
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
    # ICMP types: ranges from type 0 (echo reply) on, and every type
    st.builds(lambda p, lo, w: PortMatch(p, lo, min(lo + w, 255)), st.sampled_from(["ICMP", "ICMPv6"]),
              st.integers(0, 10), st.integers(0, 3)),
    st.builds(PortMatch.every, st.sampled_from(["ICMP", "ICMPv6"])),
)
port_tuples = st.one_of(st.none(), st.lists(port_matches, max_size=3).map(tuple))
PORT_PROBES = {"TCP": (1, 2, 50, 99, 100, 150, 151, 200, 65535), "UDP": (1, 2, 50, 99, 100, 150, 151, 200, 65535),
               "ICMP": (0, 1, 2, 3, 8, 12, 13, 14, 255), "ICMPv6": (0, 1, 4, 10, 13, 128, 255)}


@given(port_tuples, port_tuples)
def test_port_minus_is_exact_or_refused(a: tuple[PortMatch, ...] | None, b: tuple[PortMatch, ...] | None) -> None:
    try:
        left = subtract_ports(normalize_ports(a), normalize_ports(b))
    except NotExact:
        assert a is None  # only 'all traffic' minus ports is refused (no named ports here)
        return

    def has(ports: tuple[PortMatch, ...] | None, proto: str, port: int) -> bool:
        return ports is None or any(p.matches(proto, port) for p in ports)

    for proto, probes in PORT_PROBES.items():
        for port in probes:
            assert has(left, proto, port) == (has(a, proto, port) and not has(b, proto, port))


@given(port_tuples)
def test_normalize_keeps_the_traffic(a: tuple[PortMatch, ...] | None) -> None:
    def has(ports: tuple[PortMatch, ...] | None, proto: str, port: int) -> bool:
        return ports is None or any(p.matches(proto, port) for p in ports)

    normal = normalize_ports(a)
    assert normalize_ports(normal) == normal
    for proto, probes in PORT_PROBES.items():
        for port in probes:
            assert has(normal, proto, port) == has(a, proto, port)


nonempty_port_tuples = st.one_of(st.none(), st.lists(port_matches, min_size=1, max_size=3).map(tuple))


@given(nonempty_port_tuples, nonempty_port_tuples)
def test_overlap_is_exact_on_numbers(a: tuple[PortMatch, ...] | None, b: tuple[PortMatch, ...] | None) -> None:
    """No named ports here, so overlap is exact: some port or type is in both (the generated TCP and UDP
    ranges end below 151, so ports up to 200 and 65535 stand for the rest)."""
    def numbers(ports: tuple[PortMatch, ...] | None, proto: str) -> set[int]:
        lo, hi = SPAN[proto]
        candidates = range(lo, hi + 1) if proto.startswith("ICMP") else (*range(1, 201), 65535)
        return {n for n in candidates if ports is None or any(p.matches(proto, n) for p in ports)}

    both = any(numbers(a, proto) & numbers(b, proto) for proto in ("TCP", "UDP", "ICMP", "ICMPv6"))
    assert ports_overlap(a, b) == both


def test_icmp_type_0_is_a_type_not_every_type() -> None:
    reply, every = PortMatch("ICMP", 0, 0), PortMatch.every("ICMP")
    assert not reply.all_ports and every.all_ports and every == PortMatch("ICMP", 0, 255)
    assert reply.matches("ICMP", 0) and not reply.matches("ICMP", 8) and not reply.matches("ICMPv6", 0)
    assert every.matches("ICMP", 0) and every.matches("ICMP", 255) and not every.matches("TCP", 80)
    assert (reply.describe(), every.describe(), PortMatch("ICMPv6", 128, 129).describe()) == (
        "icmp/0", "icmp", "icmpv6/128-129")
    assert normalize_ports((reply,)) == (reply,)
    assert normalize_ports((PortMatch("ICMP", 1, 255), reply)) == (every,)
    assert normalize_ports((PortMatch("ICMP", 8, 8), PortMatch("ICMP", 9, 9))) == (PortMatch("ICMP", 8, 9),)
    assert not ports_overlap((reply,), (PortMatch("ICMP", 8, 8),))
    assert ports_overlap((reply,), (every,))
    assert not ports_overlap((every,), (PortMatch.every("ICMPv6"),))
    assert not ports_overlap((PortMatch.every("TCP"),), (every,))
    assert subtract_ports((every,), (reply,)) == (PortMatch("ICMP", 1, 255),)
    assert subtract_ports((every,), (PortMatch("ICMP", 8, 8),)) == (PortMatch("ICMP", 0, 7), PortMatch("ICMP", 9, 255))
    assert subtract_ports((reply,), (every,)) == ()
    tcp_and_ping = normalize_ports((PortMatch("TCP", 80, 80), PortMatch("ICMP", 8, 8)))
    assert subtract_ports(tcp_and_ping, (PortMatch("ICMP", 8, 8),)) == (PortMatch("TCP", 80, 80),)
    assert subtract_ports(tcp_and_ping, (PortMatch.every("TCP"),)) == (PortMatch("ICMP", 8, 8),)


def test_all_traffic_minus_icmp_has_no_exact_form() -> None:
    with pytest.raises(NotExact, match="every other IP protocol"):
        subtract_ports(None, (PortMatch("ICMP", 8, 8),))


def test_network_minus_drops_pieces_inside_our_own_excepts() -> None:
    """Found by test_network_minus_is_exact: (10/8 except 10.1/16) − (10/8 except 10.1.2/24) is empty."""
    a = Network.make(ipaddress.ip_network("10.0.0.0/8"), (ipaddress.ip_network("10.1.0.0/16"),))
    b = Network.make(ipaddress.ip_network("10.0.0.0/8"), (ipaddress.ip_network("10.1.2.0/24"),))
    assert a.minus(b) == ()

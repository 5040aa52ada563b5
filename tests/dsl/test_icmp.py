"""ICMP as a protocol: the builders, their validation at the user's line, lowering to the IR and the
reference semantics (a Connection of protocol ICMP/ICMPv6 carries the type in ``port``)."""

from __future__ import annotations

import inspect

import pytest
from typeguard import TypeCheckError

import netpol_dsl as n
from netpol_dsl.diagnostics import Code
from netpol_dsl.endpoints import Connection, Pod
from netpol_dsl.ir.intent import decide
from netpol_dsl.ir.lower import lower
from netpol_dsl.ir.ports import PortMatch

SHOP = n.namespace("shop")
WEB, API = SHOP.pods(app="web").named("web"), SHOP.pods(app="api").named("api")
WEB_POD = Pod("shop", "web", {"app": "web"})
API_POD = Pod("shop", "api", {"app": "api"})


def _line() -> int:
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


# ---- builders ------------------------------------------------------------------------------------


def test_icmp_takes_types_and_no_types_means_every_type() -> None:
    assert n.icmp(8).matches == (PortMatch("ICMP", 8, 8),)
    assert n.icmp(8, 0).matches == (PortMatch("ICMP", 8, 8), PortMatch("ICMP", 0, 0))
    assert n.icmp().matches == (PortMatch.every("ICMP"),) == (PortMatch("ICMP", 0, 255),)
    assert n.icmpv6(128).matches == (PortMatch("ICMPv6", 128, 128),)
    assert n.icmpv6().matches == (PortMatch.every("ICMPv6"),)
    assert (n.tcp(80) | n.icmp(8) | n.icmpv6()).describe() == "tcp/80,icmp/8,icmpv6"


def test_type_0_is_echo_reply_not_every_type() -> None:
    (reply,) = n.icmp(0).matches
    assert not reply.all_ports and reply.describe() == "icmp/0"
    assert reply.matches("ICMP", 0) and not reply.matches("ICMP", 8)


def test_any_protocol_does_not_include_icmp() -> None:
    assert {m.protocol for m in n.any_protocol(53).matches} == {"TCP", "UDP", "SCTP"}
    assert {m.protocol for m in n.any_protocol().matches} == {"TCP", "UDP", "SCTP"}


@pytest.mark.parametrize("bad", [-1, 256, 1000, True])
def test_types_are_0_to_255_checked_at_the_users_line(bad: int) -> None:
    line = _line() + 2
    with pytest.raises(n.PolicyError) as exc:
        n.icmp(8, bad)
    d = exc.value.diagnostic
    assert d.code is Code.NPD004 and d.location.line == line and d.location.file.endswith("test_icmp.py")
    assert f"ICMP type {bad!r} is invalid; expected an integer from 0 to 255" in d.message


def test_icmpv6_types_are_checked_too() -> None:
    with pytest.raises(n.PolicyError, match=r"ICMPv6 type 300 is invalid"):
        n.icmpv6(300)
    assert n.icmpv6(0, 255).describe() == "icmpv6/0,icmpv6/255"


def test_a_type_name_is_a_type_error() -> None:
    """Checked by typeguard (the loader reports it as NPD018) and by mypy (tests/typing/icmp_type_name.py)."""
    with pytest.raises(TypeCheckError, match="is not an instance of int"):
        n.icmp("echo-request")  # type: ignore[arg-type]


def test_http_rules_need_tcp_ports_not_icmp() -> None:
    with pytest.raises(n.PolicyError, match="NPD020"):
        n.allow(WEB >> API, n.tcp(80) | n.icmp(8), http=n.get("/"))


# ---- IR and reference semantics ------------------------------------------------------------------


def test_lowering_normalizes_types_after_the_ports() -> None:
    policy = n.Policy("p", rules=[n.allow(WEB >> API, n.icmpv6(129, 128), n.icmp(9, 8, 0), n.tcp(80),
                                          direction="egress")])
    (rule,) = lower(policy).rules
    assert rule.ports == (PortMatch("TCP", 80, 80), PortMatch("ICMP", 0, 0), PortMatch("ICMP", 8, 9),
                          PortMatch("ICMPv6", 128, 129))
    every = n.Policy("p", rules=[n.allow(WEB >> API, n.icmp(8), n.icmp(), direction="egress")])
    assert lower(every).rules[0].ports == (PortMatch.every("ICMP"),)


@pytest.mark.parametrize("ports, protocol, kind, allowed", [
    ((n.icmp(8),), "ICMP", 8, True),
    ((n.icmp(8),), "ICMP", 0, False),
    ((n.icmp(8),), "ICMPv6", 8, False),
    ((n.icmp(0),), "ICMP", 0, True),
    ((n.icmp(0),), "ICMP", 8, False),  # type 0 is one type, not all of them
    ((n.icmp(),), "ICMP", 0, True),
    ((n.icmp(),), "ICMP", 255, True),
    ((n.icmp(),), "TCP", 80, False),
    ((n.icmpv6(128),), "ICMPv6", 128, True),
    ((n.tcp(),), "ICMP", 8, False),
    ((n.any_protocol(),), "ICMP", 8, False),
    ((), "ICMP", 8, True),  # no ports: all traffic, ICMP included
])
def test_reference_semantics_match_icmp_by_type(ports: tuple[n.PortSet, ...], protocol: str, kind: int,
                                                allowed: bool) -> None:
    policy = n.Policy("p", owns=[SHOP], baseline=n.baseline(dns=None), rules=[n.allow(WEB >> API, *ports)])
    assert decide(lower(policy), Connection(WEB_POD, API_POD, protocol, kind)).allowed is allowed


def test_a_deny_of_one_type_leaves_the_others() -> None:
    policy = n.Policy("p", owns=[SHOP], baseline=n.baseline(dns=None), rules=[
        n.allow(WEB >> API, n.icmp()), n.deny(WEB >> API, n.icmp(0))])
    program = lower(policy)
    assert not decide(program, Connection(WEB_POD, API_POD, "ICMP", 0)).allowed
    assert decide(program, Connection(WEB_POD, API_POD, "ICMP", 8)).allowed

"""Properties of the cilium target over generated intents with FQDN zones, HTTP rules, ICMP types, tiers,
denies and passes: the output, evaluated by the Cilium engine, allows exactly the intent (a connection to
a DNS name is made after the client resolved it through the cluster DNS, so toFQDNs can match)."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings

import netpol_dsl as n
from netpol_dsl.compiler import compile_program
from netpol_dsl.endpoints import Connection
from netpol_dsl.ir.lower import lower
from netpol_dsl.render.yaml import dump
from tests.helpers import output_vs_intent
from tests.strategies import connections, policies

CONNECTIONS = connections(with_http=True)
ICMP_CONNECTIONS = connections(with_http=True, icmp=True)  # for intents with ICMP rules


def _mismatches(policy: n.Policy, conns: Sequence[Connection] = CONNECTIONS) -> list[str] | None:
    return output_vs_intent(policy, "cilium", conns)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(l7=True, icmp=True))
def test_output_allows_exactly_the_intent(policy: n.Policy) -> None:
    wrong = _mismatches(policy, ICMP_CONNECTIONS)
    if wrong is not None:
        assert not wrong, "\n".join(wrong[:20])


def test_generated_policies_mostly_compile() -> None:
    compiled, total = 0, 30

    @settings(max_examples=total, deadline=None, database=None, derandomize=True)
    @given(policies(l7=True, icmp=True))
    def count(policy: n.Policy) -> None:
        nonlocal compiled
        if _mismatches(policy) is not None:
            compiled += 1

    count()
    assert compiled >= total * 2 // 3, f"only {compiled} of {total} generated policies compiled"


@settings(max_examples=30, deadline=None)
@given(policies(l7=True))
def test_compiling_is_deterministic(policy: n.Policy) -> None:
    def render() -> list[str]:
        try:
            return [dump(m.body) for m in compile_program(lower(policy), "cilium").manifests]
        except n.CompileError as exc:
            return [d.render() for d in exc.diagnostics]

    assert render() == render()

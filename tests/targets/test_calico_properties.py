"""Properties of the calico target over generated intents with tiers, denies, passes and ICMP types: the output,
evaluated by the Calico engine (tiers by order, first match, Pass, end-of-tier actions), allows exactly
the intent.  Intents Calico Open Source cannot express (FQDN, entities) are refused, never widened."""

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

CONNECTIONS = connections()
ICMP_CONNECTIONS = connections(icmp=True)  # for intents with ICMP rules


def _mismatches(policy: n.Policy, conns: Sequence[Connection] = CONNECTIONS) -> list[str] | None:
    return output_vs_intent(policy, "calico", conns)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(icmp=True))
def test_output_allows_exactly_the_intent(policy: n.Policy) -> None:
    wrong = _mismatches(policy, ICMP_CONNECTIONS)
    if wrong is not None:
        assert not wrong, "\n".join(wrong[:20])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(tiers=("security", "application")))
def test_rules_of_one_tier_decide_deny_then_pass_then_allow(policy: n.Policy) -> None:
    """Two tiers only, so that denies, passes and allows of one tier overlap often: Calico's policy order
    inside a tier must give deny > pass > allow (a swapped order fails here)."""
    wrong = _mismatches(policy)
    if wrong is not None:
        assert not wrong, "\n".join(wrong[:20])


def test_generated_policies_often_compile() -> None:
    """Entities and FQDN zones are errors on Calico; the rest must compile, or the property tests little."""
    compiled, total = 0, 40

    @settings(max_examples=total, deadline=None, database=None, derandomize=True)
    @given(policies(icmp=True))
    def count(policy: n.Policy) -> None:
        nonlocal compiled
        if _mismatches(policy) is not None:
            compiled += 1

    count()
    assert compiled >= total // 2, f"only {compiled} of {total} generated policies compiled"


@settings(max_examples=30, deadline=None)
@given(policies())
def test_compiling_is_deterministic(policy: n.Policy) -> None:
    def render() -> list[str]:
        try:
            return [dump(m.body) for m in compile_program(lower(policy), "calico").manifests]
        except n.CompileError as exc:
            return [d.render() for d in exc.diagnostics]

    assert render() == render()

"""Properties of the kubernetes target over generated intents (tests/strategies.py):

* the output, evaluated with Kubernetes NetworkPolicy semantics, allows exactly the intent (never more,
  never less) on an exhaustive universe of pods, namespaces and external hosts;
* compiling is deterministic;
* where the target cannot express an intent it refuses with a diagnostic instead of emitting anything
  (service accounts: NPD211; ICMP allows: NPD215; a deny or pass of ICMP is subtracted like any port).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netpol_dsl as n
from netpol_dsl.compiler import compile_program
from netpol_dsl.endpoints import Connection
from netpol_dsl.ir.lower import lower
from netpol_dsl.ir.peers import Workloads
from netpol_dsl.ir.program import Action
from netpol_dsl.ir.selectors import SERVICE_ACCOUNT_KEY
from netpol_dsl.render.yaml import dump
from tests.helpers import output_vs_intent
from tests.strategies import connections, policies

CONNECTIONS = connections()
ICMP_CONNECTIONS = connections(icmp=True)  # for intents with ICMP rules


def _mismatches(policy: n.Policy, conns: Sequence[Connection] = CONNECTIONS) -> list[str] | None:
    """None when the target refuses the policy; else every connection where output and intent differ."""
    return output_vs_intent(policy, "kubernetes", conns)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(icmp=True))
def test_output_allows_exactly_the_intent(policy: n.Policy) -> None:
    wrong = _mismatches(policy, ICMP_CONNECTIONS)
    if wrong is not None:
        assert not wrong, "\n".join(wrong[:20])


def test_generated_policies_mostly_compile() -> None:
    """Guards the property above against vacuity: most generated intents must be expressible."""
    compiled = 0
    total = 60

    @settings(max_examples=total, deadline=None, database=None, derandomize=True)
    @given(policies(icmp=True))
    def count(policy: n.Policy) -> None:
        nonlocal compiled
        if _mismatches(policy) is not None:
            compiled += 1

    count()
    assert compiled >= total // 3, f"only {compiled} of {total} generated policies compiled"


@settings(max_examples=40, deadline=None)
@given(policies())
def test_compiling_is_deterministic(policy: n.Policy) -> None:
    def render() -> list[str] | None:
        try:
            return [dump(m.body) for m in compile_program(lower(policy), "kubernetes").manifests]
        except n.CompileError as exc:
            return [d.render() for d in exc.diagnostics]

    assert render() == render()


@settings(max_examples=40, deadline=None)
@given(policies())
def test_service_accounts_are_refused_with_npd211(policy: n.Policy) -> None:
    """NetworkPolicy selects pods only by labels: a rule selecting by service account is never emitted."""
    program = lower(policy)
    uses = [r for r in program.rules
            if any(isinstance(w, Workloads) and w.pods.get(SERVICE_ACCOUNT_KEY) is not None
                   for w in (r.subject, r.peer))]
    if not uses:
        return
    try:
        compile_program(program, "kubernetes")
    except n.CompileError as exc:
        assert "NPD211" in {d.code.name for d in exc.diagnostics}
    else:
        raise AssertionError(f"{uses[0].describe()} selects by service account and was compiled")


@settings(max_examples=40, deadline=None)
@given(policies(icmp=True))
def test_icmp_allows_are_refused_with_npd215(policy: n.Policy) -> None:
    """NetworkPolicy ports are TCP, UDP and SCTP: an allow matching ICMP types is never emitted."""
    program = lower(policy)
    uses = [r for r in program.rules if r.action is Action.ALLOW and any(p.is_icmp for p in r.ports or ())]
    if not uses:
        return
    try:
        compile_program(program, "kubernetes")
    except n.CompileError as exc:
        # a rule gets the first refusal that applies to it: service accounts and entities come first
        assert {d.code.name for d in exc.diagnostics} & {"NPD215", "NPD211", "NPD203"}
    else:
        raise AssertionError(f"{uses[0].describe()} matches ICMP and was compiled")


def test_generated_outputs_validate(tmp_path: Path, validator: Path) -> None:
    """Every manifest of a deterministic sample of generated intents passes the schema validator."""
    written = 0

    @settings(max_examples=40, deadline=None, database=None, derandomize=True)
    @given(policies(), st.integers(0, 10**9))
    def emit(policy: n.Policy, salt: int) -> None:
        nonlocal written
        try:
            out = compile_program(lower(policy), "kubernetes")
        except n.CompileError:
            return
        for m in out.manifests:
            written += 1
            (tmp_path / f"{written:05d}.yaml").write_text(dump(m.body))

    emit()
    assert written > 20
    result = subprocess.run([sys.executable, str(validator), "-q", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]

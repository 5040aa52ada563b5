"""Assertions for pytest users: check what a compiled policy enforces, in milliseconds, without a cluster.

Example::

    from netpol_dsl.testing import assert_allows, assert_denies
    from policies.shop import policy, frontend, backend, database

    def test_frontend_reaches_backend() -> None:
        assert_allows(policy, frontend, backend, tcp(8080))
        assert_denies(policy, frontend, database)
"""

from __future__ import annotations

from functools import lru_cache

import attrs

from netpol_dsl.dsl.expect import expect
from netpol_dsl.dsl.policy import Policy
from netpol_dsl.dsl.ports import PortSet
from netpol_dsl.dsl.zones import Zone
from netpol_dsl.endpoints import Connection, Pod
from netpol_dsl.ir.lower import lower, lower_expectation
from netpol_dsl.ir.program import Expectation
from netpol_dsl.verify import Verifier, members

__all__ = ["assert_allows", "assert_denies", "connectivity_matrix"]


@lru_cache(maxsize=64)
def _verifier(policy: Policy, target: str, extra: Expectation | None = None) -> Verifier:
    """The policy compiled for ``target``, with an inventory that also covers ``extra``'s zones."""
    program = lower(policy)
    if extra is not None:
        program = attrs.evolve(program, expectations=(*program.expectations, extra))
    return Verifier.build(program, target)


def _check(policy: Policy, src: Zone, dst: Zone, ports: tuple[PortSet, ...], reach: bool, target: str) -> None:
    e = expect(src).reaches(dst, *ports) if reach else expect(src).does_not_reach(dst, *ports)
    expectation = lower_expectation(e)
    verifier = _verifier(policy, target, expectation)
    if not members(expectation.sources, verifier.endpoints) or not members(expectation.destinations,
                                                                            verifier.endpoints):
        raise AssertionError(f"'{expectation.text}': a zone has no member in the synthesized inventory")
    failures = verifier.check(expectation)
    if failures:
        lines = [f.diagnostic(target).message for f in failures[:10]]
        more = f"\n... and {len(failures) - 10} more" if len(failures) > 10 else ""
        raise AssertionError("\n".join(lines) + more)


def assert_allows(policy: Policy, src: Zone, dst: Zone, *ports: PortSet, target: str = "kubernetes") -> None:
    """Fail unless every member of ``src`` can connect to every member of ``dst`` on ``ports``
    (none: every port the policy mentions and one it does not), per ``target``'s compiled output."""
    _check(policy, src, dst, ports, True, target)


def assert_denies(policy: Policy, src: Zone, dst: Zone, *ports: PortSet, target: str = "kubernetes") -> None:
    """Fail if any member of ``src`` can connect to any member of ``dst`` on ``ports``."""
    _check(policy, src, dst, ports, False, target)


def connectivity_matrix(policy: Policy, *, port: int, protocol: str = "TCP", target: str = "kubernetes") -> str:
    """The pod-to-pod matrix of the synthesized inventory as stable text, for snapshot tests:
    one line per source pod, ``ns/pod: ns/pod ns/pod ...`` listing the destinations it reaches."""
    v = _verifier(policy, target)
    pods = [p for p in v.endpoints if isinstance(p, Pod)]
    lines = []
    for src in pods:
        reached = [dst.describe() for dst in pods
                   if dst != src and v.allowed(Connection(src, dst, protocol, port))]
        lines.append(f"{src.describe()}: {' '.join(reached) if reached else '-'}")
    return "\n".join(lines) + "\n"

"""Checking a policy's expectations against what a target's output actually enforces.

The policy is compiled for the target; an inventory is synthesized from its zones
(:func:`netpol_dsl.synth.representative_endpoints`); the output is evaluated with the
target's engine.  Each expectation is checked for every member of its source zone, every
member of its destination zone and every probed port.  A failure says whether the intent
itself disagrees (the policy is wrong) or only the output does (the target is wrong).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from netpol_dsl.compiler import compile_program
from netpol_dsl.diagnostics import Code, Diagnostic, Location
from netpol_dsl.dsl.policy import Policy
from netpol_dsl.endpoints import Connection, Endpoint, HttpRequest, Pod
from netpol_dsl.engines import EVALUATORS, Evaluator
from netpol_dsl.ir import intent
from netpol_dsl.ir.lower import lower
from netpol_dsl.ir.peers import Peer
from netpol_dsl.ir.ports import PortMatch, Ports
from netpol_dsl.ir.program import Expectation, HttpMatch, Program
from netpol_dsl.synth import (
    FIRST_UNMENTIONED_ICMP_TYPE,
    FIRST_UNMENTIONED_PORT,
    HOST_NODE,
    PortPlan,
    port_plan,
    representative_endpoints,
)
from netpol_dsl.targets.base import Target

_VANTAGE = Pod("synth-vantage", "vantage", node=HOST_NODE)  # host/remote-node are relative to a pod's node


@attrs.frozen
class Failure:
    expectation: Expectation
    connection: Connection
    output_allows: bool
    intent_allows: bool

    def diagnostic(self, target: str) -> Diagnostic:
        conn, e = self.connection, self.expectation
        got = "allows" if self.output_allows else "drops"
        why = ("the policy itself " + ("allows" if self.intent_allows else "does not allow") + " it"
               if self.intent_allows == self.output_allows
               else f"the intent {'allows' if self.intent_allows else 'drops'} it: the '{target}' output is wrong")
        return Diagnostic(Code.NPD501, f"expectation '{e.text}' fails: the '{target}' output {got} "
                          f"{conn.describe()} ({why})", e.location)


def members(peers: tuple[Peer, ...], endpoints: Sequence[Endpoint]) -> list[Endpoint]:
    return [ep for ep in endpoints if any(intent.peer_matches(p, ep, _VANTAGE) for p in peers)]


def probes(ports: Ports, plan: PortPlan) -> list[tuple[str, int]]:
    """Which (protocol, port) pairs stand for ``ports``: range ends, named-port numbers, any port (for ICMP:
    type range ends, any type)."""
    if ports is None:
        return list(plan.probes)
    out: list[tuple[str, int]] = []
    for p in ports:
        out += _probe(p, plan)
    return sorted(set(out))


def _probe(p: PortMatch, plan: PortPlan) -> list[tuple[str, int]]:
    if p.name:
        return [(proto, num) for proto, name, num in plan.named if proto == p.protocol and name == p.name]
    if p.all_ports:
        fallback = FIRST_UNMENTIONED_ICMP_TYPE if p.is_icmp else FIRST_UNMENTIONED_PORT
        return [(proto, port) for proto, port in plan.probes if proto == p.protocol] or [(p.protocol, fallback)]
    return [(p.protocol, p.first), (p.protocol, p.last)]


def _request(match: HttpMatch | None) -> HttpRequest | None:
    if match is None:
        return None
    return HttpRequest(method=match.method or "GET", path=match.path or "/",
                       headers=tuple((k, v or "x") for k, v in match.headers))


@attrs.frozen
class Verifier:
    """A compiled policy, its synthesized inventory and the target engine, ready for questions."""

    program: Program
    target: str
    endpoints: tuple[Endpoint, ...]
    engine: Evaluator
    plan: PortPlan

    @classmethod
    def build(cls, policy: Policy | Program, target: str | Target = "kubernetes") -> Verifier:
        """Compile ``policy`` for ``target`` (raises CompileError) and set up its engine."""
        program = policy if isinstance(policy, Program) else lower(policy)
        out = compile_program(program, target)
        name = target if isinstance(target, str) else target.name
        engine = EVALUATORS[name]([m.body for m in out.manifests])
        return cls(program, name, representative_endpoints(program), engine, port_plan(program))

    def allowed(self, conn: Connection) -> bool:
        return bool(self.engine.evaluate(conn).allowed)

    def check(self, e: Expectation) -> list[Failure]:
        failures = []
        for src in members(e.sources, self.endpoints):
            for dst in members(e.destinations, self.endpoints):
                if src == dst or not (isinstance(src, Pod) or isinstance(dst, Pod)):
                    continue
                for proto, port in probes(e.ports, self.plan):
                    conn = Connection(src, dst, proto, port, _request(e.http))
                    got = self.allowed(conn)
                    if got != e.reach:
                        failures.append(Failure(e, conn, got, intent.decide(self.program, conn).allowed))
        return failures

    def check_all(self) -> list[Failure]:
        return [f for e in self.program.expectations for f in self.check(e)]


def verify(policy: Policy | Program, target: str | Target) -> list[Diagnostic]:
    """Every failed expectation of ``policy`` on ``target`` as a diagnostic (first failure per expectation)."""
    v = Verifier.build(policy, target)
    out: dict[Location, Diagnostic] = {}
    seen: set[str] = set()
    for f in v.check_all():
        if f.expectation.text in seen:
            continue
        seen.add(f.expectation.text)
        d = f.diagnostic(v.target)
        out.setdefault(d.location, d)
    return sorted(out.values(), key=lambda d: d.location)

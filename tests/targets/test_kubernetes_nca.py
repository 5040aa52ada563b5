"""network-config-analyzer as an independent second opinion on the kubernetes target.

For every example module that compiles for ``kubernetes``: compile it, synthesize a
representative inventory (:mod:`netpol_dsl.synth`), ask NCA which connections the
generated NetworkPolicies allow between those pods (and external addresses), and
require NCA's verdict to equal the reference semantics of intent
(:func:`netpol_dsl.ir.intent.decide`) on every connection NCA models.  Nodes and the
API server are not modelled by NCA and are left out.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from netpol_dsl.compiler import compile_program
from netpol_dsl.diagnostics import Code, CompileError
from netpol_dsl.endpoints import Connection, External, Node, Pod
from netpol_dsl.ir.intent import decide
from netpol_dsl.ir.lower import lower
from netpol_dsl.loader import load
from netpol_dsl.synth import connections, representative_endpoints
from tests.support.nca import find_nca, parse_connections, parse_report, run_nca

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(p for p in EXAMPLES_DIR.glob("*.py") if not p.name.startswith("_"))

LOADER_FAILURES = {Code.NPD101, Code.NPD102, Code.NPD103, Code.NPD104}  # broken modules, not rejected intent
# example stem -> reason, for disagreements where our compiler is wrong (see the report)
KNOWN_COMPILER_BUGS: dict[str, str] = {}


def _params() -> list[object]:
    return [
        pytest.param(p, id=p.stem,
                     marks=[pytest.mark.xfail(strict=True, reason=KNOWN_COMPILER_BUGS[p.stem])]
                     if p.stem in KNOWN_COMPILER_BUGS else [])
        for p in EXAMPLES
    ]


def test_there_are_examples() -> None:
    assert EXAMPLES, f"no example modules in {EXAMPLES_DIR}"


@pytest.mark.parametrize(("text", "allowed", "denied"), [
    ("All connections", [("TCP", 1), ("SCTP", 9)], []),
    ("{protocols:TCP,dst_ports:443}", [("TCP", 443)], [("TCP", 444), ("UDP", 443)]),
    ("{protocols:TCP, UDP,dst_ports:53,8000-8100}", [("UDP", 53), ("TCP", 8050)], [("TCP", 54), ("SCTP", 53)]),
    ("{protocols:TCP,dst_ports:53,443},{protocols:UDP}", [("TCP", 443), ("UDP", 9)], [("TCP", 80)]),
    ("All but {protocols:TCP,dst_ports:22}", [("TCP", 23), ("UDP", 22)], [("TCP", 22)]),
    ("{protocols:all but TCP}", [("UDP", 1)], [("TCP", 1)]),
    ("{dst_ports:80}", [("TCP", 80), ("UDP", 80)], [("TCP", 81)]),
])
def test_nca_connection_sets_are_read_exactly(
    text: str, allowed: list[tuple[str, int]], denied: list[tuple[str, int]]
) -> None:
    conns = parse_connections(text)
    assert [conns.allows(*a) for a in allowed] == [True] * len(allowed)
    assert [conns.allows(*d) for d in denied] == [False] * len(denied)


def test_nca_report_lines_are_read_by_pod_and_address() -> None:
    report = parse_report(
        "shop/a => shop/b : {protocols:TCP,dst_ports:80}\n"
        "shop/a => 0.0.0.0-9.255.255.255,11.0.0.0-255.255.255.255 : All connections\n"
        "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff => shop/b : {protocols:UDP,dst_ports:53}\n"
        "kube-system/kube-dns-livesim => shop/b : All connections\n",
        ["shop/a", "shop/b"],
    )
    a, b = Pod("shop", "a"), Pod("shop", "b")
    assert report.allowed(Connection(a, b, "TCP", 80)) is True
    assert report.allowed(Connection(b, a, "TCP", 80)) is False
    assert report.allowed(Connection(a, External(ipaddress.ip_address("8.8.8.8")), "UDP", 9)) is True
    assert report.allowed(Connection(a, External(ipaddress.ip_address("10.1.2.3")), "TCP", 80)) is False
    assert report.allowed(Connection(External(ipaddress.ip_address("2001:db8::1")), b, "UDP", 53)) is True
    assert report.allowed(Connection(External(ipaddress.ip_address("192.0.2.1")), b, "UDP", 53)) is False
    assert report.allowed(Connection(a, Node("node-1"), "TCP", 80)) is None


@pytest.mark.parametrize("path", _params())
def test_nca_agrees_with_intent(path: Path, tmp_path: Path) -> None:
    nca = find_nca()
    if nca is None:
        pytest.skip("network-config-analyzer is not installed (no 'nca' executable); "
                    "pip install network-config-analyzer")
    loaded, problems = load([str(path)])
    broken = [d for d in problems if d.code in LOADER_FAILURES]
    assert not broken, "\n".join(d.render() for d in broken)
    if problems:  # the Policy itself is rejected (a CompileError while importing): by design
        pytest.skip(f"{path.name} is rejected before any target: " + "; ".join(f"{d.code.name} {d.message}"
                                                                             for d in problems))
    assert loaded, f"{path.name} defines no policy"
    for i, lp in enumerate(loaded):
        try:
            program = lower(lp.policy)
            output = compile_program(program, "kubernetes")
        except CompileError as exc:
            pytest.skip(f"{path.name} does not compile for kubernetes (by design): "
                        + "; ".join(f"{d.code.name} {d.message}" for d in exc.diagnostics))
        endpoints = representative_endpoints(program)
        pods = [e for e in endpoints if isinstance(e, Pod)]
        report = run_nca(nca, [m.body for m in output.manifests], pods, tmp_path / f"policy-{i}")

        compared = allowed_by_nca = 0
        mismatches: list[str] = []
        for conn in connections(endpoints, program):
            verdict = report.allowed(conn)
            if verdict is None:
                continue
            compared += 1
            allowed_by_nca += verdict
            intent = decide(program, conn)
            if verdict != intent.allowed:
                mismatches.append(
                    f"{conn.src.describe()} -> {conn.dst.describe()} {conn.protocol.lower()}/{conn.port}: "
                    f"nca={'allow' if verdict else 'deny'} intent={'allow' if intent.allowed else 'deny'}"
                    f" ({intent.reason})"
                )
        assert compared and allowed_by_nca, f"vacuous comparison for {program.name}:\n{report.text}"
        assert not mismatches, (
            f"{len(mismatches)} of {compared} connections differ between NCA and intent for policy "
            f"{program.name!r} ({path.name}):\n" + "\n".join(mismatches)
        )

"""Helpers shared by tests: compiling examples and writing modules."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from netpol_dsl.loader import LoadedPolicy, load

if TYPE_CHECKING:
    from netpol_dsl.dsl.policy import Policy
    from netpol_dsl.endpoints import Connection
    from netpol_dsl.ir.program import Program
    from netpol_dsl.targets.base import Target

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))


def load_example(name: str) -> LoadedPolicy:
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        loaded, diags = load([f"examples/{name}.py"])
    finally:
        os.chdir(old)
    assert not diags, [d.render() for d in diags]
    assert len(loaded) == 1
    return loaded[0]


def write_module(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def engine_allows(engine: object, conn: Connection) -> bool:
    """The target engine's verdict; a connection to a DNS name is made after the client resolved it
    through the cluster DNS, so Cilium's toFQDNs can match it."""
    from netpol_dsl.endpoints import External
    from netpol_dsl.engines import CiliumEngine, Evaluator

    if isinstance(engine, CiliumEngine):
        names = conn.dst.names if isinstance(conn.dst, External) else ()
        return engine.evaluate(conn, dns_names=names).allowed
    return bool(cast("Evaluator", engine).evaluate(conn).allowed)


def output_vs_intent(policy: Policy | Program, target: str | Target,
                     conns: Sequence[Connection]) -> list[str] | None:
    """None when the target (a name or a configured target) refuses the policy; else every connection
    where output and intent differ."""
    from netpol_dsl.compiler import compile_program
    from netpol_dsl.diagnostics import CompileError
    from netpol_dsl.engines import EVALUATORS
    from netpol_dsl.ir.intent import decide
    from netpol_dsl.ir.lower import lower
    from netpol_dsl.ir.program import Program

    program = policy if isinstance(policy, Program) else lower(policy)
    try:
        out = compile_program(program, target)
    except CompileError:
        return None
    engine = EVALUATORS[target if isinstance(target, str) else target.name]([m.body for m in out.manifests])
    wrong = []
    for conn in conns:
        want, got = decide(program, conn).allowed, engine_allows(engine, conn)
        if want != got:
            req = f" {conn.http.method} {conn.http.path}" if conn.http else ""
            wrong.append(f"{conn.describe()}{req}: output={'allow' if got else 'deny'} "
                         f"intent={'allow' if want else 'deny'}")
    return wrong

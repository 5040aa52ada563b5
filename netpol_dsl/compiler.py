"""The library API under the CLI: policy -> IR -> manifests for a target."""

from __future__ import annotations

from netpol_dsl.diagnostics import Code, CompileError, Diagnostic
from netpol_dsl.dsl.policy import Policy
from netpol_dsl.ir.lower import lower
from netpol_dsl.ir.program import Program
from netpol_dsl.targets import TARGETS
from netpol_dsl.targets.base import Output


def target_names() -> list[str]:
    return sorted(TARGETS)


def compile_program(program: Program, target: str) -> Output:
    """Compile an IR program for ``target``; raises CompileError with every problem found."""
    try:
        cls = TARGETS[target]
    except KeyError:
        raise CompileError([Diagnostic(Code.NPD019, f"unknown target {target!r}; known: {', '.join(target_names())}",
                                       program.location)]) from None
    return cls().compile(program)


def compile_policy(policy: Policy, target: str) -> Output:
    """Lower ``policy`` and compile it for ``target``."""
    return compile_program(lower(policy), target)

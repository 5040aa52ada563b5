"""The library API under the CLI: policy -> IR -> manifests for a target."""

from __future__ import annotations

from collections.abc import Mapping

from netpol_dsl.diagnostics import Code, CompileError, Diagnostic
from netpol_dsl.dsl.policy import Policy
from netpol_dsl.ir.lower import lower
from netpol_dsl.ir.program import Program
from netpol_dsl.targets import TARGETS
from netpol_dsl.targets.base import Output, Target


def target_names() -> list[str]:
    return sorted(TARGETS)


def make_target(name: str, options: Mapping[str, str] | None = None) -> Target:
    """The target called ``name`` with ``options`` given as text; ValueError for an unknown name or option."""
    try:
        cls = TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(target_names())}") from None
    return cls.configure(options or {})


def compile_program(program: Program, target: str | Target) -> Output:
    """Compile an IR program for ``target`` (a name, or a configured target such as
    ``CalicoTarget(staged=True)``); raises CompileError with every problem found."""
    if isinstance(target, str):
        try:
            target = make_target(target)
        except ValueError as exc:
            raise CompileError([Diagnostic(Code.NPD019, str(exc), program.location)]) from None
    return target.compile(program)


def compile_policy(policy: Policy, target: str | Target) -> Output:
    """Lower ``policy`` and compile it for ``target``."""
    return compile_program(lower(policy), target)

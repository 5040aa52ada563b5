"""For every example and target: the output, evaluated by that target's engine, equals the reference
semantics of intent on every synthesized connection.  The intent evaluator (netpol_dsl.ir.intent) and
the engine (netpol_dsl.engines) are separate code that share only the endpoint model."""

from __future__ import annotations

import pytest

import netpol_dsl as n
from netpol_dsl.compiler import compile_program
from netpol_dsl.engines import EVALUATORS
from netpol_dsl.ir.intent import decide
from netpol_dsl.ir.lower import lower
from netpol_dsl.synth import connections, representative_endpoints
from tests.helpers import EXAMPLES, engine_allows, load_example


@pytest.mark.parametrize("target", sorted(EVALUATORS))
@pytest.mark.parametrize("name", EXAMPLES)
def test_output_equals_intent(name: str, target: str) -> None:
    program = lower(load_example(name).policy)
    try:
        out = compile_program(program, target)
    except n.CompileError:
        pytest.skip(f"{name} does not compile for {target} (by design)")
    engine = EVALUATORS[target]([m.body for m in out.manifests])
    conns = connections(representative_endpoints(program), program)
    assert len(conns) > 100

    wrong = [c.describe() for c in conns if engine_allows(engine, c) != decide(program, c).allowed]
    assert not wrong, "\n".join(wrong[:20])

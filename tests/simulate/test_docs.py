"""docs/simulate.md documents every flag of `simulate` and `explain`."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from netpol_dsl.cli import _parser

DOC = (Path(__file__).resolve().parents[2] / "docs" / "simulate.md").read_text(encoding="utf-8")


def _flags(command: str) -> list[str]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[command]
    return sorted({opt for action in parser._actions for opt in action.option_strings})


@pytest.mark.parametrize(("command", "flag"), [(c, f) for c in ("simulate", "explain") for f in _flags(c)])
def test_every_flag_is_documented(command: str, flag: str) -> None:
    assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", DOC), f"docs/simulate.md does not mention {flag}"
    assert f"netpol-dsl {command}" in DOC

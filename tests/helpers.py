"""Helpers shared by tests: compiling examples and writing modules."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from netpol_dsl.loader import LoadedPolicy, load

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

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
VALIDATOR = SHARED / "tools" / "validate-manifests"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="rewrite tests/golden/ from the current compiler output (review the diff!)")


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


@pytest.fixture
def validator() -> Path:
    """../shared/tools/validate-manifests; CI always has ../shared, a clone elsewhere skips."""
    if not VALIDATOR.is_file():
        pytest.skip(f"{VALIDATOR} not found: the schema validator lives in ../shared beside the project")
    return VALIDATOR


@pytest.fixture
def in_tmp(tmp_path: Path) -> Path:
    """Run in a temporary working directory that has a copy of examples/."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    old = os.getcwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(old)

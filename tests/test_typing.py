"""Typing is tested like behaviour: mypy --strict accepts the API's intended use and rejects misuse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

TYPING = ROOT / "tests" / "typing"
EXPECTED_ERRORS = {
    "wrong_protocol.py": 'Argument "direction" to "allow" has incompatible type',
    "port_as_zone.py": 'Unsupported operand types for >> ("Namespace" and "int")',
    "default_deny_literal.py": 'Argument "default_deny" to "baseline" has incompatible type',
    "port_type.py": 'Argument 1 to "tcp" has incompatible type "float"',
    "icmp_type_name.py": 'Argument 1 to "icmp" has incompatible type "str"',
}


def mypy(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", *args],
                          capture_output=True, text=True, cwd=cwd)


def test_intended_use_type_checks() -> None:
    result = mypy(str(TYPING / "plain_usage.py"))
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", sorted(EXPECTED_ERRORS))
def test_misuse_is_rejected(name: str) -> None:
    result = mypy(str(TYPING / name))
    assert result.returncode == 1, result.stdout
    lines = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(lines) == 1, result.stdout
    assert f"{name}:" in lines[0] and EXPECTED_ERRORS[name] in lines[0], result.stdout
    marked = [i + 1 for i, line in enumerate((TYPING / name).read_text().splitlines()) if "# E:" in line]
    assert f"{name}:{marked[0]}:" in lines[0]


def test_user_module_outside_the_repo_type_checks(tmp_path: Path) -> None:
    """A user's own module, importing the installed package (py.typed), passes mypy --strict."""
    module = tmp_path / "policies.py"
    module.write_text((ROOT / "examples" / "three_tier_l4.py").read_text())
    result = mypy(str(module), cwd=tmp_path)
    assert result.returncode == 0, result.stdout

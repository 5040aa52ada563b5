"""Golden manifests per example and target (update only with --update-goldens)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netpol_dsl import build
from netpol_dsl.targets import TARGETS
from tests.helpers import EXAMPLES, ROOT

GOLDEN = ROOT / "tests" / "golden"


def _render(name: str, target: str) -> dict[str, str]:
    """The files (or the error text) the build would produce for one example, paths relative to ROOT."""
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        from netpol_dsl.loader import load

        loaded, diags = load([f"examples/{name}.py"])
        assert not diags
        p = build.plan(loaded, [target])
    finally:
        os.chdir(old)
    if p.errors:
        return {"errors.txt": "".join(d.render() + "\n" for d in p.diagnostics)}
    return dict(p.results[0].files)


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("name", EXAMPLES)
def test_golden(name: str, target: str, update_goldens: bool) -> None:
    folder = GOLDEN / name / target
    files = _render(name, target)
    if update_goldens:
        if folder.exists():
            for old in folder.iterdir():
                old.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        for fname, text in files.items():
            (folder / fname).write_text(text, encoding="utf-8")
    assert folder.is_dir(), f"no goldens for {name}; run pytest --update-goldens and review the result"
    expected = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir())}
    assert sorted(files) == sorted(expected)
    for fname, text in files.items():
        assert text == expected[fname], f"{name}/{target}/{fname} differs from its golden"


def test_goldens_validate_against_schemas(validator: Path) -> None:
    manifests = sorted(str(p) for p in GOLDEN.glob("*/*/*.yaml") if p.name != "kustomization.yaml")
    assert manifests, "no golden manifests found"
    result = subprocess.run([sys.executable, str(validator), "-q", *manifests], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(manifests)} ok" in result.stdout


def test_kustomize_builds_golden_folders() -> None:
    kubectl = "/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    folders = sorted({p.parent for p in GOLDEN.glob("*/*/kustomization.yaml")})
    assert folders
    for folder in folders:
        result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        count = len([p for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"])
        assert result.stdout.count("\nkind: ") + result.stdout.startswith("kind: ") == count

"""Peer comparison: the three-tier build as a whole fresh process, netpol-dsl versus cdk8s + cdk8s-plus-33.

Both tools are run as separate processes (cdk8s's jsii runtime spawns node at import time, so an
in-process measurement would not be comparable), alternately A, B, A, B, ... after one warm-up each,
each into a fresh empty output folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CDK8S_PACKAGES = ("cdk8s", "cdk8s-plus-33")
_KIND = re.compile(r"^kind:\s*(\S+)\s*$", re.M)


class BenchError(RuntimeError):
    """A benchmark step failed (setup or a measured command)."""


@dataclass(frozen=True)
class Contender:
    """One side of the comparison: how to run it and how to find what it wrote."""

    name: str
    argv: tuple[str, ...]
    out_arg: str  # the item of argv that ``command`` replaces with the fresh output folder
    cwd: Path

    def command(self, out_dir: Path) -> list[str]:
        return [str(out_dir) if a == self.out_arg else a for a in self.argv]

    def display(self) -> str:
        return " ".join(a if a != self.out_arg else "<tmpdir>" for a in self.argv)


@dataclass
class Series:
    name: str
    command: str
    samples_s: list[float] = field(default_factory=list)
    output_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)

    @property
    def min_s(self) -> float:
        return min(self.samples_s)

    def as_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "median_s": self.median_s,
            "min_s": self.min_s,
            "max_s": max(self.samples_s),
            "samples_s": self.samples_s,
            "output_kinds": self.output_kinds,
        }


@dataclass
class Comparison:
    rounds: int
    warmup: int
    netpol: Series
    cdk8s: Series
    versions: dict[str, str]

    @property
    def ratio(self) -> float:
        """cdk8s / netpol-dsl, of the medians: how many times longer cdk8s takes."""
        return self.cdk8s.median_s / self.netpol.median_s

    def as_json(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "warmup": self.warmup,
            "order": "alternating: netpol-dsl, cdk8s, netpol-dsl, cdk8s, ...",
            "netpol_dsl": self.netpol.as_json(),
            "cdk8s": self.cdk8s.as_json(),
            "ratio_median_cdk8s_over_netpol_dsl": self.ratio,
            "versions": self.versions,
        }


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_cdk8s_venv(venv: Path) -> Path:
    """Create ``venv`` with cdk8s and cdk8s-plus-33 if it is missing or half-built; return its python."""
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if stamp.is_file() and python.is_file():
        return python
    if shutil.which("node") is None:
        raise BenchError("cdk8s needs `node` on PATH (jsii runs the construct library in node)")
    if venv.exists():
        shutil.rmtree(venv)
    _log(f"setting up {venv} with {' '.join(CDK8S_PACKAGES)} (first run only) ...")
    venv.parent.mkdir(parents=True, exist_ok=True)
    _check([sys.executable, "-m", "venv", str(venv)], "create the cdk8s virtualenv")
    _check([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *CDK8S_PACKAGES],
           "pip install cdk8s cdk8s-plus-33")
    stamp.write_text(" ".join(CDK8S_PACKAGES) + "\n", encoding="utf-8")
    return python


def _check(cmd: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"could not {what} (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def cdk8s_versions(python: Path) -> dict[str, str]:
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps({p: m.version(p) for p in ('cdk8s', 'cdk8s-plus-33', 'constructs', 'jsii')}))")
    versions: dict[str, str] = json.loads(_check([str(python), "-c", code], "read cdk8s versions").stdout)
    versions["node"] = _check(["node", "--version"], "run node --version").stdout.strip()
    return versions


def _run_once(contender: Contender, env: dict[str, str]) -> tuple[float, dict[str, int]]:
    """Wall time of one fresh process writing into a fresh folder, plus the object kinds it wrote."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{contender.name}-") as tmp:
        out_dir = Path(tmp) / "out"
        cmd = contender.command(out_dir)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=contender.cwd, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
        kinds: Counter[str] = Counter()
        for path in sorted(out_dir.rglob("*.yaml")):
            kinds.update(_KIND.findall(path.read_text(encoding="utf-8")))
        if not kinds:
            raise BenchError(f"{' '.join(cmd)} wrote no manifests into {out_dir}")
        return elapsed, dict(sorted(kinds.items()))


def run_comparison(repo: Path, cdk8s_script: Path, venv: Path, rounds: int, warmup: int = 1) -> Comparison:
    if not cdk8s_script.is_file():
        raise BenchError(f"peer script not found: {cdk8s_script} (pass --cdk8s-script)")
    cdk8s_python = ensure_cdk8s_venv(venv)
    netpol_exe = Path(sys.executable).parent / "netpol-dsl"
    if not netpol_exe.is_file():
        raise BenchError(f"{netpol_exe} not found: run from the project virtualenv (make bench)")
    out = "{out}"
    netpol_argv = (str(netpol_exe), "build", "examples/three_tier_l4.py", "-o", out)
    netpol = Contender("netpol-dsl", netpol_argv, out, repo)
    cdk8s = Contender("cdk8s", (str(cdk8s_python), str(cdk8s_script), out), out, cdk8s_script.parent)
    env = dict(os.environ)
    series = {
        c.name: Series(c.name, c.display().replace(str(repo) + "/", "").replace(str(Path.home()), "~"))
        for c in (netpol, cdk8s)
    }
    _log(f"comparison: {warmup} warm-up + {rounds} alternating rounds each ...")
    for _ in range(warmup):
        for c in (netpol, cdk8s):
            _, kinds = _run_once(c, env)
            series[c.name].output_kinds = kinds
    for _ in range(rounds):
        for c in (netpol, cdk8s):
            elapsed, _ = _run_once(c, env)
            series[c.name].samples_s.append(elapsed)
    return Comparison(rounds, warmup, series[netpol.name], series[cdk8s.name], cdk8s_versions(cdk8s_python))

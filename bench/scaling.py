"""Scaling: in-process compile + render time of synthetic policies with N flows.

The synthetic policy for N flows has N + 1 services ``ns<i % 5>.pods(app="svc<i>")`` spread over five
owned namespaces and the flows ``svc<i> >> svc<i+1>`` on TCP port ``1024 + i`` (every port distinct),
with the baseline default deny (both directions) and its DNS allow.  The ``quarantine`` variant adds
one security-tier ``deny(ns0.pods(quarantine="true") >> anything())``, which the kubernetes target has
to flatten into the allows (exact subtraction), so flattening cost is measured too.

Measured per repeat: ``compile_policy(policy, "kubernetes")`` and then
``netpol_dsl.render.yaml.dump`` of every manifest body; building the Policy object itself is timed
once, separately, and is not part of the total.
"""

from __future__ import annotations

import cProfile
import gc
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netpol_dsl import Policy, allow, anything, baseline, compile_policy, deny, namespace, tcp
from netpol_dsl.render.yaml import dump
from netpol_dsl.targets.base import Output

TARGET = "kubernetes"
NAMESPACES = 5
BASE_PORT = 1024
# a stage whose time grows more than this factor over linear between the two largest sizes is flagged
SUPERLINEAR_SLACK = 1.5
VARIANTS = ("plain", "quarantine")


def synthetic_policy(flows: int, *, quarantine: bool = False) -> Policy:
    owned = [namespace(f"ns{k}") for k in range(NAMESPACES)]
    services = [owned[i % NAMESPACES].pods(app=f"svc{i}").named(f"svc{i}") for i in range(flows + 1)]
    rules = [allow(services[i] >> services[i + 1], tcp(BASE_PORT + i)) for i in range(flows)]
    if quarantine:
        rules.insert(0, deny(owned[0].pods(quarantine="true") >> anything(), tier="security"))
    return Policy(f"synthetic-{flows}", owns=owned, baseline=baseline(default_deny="both"), rules=rules)


def default_repeats(flows: int) -> int:
    """Best of a few: more repeats where a run is short, fewer where one run takes a minute."""
    if flows <= 100:
        return 5
    if flows <= 1000:
        return 3
    return 2


@dataclass
class Row:
    flows: int
    repeats: int
    construct_s: float
    compile_s: float
    render_s: float
    manifests: int
    yaml_bytes: int
    warnings: int

    @property
    def total_s(self) -> float:
        return self.compile_s + self.render_s

    @property
    def s_per_flow(self) -> float:
        return self.total_s / self.flows

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "total_s": self.total_s, "s_per_flow": self.s_per_flow}


@dataclass
class VariantResult:
    variant: str
    rows: list[Row] = field(default_factory=list)

    def ratios(self) -> dict[str, float] | None:
        """time(largest N) / time(second largest N) per stage, with the size ratio (linear = that)."""
        if len(self.rows) < 2:
            return None
        small, large = self.rows[-2], self.rows[-1]
        return {
            "sizes": float(large.flows) / small.flows,
            "compile": large.compile_s / small.compile_s,
            "render": large.render_s / small.render_s,
            "total": large.total_s / small.total_s,
        }

    def superlinear_stages(self) -> list[str]:
        ratios = self.ratios()
        if ratios is None:
            return []
        limit = ratios["sizes"] * SUPERLINEAR_SLACK
        return [stage for stage in ("compile", "render") if ratios[stage] > limit]

    def as_json(self) -> dict[str, Any]:
        ratios = self.ratios()
        label = f"{self.rows[-1].flows}/{self.rows[-2].flows}" if ratios else None
        return {
            "variant": self.variant,
            "rows": [r.as_json() for r in self.rows],
            "ratio_sizes": label,
            "ratios": ratios,
            "superlinear_stages": self.superlinear_stages(),
        }


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _render(output: Output) -> int:
    return sum(len(dump(m.body)) for m in output.manifests)


def measure(flows: int, variant: str, repeats: int, target: str = TARGET) -> Row:
    start = time.perf_counter()
    policy = synthetic_policy(flows, quarantine=variant == "quarantine")
    construct = time.perf_counter() - start
    best: tuple[float, float] | None = None
    output: Output | None = None
    size = 0
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        output = compile_policy(policy, target)
        t1 = time.perf_counter()
        size = _render(output)
        t2 = time.perf_counter()
        if best is None or (t2 - t0) < sum(best):
            best = (t1 - t0, t2 - t1)
    assert best is not None and output is not None
    _check_output(output, flows, variant)
    return Row(flows, repeats, construct, best[0], best[1], len(output.manifests), size, len(output.warnings))


def _check_output(output: Output, flows: int, variant: str) -> None:
    """Guard against measuring the wrong thing: every service has a policy, the deny was flattened in."""
    if len(output.manifests) < flows + 1:
        raise AssertionError(f"{variant} N={flows}: only {len(output.manifests)} manifests")
    carved = any("quarantine" in repr(m.body) for m in output.manifests if m.namespace == "ns0")
    if carved != (variant == "quarantine"):
        raise AssertionError(f"{variant} N={flows}: quarantine selector {'missing' if not carved else 'present'}")


def run_scaling(sizes: Sequence[int], repeats: int | None, target: str = TARGET) -> list[VariantResult]:
    results = []
    for variant in VARIANTS:
        result = VariantResult(variant)
        for flows in sizes:
            n = repeats or default_repeats(flows)
            _log(f"scaling: {target} {variant} N={flows} (best of {n}) ...")
            result.rows.append(measure(flows, variant, n, target))
        results.append(result)
    return results


# ---- profiling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileEntry:
    function: str  # file:line(name), project files relative to the repository
    calls: int
    tottime_s: float
    cumtime_s: float
    within: str = ""  # for a comprehension, generator or builtin: its main caller


@dataclass
class Profile:
    variant: str
    flows: int
    stage: str
    seconds: float
    top: list[ProfileEntry]
    hotspot: ProfileEntry | None  # the project function with the most own time

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self)}


def _where(key: tuple[str, int, str], repo: Path) -> str:
    filename, line, name = key
    path = Path(filename)
    if path.is_relative_to(repo / "netpol_dsl"):
        filename = str(path.relative_to(repo))
    elif "site-packages" in path.parts:
        filename = "/".join(path.parts[path.parts.index("site-packages") + 1:])
    return f"{filename}:{line}({name})" if line else name


def profile_stage(variant: str, flows: int, stage: str, repo: Path, top: int = 12,
                  target: str = TARGET) -> Profile:
    """cProfile one compile (or one render) of the synthetic policy; rank functions by own time."""
    policy = synthetic_policy(flows, quarantine=variant == "quarantine")
    output = compile_policy(policy, target) if stage == "render" else None
    work: Callable[[], object] = (
        (lambda: compile_policy(policy, target)) if output is None else (lambda: _render(output))
    )
    _log(f"profiling: {stage} of {variant} N={flows} under cProfile ...")
    profiler = cProfile.Profile()
    gc.collect()
    start = time.perf_counter()
    profiler.enable()
    work()
    profiler.disable()
    seconds = time.perf_counter() - start
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, dict[Any, Any]]] = (
        pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    )

    def entry(key: tuple[str, int, str]) -> ProfileEntry:
        _cc, calls, tottime, cumtime, callers = raw[key]
        within = ""
        if key[2].startswith("<") and callers:
            same_file = [c for c in callers if c[0] == key[0]] or list(callers)
            within = _where(max(same_file, key=lambda c: callers[c][3]), repo)  # the caller edge with most time
        return ProfileEntry(_where(key, repo), calls, tottime, cumtime, within)

    ranked = sorted(raw, key=lambda k: raw[k][2], reverse=True)
    project = [k for k in ranked if Path(k[0]).is_relative_to(repo / "netpol_dsl")]
    return Profile(variant, flows, stage, seconds, [entry(k) for k in ranked[:top]],
                   entry(project[0]) if project else None)

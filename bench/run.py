"""Benchmarks of netpol-dsl, outside the test suite: ``make bench`` (or ``.venv/bin/python bench/run.py``).

1. comparison: the three-tier example built as a fresh process, netpol-dsl versus cdk8s + cdk8s-plus-33;
2. scaling: in-process compile + render of synthetic policies with 10 .. 10000 flows, with and without a
   security-tier deny, profiled with cProfile when a stage grows faster than linear.

Prints a compact table and writes the same figures to bench/results/latest.json.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from compare import BenchError, Comparison, run_comparison
from scaling import (
    NAMESPACES,
    SUPERLINEAR_SLACK,
    TARGET,
    Profile,
    VariantResult,
    profile_stage,
    run_scaling,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEFAULT_SIZES = (10, 100, 1000, 10000)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10,
                   help="alternating comparison rounds per tool (default 10)")
    p.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                   help="comma-separated flow counts for scaling (default 10,100,1000,10000)")
    p.add_argument("--repeats", type=int, default=None,
                   help="repeats per size, best taken (default: 5 up to N=100, 3 up to 1000, then 2)")
    p.add_argument("--target", default=TARGET, help=f"target of the scaling part (default {TARGET})")
    p.add_argument("--skip-comparison", action="store_true", help="only the scaling part")
    p.add_argument("--skip-scaling", action="store_true", help="only the comparison part")
    p.add_argument("--no-profile", action="store_true", help="do not profile super-linear stages")
    p.add_argument("--cdk8s-script", type=Path, default=REPO.parent / "shared/bench/cdk8s_three_tier.py",
                   help="the cdk8s peer script (default ../shared/bench/cdk8s_three_tier.py)")
    p.add_argument("--cdk8s-venv", type=Path, default=BENCH / ".cache" / "venv-cdk8s",
                   help="virtualenv for cdk8s, created on first use (default bench/.cache/venv-cdk8s)")
    p.add_argument("--output", type=Path, default=BENCH / "results" / "latest.json", help="JSON results file")
    return p


# ---- report --------------------------------------------------------------------------------------


def _comparison_lines(c: Comparison) -> list[str]:
    def kinds(k: dict[str, int]) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in k.items())

    lines = [
        f"Comparison: three-tier build, whole fresh process, {c.warmup} warm-up + {c.rounds} alternating "
        "rounds each",
        f"  {'tool':<11} {'median s':>9} {'min s':>8}  output",
    ]
    for s in (c.netpol, c.cdk8s):
        lines.append(f"  {s.name:<11} {s.median_s:>9.3f} {s.min_s:>8.3f}  {kinds(s.output_kinds)}")
    lines.append(f"  ratio cdk8s/netpol-dsl (medians): {c.ratio:.2f}x")
    lines += [f"  {s.name}: {s.command}" for s in (c.netpol, c.cdk8s)]
    versions = ", ".join(f"{k} {v}" for k, v in c.versions.items())
    lines.append(f"  versions: {versions}")
    return lines


def _scaling_lines(results: list[VariantResult], target: str = TARGET) -> list[str]:
    lines = [
        f"Scaling: compile_policy(policy, {target!r}) + yaml.dump of every manifest, in-process, best of R",
        f"  {'variant':<10} {'N':>6} {'R':>2} {'manifests':>9} {'compile s':>10} {'render s':>9} "
        f"{'total s':>9} {'us/flow':>8} {'policy s':>8}",
    ]
    for v in results:
        for r in v.rows:
            lines.append(
                f"  {v.variant:<10} {r.flows:>6} {r.repeats:>2} {r.manifests:>9} {r.compile_s:>10.4f} "
                f"{r.render_s:>9.4f} {r.total_s:>9.4f} {r.s_per_flow * 1e6:>8.1f} {r.construct_s:>8.4f}"
            )
    for v in results:
        ratios = v.ratios()
        if ratios is None:
            continue
        big, small = v.rows[-1].flows, v.rows[-2].flows
        flag = v.superlinear_stages()
        verdict = f"SUPER-LINEAR: {', '.join(flag)}" if flag else "about linear"
        lines.append(
            f"  {v.variant}: time({big})/time({small}) total {ratios['total']:.1f}, "
            f"compile {ratios['compile']:.1f}, render {ratios['render']:.1f} "
            f"(linear = {ratios['sizes']:.0f}) -> {verdict}"
        )
    return lines


def _profile_lines(profiles: list[Profile]) -> list[str]:
    lines = []
    for p in profiles:
        lines.append(f"Profile: {p.stage} of {p.variant} N={p.flows} under cProfile ({p.seconds:.1f} s), "
                     "top by own time")
        lines.append(f"  {'own s':>7} {'cum s':>7} {'calls':>9}  function")
        for e in p.top:
            within = f"  [from {e.within}]" if e.within else ""
            lines.append(f"  {e.tottime_s:>7.2f} {e.cumtime_s:>7.2f} {e.calls:>9}  {e.function}{within}")
        if p.hotspot is not None:
            h = p.hotspot
            within = f" in {h.within}" if h.within else ""
            lines.append(f"  hotspot (project code): {h.function}{within}: {h.tottime_s:.2f} s own time "
                         f"of {p.seconds:.1f} s")
    return lines


# ---- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    started = time.time()
    sources = source_digests(REPO)
    result: dict[str, Any] = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "netpol_dsl": version("netpol-dsl"),
            "ruamel.yaml": version("ruamel.yaml"),
            "attrs": version("attrs"),
            "source_digest": _combined(sources),
        },
        "comparison": None,
        "scaling": None,
    }
    lines: list[str] = []
    try:
        if not args.skip_comparison:
            comparison = run_comparison(REPO, args.cdk8s_script.resolve(), args.cdk8s_venv, args.rounds)
            result["comparison"] = comparison.as_json()
            lines += [*_comparison_lines(comparison), ""]
    except BenchError as exc:
        print(f"bench: comparison failed: {exc}", file=sys.stderr)
        return 1
    if not args.skip_scaling:
        variants = run_scaling(sizes, args.repeats, args.target)
        profiles: list[Profile] = []
        if not args.no_profile:
            for v in variants:
                for stage in v.superlinear_stages():
                    profiles.append(profile_stage(v.variant, v.rows[-1].flows, stage, REPO, target=args.target))
        result["scaling"] = {
            "target": args.target,
            "namespaces": NAMESPACES,
            "superlinear_threshold": f"stage ratio > size ratio x {SUPERLINEAR_SLACK}",
            "variants": [v.as_json() for v in variants],
            "profiles": [p.as_json() for p in profiles],
        }
        lines += [*_scaling_lines(variants, args.target), ""]
        lines += [*_profile_lines(profiles), ""] if profiles else []
    result["meta"]["elapsed_s"] = round(time.time() - started, 1)
    now = source_digests(REPO)
    changed = sorted(f for f in {*sources, *now} if sources.get(f) != now.get(f))
    if changed:
        result["meta"]["source_changed_during_run"] = changed
        lines.append(f"WARNING: {', '.join(changed)} changed while the benchmark ran; the figures may mix versions")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines.append(f"(run took {result['meta']['elapsed_s']:.0f} s; figures written to {_show(args.output)})")
    print("\n".join(lines))
    return 0


def source_digests(repo: Path) -> dict[str, str]:
    """A digest per library source file, to tell whether the library changed while the benchmark ran."""
    return {str(path.relative_to(repo)): hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            for path in sorted((repo / "netpol_dsl").rglob("*.py"))}


def _combined(digests: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:16]


def _show(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(path)


if __name__ == "__main__":
    sys.exit(main())

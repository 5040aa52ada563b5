"""Benchmark of `netpol-dsl simulate` against network-config-analyzer on a synthetic big cluster.

Outside the test suite: ``.venv/bin/python bench/simulate.py [--skip-nca] [--repeats R]``.

1. Generates the cluster with ``../shared/bench/gen_big_cluster.py OUT --namespaces 500 --pods-per-ns 10
   --policies 2000`` (5,000 pods, 2,000 NetworkPolicies; our inventory form and kubectl v1 Lists).
2. Times our full pod-to-pod matrix on TCP 8080 as a fresh process, JSON to /dev/null, once per
   inventory form (ours; the kubectl Lists NCA also reads): 1 warm-up, then ``--repeats`` runs.
3. Times NCA's connectivity report on the same input once (it takes minutes):
   ``nca --connectivity OUT/policies --pod_list OUT/pods.yaml --ns_list OUT/namespaces.yaml``.

Prints the figures and the ratio NCA / ours and writes them to bench/results/simulate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV_BIN = REPO / ".venv" / "bin"
GENERATOR = REPO.parent / "shared" / "bench" / "gen_big_cluster.py"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/simulate.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=BENCH / ".cache" / "simulate-big", help="where to generate the cluster")
    p.add_argument("--namespaces", type=int, default=500)
    p.add_argument("--pods-per-ns", type=int, default=10)
    p.add_argument("--policies", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of ours per inventory form (after a warm-up)")
    p.add_argument("--skip-nca", action="store_true", help="do not run network-config-analyzer")
    p.add_argument("--nca-timeout", type=float, default=1800.0, help="seconds before NCA is given up on")
    p.add_argument("--results", type=Path, default=BENCH / "results" / "simulate.json")
    return p


def _timed(cmd: list[str], stdout: Any, timeout: float | None = None) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.decode(errors="replace")[-2000:])
    return elapsed, proc.returncode


def _ours(out: Path, inventory: list[Path], repeats: int) -> dict[str, Any]:
    cmd = [str(VENV_BIN / "netpol-dsl"), "simulate", "--engine", "kubernetes"]
    for inv in inventory:
        cmd += ["--inventory", str(inv)]
    cmd += ["--port", "8080", "--protocol", "TCP", "--format", "json", str(out / "policies")]
    times = []
    with open(os.devnull, "wb") as null:
        for i in range(repeats + 1):
            elapsed, code = _timed(cmd, null)
            if code != 0:
                raise SystemExit(f"netpol-dsl simulate failed with exit status {code}: {' '.join(cmd)}")
            if i:  # the first run is a warm-up (page cache, .pyc)
                times.append(elapsed)
    return {"command": " ".join(cmd) + " > /dev/null", "times": times,
            "median": statistics.median(times), "min": min(times)}


def _nca(out: Path, timeout: float) -> dict[str, Any]:
    cmd = [str(VENV_BIN / "nca"), "--connectivity", str(out / "policies"), "--pod_list", str(out / "pods.yaml"),
           "--ns_list", str(out / "namespaces.yaml")]
    report = out / "nca-connectivity.txt"
    try:
        with report.open("wb") as sink:
            elapsed, code = _timed(cmd, sink, timeout)
    except subprocess.TimeoutExpired:
        return {"command": " ".join(cmd), "timeout": timeout, "seconds": None}
    return {"command": " ".join(cmd) + f" > {report}", "seconds": elapsed, "exit_status": code,
            "report_bytes": report.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    gen = [sys.executable, str(GENERATOR), str(out), "--namespaces", str(args.namespaces),
           "--pods-per-ns", str(args.pods_per_ns), "--policies", str(args.policies)]
    subprocess.run(gen, check=True)
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "generator": " ".join(gen),
    }
    print("timing netpol-dsl simulate (our inventory form) ...", flush=True)
    results["ours"] = _ours(out, [out / "inventory.yaml"], args.repeats)
    print("timing netpol-dsl simulate (kubectl List inventory) ...", flush=True)
    results["ours_kubectl_lists"] = _ours(out, [out / "namespaces.yaml", out / "pods.yaml"], args.repeats)
    if not args.skip_nca:
        print(f"timing nca --connectivity once (minutes; timeout {args.nca_timeout:.0f} s) ...", flush=True)
        results["nca"] = _nca(out, args.nca_timeout)
    ours, lists = results["ours"], results["ours_kubectl_lists"]
    print()
    print(f"netpol-dsl simulate, our inventory:     median {ours['median']:.2f} s, min {ours['min']:.2f} s "
          f"({len(ours['times'])} runs)")
    print(f"netpol-dsl simulate, kubectl Lists:     median {lists['median']:.2f} s, min {lists['min']:.2f} s")
    nca = results.get("nca")
    if nca is not None:
        if nca["seconds"] is None:
            print(f"nca --connectivity:                     timed out after {nca['timeout']:.0f} s")
        else:
            results["ratio_nca_over_ours"] = nca["seconds"] / ours["median"]
            results["ratio_nca_over_ours_kubectl_lists"] = nca["seconds"] / lists["median"]
            print(f"nca --connectivity:                     {nca['seconds']:.1f} s (exit status {nca['exit_status']})")
            print(f"ratio nca / ours:                       {results['ratio_nca_over_ours']:.0f}x "
                  f"(same kubectl input: {results['ratio_nca_over_ours_kubectl_lists']:.0f}x)")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

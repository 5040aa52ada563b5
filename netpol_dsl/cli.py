"""Command line: arguments only; the work is in the library (netpol_dsl.build, netpol_dsl.compiler)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from netpol_dsl import build
from netpol_dsl.compiler import target_names
from netpol_dsl.diagnostics import Severity
from netpol_dsl.loader import load
from netpol_dsl.render.report import capability_table, render

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netpol-dsl", description="Compile typed Python network-policy "
                                     "modules to Kubernetes NetworkPolicy manifests.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="compile policy modules to manifests")
    b.add_argument("paths", nargs="+", metavar="MODULE_OR_DIR", help="policy modules (.py) or folders of them")
    b.add_argument("-t", "--target", action="append", choices=target_names(), dest="targets",
                   help="target to build (repeatable; default: kubernetes)")
    b.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output folder (one subfolder per target), or '-' for a YAML stream on stdout")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="write nothing; exit 1 with a diff if DIR is stale")
    mode.add_argument("--diff", action="store_true", help="write nothing; print the diff DIR would get")
    b.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    sub.add_parser("targets", help="print the capability table of every target")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "targets":
        sys.stdout.write(capability_table())
        return EXIT_OK
    return _build(args)


def _build(args: argparse.Namespace) -> int:
    targets: list[str] = sorted(set(args.targets or ["kubernetes"]))
    if args.output == "-" and (args.check or args.diff):
        sys.stderr.write("netpol-dsl: error: --check and --diff need an output folder, not '-'\n")
        return EXIT_USAGE
    loaded, diags = load(args.paths)
    p = build.plan(loaded, targets)
    problems = [*diags, *p.diagnostics]
    out_dir = Path(args.output)
    if args.output != "-" and not diags and not p.errors:
        problems += build.conflicts(p, out_dir)
    for d in problems:
        sys.stderr.write(d.render() + "\n")
    errors = [d for d in problems if d.severity is Severity.ERROR]
    if errors:
        sys.stderr.write(f"netpol-dsl: {len(errors)} error{'s' if len(errors) != 1 else ''}; nothing written\n")
        return EXIT_FAIL
    if args.output == "-":
        sys.stdout.write(build.stream(p))
        return EXIT_OK
    change_list = build.changes(p, out_dir)
    if args.check or args.diff:
        for c in change_list:
            sys.stdout.write(c.diff())
        if not args.quiet:
            sys.stderr.write(_summary(p, change_list, out_dir, "check", loaded_count=len(loaded)))
        return EXIT_FAIL if (args.check and change_list) else EXIT_OK
    build.apply(change_list)
    if not args.quiet:
        sys.stdout.write(_summary(p, change_list, out_dir, "write", loaded_count=len(loaded)))
    return EXIT_OK


def _summary(p: build.Plan, change_list: list[build.Change], out_dir: Path, mode: str, loaded_count: int) -> str:
    rows = []
    for r in p.results:
        folder = out_dir / r.target
        mine = [c for c in change_list if c.path.parent == folder]
        rows.append({
            "target": r.target,
            "manifests": len(r.manifests),
            "policies": loaded_count,
            "written": sum(1 for c in mine if c.new is not None),
            "removed": sum(1 for c in mine if c.new is None),
            "unchanged": len(r.files) - sum(1 for c in mine if c.new is not None),
            "stale": len(mine),
            "folder": folder,
        })
    return render("build_summary.j2", results=rows, mode=mode)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

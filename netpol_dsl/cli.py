"""Command line: arguments only; the work is in the library (netpol_dsl.build, netpol_dsl.compiler)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from netpol_dsl import build, simulate
from netpol_dsl.compiler import make_target, target_names
from netpol_dsl.diagnostics import Code, CompileError, Severity
from netpol_dsl.endpoints import Connection
from netpol_dsl.inventory import InputError, Inventory, load_inventory
from netpol_dsl.loader import load
from netpol_dsl.render.report import capability_table, options_table, render
from netpol_dsl.targets import TARGETS
from netpol_dsl.targets.base import Target
from netpol_dsl.verify import verify

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
    _option_arguments(b)
    b.add_argument("--staged", action="store_true",
                   help="emit audit-only (staged) policies where the target has them (calico: Staged* kinds); "
                   "the same as --option calico.staged=true")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="write nothing; exit 1 with a diff if DIR is stale")
    mode.add_argument("--diff", action="store_true", help="write nothing; print the diff DIR would get")
    b.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    sub.add_parser("targets", help="print the capability table of every target")
    s = sub.add_parser("simulate", help="answer connectivity queries, or print the pod-to-pod matrix, "
                       "for manifests evaluated as an engine enforces them")
    _engine_arguments(s)
    s.add_argument("--queries", metavar="QUERIES", help="queries file; without it, print the pod-to-pod matrix")
    s.add_argument("--format", choices=["json", "text"],
                   help="output format (default: json for --queries, text for the matrix)")
    s.add_argument("--port", type=int, metavar="P", help="matrix: destination port")
    s.add_argument("--protocol", default="TCP", metavar="PROTO",
                   help="matrix: TCP (default), UDP, SCTP, ICMP or ICMPv6")
    s.add_argument("--from", action="append", dest="sources", metavar="NS_OR_POD",
                   help="matrix: only these sources, a namespace or namespace/pod (repeatable)")
    s.add_argument("--to", action="append", dest="destinations", metavar="NS_OR_POD",
                   help="matrix: only these destinations, a namespace or namespace/pod (repeatable)")
    v = sub.add_parser("verify", help="check the expectations stated in policy modules against a target's output")
    v.add_argument("paths", nargs="+", metavar="MODULE_OR_DIR", help="policy modules (.py) or folders of them")
    v.add_argument("-t", "--target", default="kubernetes", choices=target_names(),
                   help="target whose compiled output is checked (default: kubernetes)")
    _option_arguments(v)
    e = sub.add_parser("explain", help="explain step by step how an engine decides one connection")
    _engine_arguments(e)
    e.add_argument("--from", required=True, dest="source", metavar="ENDPOINT",
                   help="namespace/pod, IP address, node/NAME or external DNS name")
    e.add_argument("--to", required=True, dest="destination", metavar="ENDPOINT",
                   help="namespace/pod, IP address, node/NAME or external DNS name")
    e.add_argument("--port", type=int, metavar="P", help="destination port (not for ICMP)")
    e.add_argument("--protocol", default="TCP", metavar="PROTO", help="TCP (default), UDP, SCTP, ICMP or ICMPv6")
    return parser


def _option_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-O", "--option", action="append", default=[], dest="options", metavar="TARGET.KEY=VALUE",
                   help="a target option, e.g. calico.version=3.30 (repeatable; `netpol-dsl targets` lists them)")


def _configured(names: Sequence[str], options: Sequence[str], staged: bool = False) -> list[Target]:
    """The targets with their options; UsageError naming every bad option."""
    per_target: dict[str, dict[str, str]] = {n: {} for n in names}
    problems = []
    for text in options:
        head, eq, value = text.partition("=")
        target, dot, key = head.partition(".")
        if not eq or not dot or not key:
            problems.append(f"--option {text!r}: expected TARGET.KEY=VALUE, e.g. calico.version=3.30")
        elif target not in target_names():
            problems.append(f"--option {text!r}: unknown target {target!r}; known: {', '.join(target_names())}")
        elif target not in per_target:
            problems.append(f"--option {text!r}: target {target!r} is not being built (add -t {target})")
        else:
            per_target[target][key] = value
    if staged:
        for name, opts in per_target.items():
            if any(o.name == "staged" for o in TARGETS[name].options()):
                opts.setdefault("staged", "true")
            else:
                problems.append(f"--staged: target {name!r} has no staged (audit-only) policies; only calico has")
    targets = []
    for name, opts in per_target.items():
        try:
            targets.append(make_target(name, opts))
        except ValueError as exc:
            problems.append(f"--option: {exc}")
    if problems:
        raise InputError(problems)
    return targets


def _engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifests", nargs="+", metavar="MANIFEST_FILE_OR_DIR",
                   help="manifest files or folders (searched recursively for *.yaml, *.yml)")
    p.add_argument("--engine", required=True, choices=simulate.engine_names(), help="the engine to simulate")
    p.add_argument("--inventory", action="append", required=True, metavar="INVENTORY",
                   help="inventory file: ours or kubectl's v1 List (repeatable; merged)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "targets":
        sys.stdout.write(capability_table() + "\n" + options_table())
        return EXIT_OK
    commands = {"simulate": _simulate, "explain": _explain, "verify": _verify, "build": _build}
    try:
        return commands[args.command](args)
    except InputError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"netpol-dsl: error: {problem}\n")
        return EXIT_USAGE


def _verify(args: argparse.Namespace) -> int:
    [target] = _configured([args.target], args.options)
    if not target.enforcing:
        raise InputError([f"verify checks what the output enforces, and {target.describe()} enforces nothing "
                          "(staged policies): verify without that option"])
    loaded, problems = load(args.paths)
    checked = 0
    for lp in loaded:
        try:
            problems += verify(lp.policy, target)
        except CompileError as exc:
            problems += exc.diagnostics
        checked += len(lp.policy.expectations)
    for d in problems:
        sys.stderr.write(d.render() + "\n")
    failed = sum(1 for d in problems if d.code is Code.NPD501)
    errors = len(problems) - failed
    sys.stdout.write(f"{args.target}: {checked} expectation{'s' if checked != 1 else ''} in {len(loaded)} "
                     f"polic{'y' if len(loaded) == 1 else 'ies'}, {failed} failed"
                     + (f", {errors} other error{'s' if errors != 1 else ''}" if errors else "") + "\n")
    return EXIT_FAIL if problems else EXIT_OK


def _load(args: argparse.Namespace) -> tuple[Inventory, simulate.SimEngine]:
    """Inventory and engine, with the problems of both reported together."""
    problems: list[str] = []
    inventory: Inventory | None = None
    manifests: tuple[simulate.Manifest, ...] = ()
    try:
        inventory = load_inventory(args.inventory)
    except InputError as exc:
        problems += exc.problems
    try:
        manifests = simulate.load_manifests(args.manifests)
    except InputError as exc:
        problems += exc.problems
    if problems or inventory is None:
        raise InputError(problems)
    return inventory, simulate.make_engine(args.engine, manifests, inventory)


def _protocol_port(args: argparse.Namespace) -> tuple[str, int | None]:
    protocol = simulate.PROTOCOLS.get(args.protocol.upper(), args.protocol)
    if protocol in simulate.ICMP_PROTOCOLS:
        if args.port is not None:
            raise InputError([f"--port: {args.protocol} has no ports"])
        return protocol, None
    if protocol not in simulate.PORT_PROTOCOLS:
        raise InputError([f"--protocol: expected TCP, UDP, SCTP, ICMP or ICMPv6, got {args.protocol!r}"])
    if args.port is None or not 1 <= args.port <= 65535:
        raise InputError([f"--port: a port number 1-65535 is required for {protocol}"])
    return protocol, args.port


def _simulate(args: argparse.Namespace) -> int:
    if args.queries is not None:
        clash = [flag for flag, value in (("--port", args.port), ("--from", args.sources), ("--to", args.destinations))
                 if value]
        if clash:
            raise InputError([f"{', '.join(clash)}: only for the matrix, not with --queries"])
        inventory, engine = _load(args)
        results = simulate.run_queries(engine, simulate.load_queries(args.queries, inventory))
        render_results = simulate.results_text if args.format == "text" else simulate.results_json
        sys.stdout.write(render_results(engine.name, results))
        return EXIT_OK
    protocol, port = _protocol_port(args)
    inventory, engine = _load(args)
    sources = inventory.select(args.sources or ())
    destinations = inventory.select(args.destinations or ())
    rows = engine.reachability(sources, destinations, protocol, port or 0)
    if args.format == "json":
        sys.stdout.flush()
        simulate.write_matrix_json(sys.stdout.buffer, engine.name, protocol, port, sources, destinations, rows)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(simulate.matrix_text(engine.name, protocol, port, sources, destinations, rows))
    return EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    protocol, port = _protocol_port(args)
    inventory, engine = _load(args)
    sources = simulate.parse_endpoint(args.source, inventory, "--from")
    destinations = simulate.parse_endpoint(args.destination, inventory, "--to")
    blocks = [engine.explain(Connection(s, d, protocol, port or 0)) for s in sources for d in destinations]
    sys.stdout.write("\n\n".join("\n".join(lines) for lines in blocks) + "\n")
    return EXIT_OK


def _build(args: argparse.Namespace) -> int:
    if args.output == "-" and (args.check or args.diff):
        raise InputError(["--check and --diff need an output folder, not '-'"])
    targets = _configured(sorted(set(args.targets or ["kubernetes"])), args.options, args.staged)
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

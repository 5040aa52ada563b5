"""Loading policy modules from files and folders, with every failure turned into a diagnostic."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path

import attrs
from typeguard import TypeCheckError

from netpol_dsl.diagnostics import Code, CompileError, Diagnostic, Location, PolicyError, _display_path
from netpol_dsl.dsl.policy import Policy


@attrs.frozen
class LoadedPolicy:
    path: str
    policy: Policy


def module_files(paths: list[str]) -> tuple[list[str], list[Diagnostic]]:
    """Expand folders to their ``*.py`` files (sorted; ``_*.py`` skipped); missing paths are diagnostics."""
    files: list[str] = []
    diags: list[Diagnostic] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files += sorted(str(f) for f in path.rglob("*.py") if not f.name.startswith("_"))
        elif path.is_file():
            files.append(str(path))
        else:
            diags.append(Diagnostic(Code.NPD103, f"no such policy module or folder: {p}", Location(p, 0)))
    return sorted(set(files), key=lambda f: os.path.normpath(f)), diags


def load_module(path: str) -> tuple[list[LoadedPolicy], list[Diagnostic]]:
    """Import one module by path and collect the Policy objects it defines at top level."""
    display = _display_path(os.path.abspath(path))
    name = "netpol_dsl_user_" + hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return [], [Diagnostic(Code.NPD101, f"cannot import {path}", Location(display, 0))]
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except PolicyError as exc:
        return [], [exc.diagnostic]
    except CompileError as exc:
        return [], list(exc.diagnostics)
    except TypeCheckError as exc:
        return [], [_type_failure(exc, path, display)]
    except SyntaxError as exc:
        loc = Location(_display_path(os.path.abspath(exc.filename or path)), exc.lineno or 0)
        return [], [Diagnostic(Code.NPD101, f"syntax error: {exc.msg}", loc)]
    except Exception as exc:  # any failure of user code becomes a diagnostic, never a traceback
        return [], [_import_failure(exc, path, display)]
    finally:
        sys.modules.pop(name, None)
    found = [
        LoadedPolicy(display, v)
        for k, v in sorted(vars(module).items())
        if isinstance(v, Policy) and not k.startswith("_")
    ]
    unique = list({id(lp.policy): lp for lp in found}.values())
    if not unique:
        return [], [Diagnostic(Code.NPD102, "module defines no Policy at top level", Location(display, 1),
                               hint="assign one: policy = Policy('name', rules=[...])")]
    return unique, []


def _user_line(exc: BaseException, path: str) -> int:
    target = os.path.abspath(path)
    lines = [f.lineno or 0 for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) == target]
    return lines[-1] if lines else 0


def _type_failure(exc: TypeCheckError, path: str, display: str) -> Diagnostic:
    message = " ".join(str(exc).split())  # typeguard's text spans lines; a diagnostic is one line
    return Diagnostic(Code.NPD018, f"wrong argument type: {message}", Location(display, _user_line(exc, path)),
                      hint="see the signature in docs/concepts.md; mypy --strict reports this before running")


def _import_failure(exc: BaseException, path: str, display: str) -> Diagnostic:
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<frozen") and os.path.abspath(f.filename) != os.path.abspath(__file__)]
    target = os.path.abspath(path)
    line = 0
    where = display
    for fr in frames:
        if os.path.abspath(fr.filename) == target:
            line = fr.lineno or 0
    if frames and line == 0:
        last = frames[-1]
        where, line = _display_path(os.path.abspath(last.filename)), last.lineno or 0
    trail = " <- ".join(f"{_display_path(os.path.abspath(f.filename))}:{f.lineno}" for f in reversed(frames)
                        if os.path.abspath(f.filename) != target)
    return Diagnostic(Code.NPD101, f"module raised {type(exc).__name__}: {exc}"
                      + (f" (traceback: {trail})" if trail else ""), Location(where, line))


def load(paths: list[str]) -> tuple[list[LoadedPolicy], list[Diagnostic]]:
    files, diags = module_files(paths)
    out: list[LoadedPolicy] = []
    for f in files:
        loaded, problems = load_module(f)
        out += loaded
        diags += problems
    names: dict[str, LoadedPolicy] = {}
    for lp in out:
        prev = names.setdefault(lp.policy.name, lp)
        if prev is not lp:
            diags.append(Diagnostic(Code.NPD104, f"policy name {lp.policy.name!r} is also used by {prev.path}",
                                    lp.policy.location, hint="policy names must be unique across a build"))
    return sorted(out, key=lambda lp: lp.policy.name), diags

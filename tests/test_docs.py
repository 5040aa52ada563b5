"""The user documentation stays in step with the code: error codes, capability table, CLI flags."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from netpol_dsl.cli import _parser
from netpol_dsl.diagnostics import Code
from netpol_dsl.render.report import capability_table, options_table

DOCS = Path(__file__).resolve().parent.parent / "docs"
TABLE_START = "<!-- capability-table:start -->\n"
TABLE_END = "<!-- capability-table:end -->"

_HEADING = re.compile(r"^## (NPD\d{3}): (.*)$", re.MULTILINE)
_ANCHOR = re.compile(r'^<a id="(npd\d{3})"></a>$', re.MULTILINE)


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("code", list(Code), ids=lambda c: c.name)
def test_every_code_has_an_anchor_and_a_titled_section(code: Code) -> None:
    lines = _read("errors.md").splitlines()
    heading = f"## {code.name}: {code.value}"
    assert heading in lines, f"docs/errors.md lacks the heading {heading!r}"
    index = lines.index(heading)
    anchor = f'<a id="{code.name.lower()}"></a>'
    assert index > 0 and lines[index - 1] == anchor, (
        f"docs/errors.md: the line before {heading!r} must be {anchor!r} (messages link {code.anchor})"
    )


def test_errors_md_documents_no_code_that_does_not_exist() -> None:
    text = _read("errors.md")
    known = {c.name for c in Code}
    headings = [name for name, _ in _HEADING.findall(text)]
    anchors = [a.upper() for a in _ANCHOR.findall(text)]
    assert sorted(set(headings) - known) == [], "sections for codes that do not exist"
    assert sorted(set(anchors) - known) == [], "anchors for codes that do not exist"
    assert len(headings) == len(set(headings)), "a code has two sections"
    assert len(anchors) == len(set(anchors)), "a code has two anchors"
    assert headings == [c.name for c in Code], "sections are not in the order of the Code enum"


def test_capability_table_in_targets_md_is_the_generated_one() -> None:
    text = _read("targets.md")
    assert text.count(TABLE_START) == 1 and text.count(TABLE_END) == 1, "capability-table markers missing"
    start = text.index(TABLE_START) + len(TABLE_START)
    end = text.index(TABLE_END)
    assert start <= end, "capability-table markers out of order"
    assert text[start:end] == capability_table(), (
        "docs/targets.md is out of date: paste the output of `netpol-dsl targets` between the markers"
    )


def test_options_table_in_targets_md_is_the_generated_one() -> None:
    text = _read("targets.md")
    start_mark, end_mark = "<!-- options-table:start -->\n", "<!-- options-table:end -->"
    start = text.index(start_mark) + len(start_mark)
    assert text[start:text.index(end_mark)] == options_table(), (
        "docs/targets.md is out of date: paste the options table of `netpol-dsl targets` between the markers"
    )


def _build_parser() -> argparse.ArgumentParser:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    build = sub.choices["build"]
    assert isinstance(build, argparse.ArgumentParser)
    return build


def _build_flags() -> list[str]:
    return sorted(opt for action in _build_parser()._actions for opt in action.option_strings)


def test_build_parser_has_flags() -> None:
    # guards the test below against passing vacuously
    assert {"--output", "--target", "--check"} <= set(_build_flags())


@pytest.mark.parametrize("flag", _build_flags())
def test_every_build_flag_is_documented_in_cli_md(flag: str) -> None:
    text = _read("cli.md")
    assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), f"docs/cli.md does not mention {flag}"


def test_every_build_positional_is_documented_in_cli_md() -> None:
    text = _read("cli.md")
    for action in _build_parser()._actions:
        if not action.option_strings:
            name = action.metavar if isinstance(action.metavar, str) else action.dest
            assert name in text, f"docs/cli.md does not mention the argument {name}"

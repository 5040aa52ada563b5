"""Text reports rendered from jinja2 templates (build summary, capability table)."""

from __future__ import annotations

from typing import Any

import jinja2

from netpol_dsl.targets import TARGETS
from netpol_dsl.targets.base import Capability

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("netpol_dsl.render", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # plain text and Markdown, never HTML
)


def render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(**context)


def capability_table() -> str:
    """The Markdown capability table of every target (docs/targets.md embeds it; a test keeps them equal)."""
    names = sorted(TARGETS)
    rows = []
    for cap in Capability:
        cells = []
        for n in names:
            note = TARGETS[n].capabilities[cap]
            cells.append(note.support.value + (f": {note.note}" if note.note else ""))
        rows.append({"name": cap.value, "cells": cells})
    return render("capabilities.j2", targets=names, rows=rows)


def options_table() -> str:
    """Every target's options (``--option TARGET.KEY=VALUE``) as Markdown."""
    rows = [{"option": f"{n}.{o.name}", "default": o.default, "help": o.help}
            for n in sorted(TARGETS) for o in TARGETS[n].options()]
    return render("options.j2", rows=rows)

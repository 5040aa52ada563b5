"""The one YAML emitter: block style, fixed key order as built, every ambiguous string quoted.

Kubernetes label values and annotation values are strings; an unquoted ``true``,
``80``, ``yes`` or ``1e3`` would be read as another type by a YAML 1.1 parser
(kubectl's), so every string that any YAML 1.1 or 1.2 resolver would read as
non-string is double-quoted.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

# YAML 1.1 implicit types (bool/null/int/float incl. base 60, octal, hex) and YAML 1.2 core
_AMBIGUOUS = re.compile(
    r"""^(?:
        y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF
      | ~|null|Null|NULL|
      | [-+]?(?:0|[1-9][0-9_]*)
      | [-+]?0b[01_]+ | [-+]?0[0-7_]+ | [-+]?0o[0-7]+ | [-+]?0x[0-9a-fA-F_]+
      | [-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+
      | [-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?
      | [-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+
      | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)
      | <<|=
    )$""",
    re.X,
)


def needs_quotes(text: str) -> bool:
    return bool(_AMBIGUOUS.match(text)) or text != text.strip()


def _prepare(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _prepare(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_prepare(v) for v in value]
    if isinstance(value, str) and needs_quotes(value):
        return DoubleQuotedScalarString(value)
    return value


def _yaml() -> YAML:
    y = YAML(typ="rt", pure=True)
    y.default_flow_style = False
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096
    y.explicit_start = False
    y.Representer = RoundTripRepresenter
    return y


def dump(document: Mapping[str, Any], header: str = "") -> str:
    """One document as YAML text, with an optional ``# header`` line block."""
    buf = io.StringIO()
    _yaml().dump(_prepare(document), buf)
    text = buf.getvalue()
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    return text


def dump_all(documents: Iterable[Mapping[str, Any]], header: str = "") -> str:
    """Several documents separated by ``---``."""
    parts = [dump(d) for d in documents]
    body = "".join("---\n" + p for p in parts)
    if header:
        body = "".join(f"# {line}\n" for line in header.splitlines()) + body
    return body

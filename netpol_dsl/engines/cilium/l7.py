"""Cilium L7 matching: HTTP rules (``rules.http``) and DNS names/patterns (``rules.dns``, ``toFQDNs``)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from netpol_dsl.endpoints import HttpRequest

# --------------------------------------------------------------------------------------------
# HTTP

# POSIX bracket classes, which Python's re lacks (RE2, which Envoy uses, has them)
_POSIX_CLASSES = {
    "[:alpha:]": "a-zA-Z",
    "[:digit:]": "0-9",
    "[:alnum:]": "a-zA-Z0-9",
    "[:upper:]": "A-Z",
    "[:lower:]": "a-z",
    "[:space:]": r" \t\r\n\v\f",
    "[:blank:]": r" \t",
    "[:xdigit:]": "0-9A-Fa-f",
    "[:punct:]": r"!-/:-@\[-`{-~",
    "[:word:]": "A-Za-z0-9_",
}


def compile_regex(text: str, where: str) -> re.Pattern[str]:
    """An extended POSIX regex as Envoy uses it (matched against the whole value)."""
    for posix, python in _POSIX_CLASSES.items():
        text = text.replace(posix, python)
    try:
        return re.compile(text)
    except re.error as exc:
        raise ValueError(f"{where}: invalid regular expression {text!r}: {exc}") from exc


@attrs.frozen
class HeaderCheck:
    """A header that must be present, with an exact value (``value``) or any (None).

    ``never``: a ``headerMatches`` entry whose value lives only in a Secret the evaluator cannot
    read; Cilium fails such a match when the secret is missing, and we cannot know it.
    """

    name: str
    value: str | None = None
    never: bool = False

    def matches(self, headers: Sequence[tuple[str, str]]) -> bool:
        if self.never:
            return False
        wanted = self.name.lower()
        values = [v for k, v in headers if k.lower() == wanted]
        if self.value is None:
            return bool(values)
        return self.value in values

    def describe(self) -> str:
        if self.never:
            return f"{self.name}=<secret>"
        return self.name if self.value is None else f"{self.name}: {self.value}"


@attrs.frozen
class HttpRule:
    """One ``rules.http`` entry: every given field must match (an entry with none allows everything)."""

    label: str
    method: re.Pattern[str] | None = None
    path: re.Pattern[str] | None = None
    host: re.Pattern[str] | None = None
    headers: tuple[HeaderCheck, ...] = ()

    def matches(self, request: HttpRequest) -> bool:
        return (
            (self.method is None or self.method.fullmatch(request.method) is not None)
            and (self.path is None or self.path.fullmatch(request.path) is not None)
            and (self.host is None or self.host.fullmatch(request.host) is not None)
            and all(h.matches(request.headers) for h in self.headers)
        )

    def describe(self) -> str:
        parts = []
        if self.method is not None:
            parts.append(f"method {self.method.pattern}")
        if self.path is not None:
            parts.append(f"path {self.path.pattern}")
        if self.host is not None:
            parts.append(f"host {self.host.pattern}")
        parts += [f"header {h.describe()}" for h in self.headers]
        return f"{self.label} ({', '.join(parts) or 'any request'})"


def parse_header(text: str) -> HeaderCheck:
    """A ``headers`` item: ``"Name"`` (presence) or ``"Name: value"`` (split at the first space,
    trailing ``:`` of the name dropped, as Cilium's Envoy translation does)."""
    name, sep, value = text.partition(" ")
    if sep:
        return HeaderCheck(name.rstrip(":"), value)
    return HeaderCheck(text)


def describe_request(request: HttpRequest) -> str:
    host = f" host {request.host}" if request.host else ""
    return f"{request.method} {request.path}{host}"


# --------------------------------------------------------------------------------------------
# DNS names and patterns

_DNS_CHAR = "[-a-z0-9_]"
_NAME_SYNTAX = re.compile(r"([-a-zA-Z0-9_]+\.?)+")
_PATTERN_SYNTAX = re.compile(r"([-a-zA-Z0-9_*]+\.?)+")


def normalize_name(name: str) -> str:
    """Lower case, fully qualified (trailing dot)."""
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


@attrs.frozen
class DnsPattern:
    """``matchName`` (exact, case-insensitive, trailing dot optional) or ``matchPattern``.

    ``*`` matches zero or more of ``[-a-zA-Z0-9_]`` inside one label; ``*`` alone matches every
    name; a leading ``**.`` matches one or more whole labels (subdomains at any depth, never the
    apex).  This mirrors Cilium's ``matchpattern.ToAnchoredRegexp``.
    """

    text: str
    exact: bool
    regex: re.Pattern[str]

    def matches(self, name: str) -> bool:
        return self.regex.fullmatch(normalize_name(name)) is not None

    def describe(self) -> str:
        return f"{'matchName' if self.exact else 'matchPattern'} {self.text}"


def dns_pattern(text: str, exact: bool, where: str) -> DnsPattern:
    stripped = text.strip()
    syntax = _NAME_SYNTAX if exact else _PATTERN_SYNTAX
    if len(stripped) > 255 or not syntax.fullmatch(stripped):
        kind = "matchName" if exact else "matchPattern"
        raise ValueError(f"{where}: invalid {kind} {text!r}")
    fqdn = normalize_name(stripped)
    if exact:
        return DnsPattern(text, True, re.compile(re.escape(fqdn)))
    if fqdn == "*.":
        return DnsPattern(text, False, re.compile(rf"(?:{_DNS_CHAR}+\.)+|\."))
    prefix = ""
    if fqdn.startswith("**."):
        prefix, fqdn = rf"(?:{_DNS_CHAR}+\.)+", fqdn[3:]
    body = "".join(f"{_DNS_CHAR}*" if c == "*" else re.escape(c) for c in fqdn)
    return DnsPattern(text, False, re.compile(prefix + body))

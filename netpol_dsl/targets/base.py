"""What every target provides: a name, a capability table, typed options and ``compile(program) -> manifests``.

A target is a frozen attrs class whose fields are its options (``CalicoTarget(version="3.30", staged=True)``);
:func:`option` declares one with the help text and the parser the command line uses
(``--option calico.staged=true``).
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Self, TypeVar

import attrs

from netpol_dsl.diagnostics import Code, Diagnostic, Severity
from netpol_dsl.ir.program import Program


class Capability(enum.Enum):
    """Intent features; each target says how far it supports each (docs/targets.md shows the table)."""

    POD_SELECTORS = "pod and namespace selectors"
    CIDR = "CIDR peers with exceptions"
    FQDN = "FQDN egress"
    HTTP = "HTTP (L7) rules"
    DENY = "deny rules"
    TIERS = "ordered tiers and pass"
    CLUSTER_WIDE = "cluster-wide workloads"
    SERVICE_ACCOUNTS = "workloads by service account"
    ENTITIES = "entities (host, remote-node, kube-apiserver, cluster)"
    PORT_RANGES = "port ranges"
    NAMED_PORTS = "named ports"
    SCTP = "SCTP"
    ICMP = "ICMP and ICMPv6 types"
    DOMAIN_BLOCKLIST = "domain blocklist"


class Support(enum.Enum):
    YES = "yes"
    PARTIAL = "partial"
    NO = "no"


@attrs.frozen
class CapabilityNote:
    support: Support
    note: str = ""


@attrs.frozen
class Manifest:
    """One output object: a plain data tree plus where it goes and where it came from."""

    kind: str
    name: str
    namespace: str | None
    body: Mapping[str, Any] = attrs.field(eq=False)
    filename: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace or "", self.name)


@attrs.frozen
class Output:
    manifests: tuple[Manifest, ...]
    warnings: tuple[Diagnostic, ...] = ()


T = TypeVar("T")


def parse_bool(text: str) -> bool:
    value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(text.lower())
    if value is None:
        raise ValueError(f"expected true or false, got {text!r}")
    return value


def parse_choice(choices: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


def option(default: T, help: str, parse: Callable[[str], T]) -> T:
    """A target option: an attrs field with its help text and the parser of its command-line form."""
    result: T = attrs.field(default=default, kw_only=True, metadata={"help": help, "parse": parse})
    return result


@attrs.frozen
class OptionInfo:
    name: str
    default: str
    help: str


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@attrs.frozen
class Target:
    """Base class: subclasses set ``name`` and ``capabilities``, declare options with :func:`option`
    and implement ``compile``."""

    name: ClassVar[str]
    capabilities: ClassVar[Mapping[Capability, CapabilityNote]]

    def compile(self, program: Program) -> Output:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def options(cls) -> tuple[OptionInfo, ...]:
        return tuple(OptionInfo(f.name.replace("_", "-"), _text(f.default), f.metadata["help"])
                     for f in attrs.fields(cls) if "parse" in f.metadata)

    @classmethod
    def configure(cls, values: Mapping[str, str]) -> Self:
        """The target with options given as text (``{"staged": "true"}``); ValueError names every bad one."""
        fields = {f.name.replace("_", "-"): f for f in attrs.fields(cls) if "parse" in f.metadata}
        kwargs: dict[str, Any] = {}
        problems = []
        for key, text in sorted(values.items()):
            f = fields.get(key)
            if f is None:
                known = ", ".join(sorted(fields)) or "none"
                problems.append(f"target {cls.name!r} has no option {key!r} (options: {known})")
                continue
            try:
                kwargs[f.name] = f.metadata["parse"](text)
            except ValueError as exc:
                problems.append(f"{cls.name}.{key}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return cls(**kwargs)

    @property
    def enforcing(self) -> bool:
        """Whether the output enforces anything (False for audit-only output such as Calico's staged kinds)."""
        return True

    def describe(self) -> str:
        """The target and the options that differ from their defaults: ``calico (staged=true)``."""
        changed = [f"{f.name.replace('_', '-')}={_text(getattr(self, f.name))}" for f in attrs.fields(type(self))
                   if "parse" in f.metadata and getattr(self, f.name) != f.default]
        return f"{self.name} ({', '.join(changed)})" if changed else self.name


def version_at_least(version: str, floor: str) -> bool:
    """``version >= floor`` for dotted versions ("1.9" < "1.16")."""
    return tuple(int(p) for p in version.split(".")) >= tuple(int(p) for p in floor.split("."))


def unlogged(program: Program, target: str, why: str) -> list[Diagnostic]:
    """NPD302 warnings for the rules with ``log=True`` on a target without per-rule logging (one per flow)."""
    seen: dict[tuple[str, object], Diagnostic] = {}
    for r in program.rules:
        if r.log:
            seen.setdefault((r.flow, r.location), Diagnostic(
                Code.NPD302, f"{r.action.value} '{r.flow}' asks for log=True; target '{target}' builds it without a "
                f"log ({why})", r.location, Severity.WARNING, hint="build for calico, whose Log action logs it"))
    return list(seen.values())


_DNS_UNSAFE = re.compile(r"[^a-z0-9-]+")


def short_hash(text: str, length: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def object_name(base: str, key: str, limit: int = 63) -> str:
    """A readable DNS-1123 label from ``base``; a content hash of ``key`` only when it must be shortened
    or when sanitising changed the text."""
    clean = _DNS_UNSAFE.sub("-", base.lower()).strip("-")
    clean = re.sub("-{2,}", "-", clean) or "policy"
    if clean == base and len(clean) <= limit:
        return clean
    suffix = short_hash(key)
    return f"{clean[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"

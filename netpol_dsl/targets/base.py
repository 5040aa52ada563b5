"""What every target provides: a name, a capability table and ``compile(program) -> manifests``."""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from netpol_dsl.diagnostics import Diagnostic
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
    ENTITIES = "entities (host, remote-node, kube-apiserver, cluster)"
    PORT_RANGES = "port ranges"
    NAMED_PORTS = "named ports"
    SCTP = "SCTP"
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


class Target:
    """Base class: subclasses set ``name`` and ``capabilities`` and implement ``compile``."""

    name: ClassVar[str]
    capabilities: ClassVar[Mapping[Capability, CapabilityNote]]

    def compile(self, program: Program) -> Output:  # pragma: no cover - abstract
        raise NotImplementedError


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

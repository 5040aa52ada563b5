"""What the Kubernetes, Cilium and Calico evaluators read the same way in manifest documents.

* :class:`ManifestError`, the error they raise for a document they cannot read, and
  :func:`reading_document`, which turns a :class:`ValueError` into one;
* documents to skip (:func:`is_kustomization`) and object names (:func:`object_name`,
  :func:`metadata_namespace`);
* typed accessors (``as_mapping``, ``as_list``, ``as_string``, ``as_int``, ``as_network``,
  ``as_port``, ``as_end_port``) that check a field of a document loaded from YAML and raise
  :class:`ValueError` naming where it is;
* NetworkPolicy checks the engines apply: :func:`check_peer` and the defaulting of
  ``policyTypes`` (:func:`policy_types`);
* Kubernetes ``LabelSelector`` parsing (:func:`parse_label_selector`) and the semantics of its
  requirements (:func:`requirement_holds`, :class:`LabelRequirement`);
* ``ports[]`` items (:class:`PortSpec`: port ranges and named ports) and CIDRs with exceptions
  (:class:`CidrBlock`, an ``ipBlock`` or a ``toCIDRSet`` item).

Where the engines read a field differently (Cilium's ``k8s:``/``any:`` key sources, its null
``matchLabels`` values, ``ANY`` and extended protocols, ``port: 0``), the difference stays in the
engine or is a parameter here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from netpol_dsl.endpoints import Endpoint, IPAddress, Pod

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LABEL_OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist"})
DEFAULT_NAMESPACE = "default"
_KUSTOMIZE = "kustomize.config.k8s.io/"


class ManifestError(ValueError):
    """A document the engine cannot read; ``position`` is its index in the sequence given."""

    def __init__(self, position: int, detail: str) -> None:
        self.position = position
        self.detail = detail
        super().__init__(f"document {position}: {detail}")


@contextmanager
def reading_document(position: int) -> Iterator[None]:
    """Re-raise a :class:`ValueError` from reading document ``position`` as a :class:`ManifestError`."""
    try:
        yield
    except ValueError as exc:
        raise ManifestError(position, str(exc)) from exc


# --------------------------------------------------------------------------------------------
# typed accessors


def as_mapping(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` as a mapping; an absent (None) field is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def as_list(value: Any, where: str) -> Sequence[Any]:
    """``value`` as a list (not a string); an absent (None) field is an empty one."""
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def as_string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string, got {value!r}")
    return value


def as_int(value: Any, where: str) -> int:
    """``value`` as an integer (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    return value


def as_network(value: Any, where: str) -> Network:
    """A CIDR string as a network (host bits allowed, as the API server does)."""
    text = as_string(value, where)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise ValueError(f"{where}: invalid CIDR {text!r}") from exc


def as_port(value: Any, where: str, *, lowest: int = 1) -> int | str:
    """A ``ports[]`` item's ``port`` (given): a non-empty port name or a number in ``[lowest, 65535]``.

    ``where`` names the ``ports[]`` item.
    """
    if isinstance(value, str):
        if not value:
            raise ValueError(f"{where}.port: empty port name")
        return value
    number = as_int(value, f"{where}.port")
    if not lowest <= number <= 65535:
        raise ValueError(f"{where}.port: {number} is out of range")
    return number


def as_end_port(value: Any, port: int | str | None, where: str) -> int:
    """A ``ports[]`` item's ``endPort`` (given): an integer within ``[port, 65535]``, ``port`` numeric.

    ``where`` names the ``ports[]`` item.
    """
    end_port = as_int(value, f"{where}.endPort")
    if not isinstance(port, int):
        raise ValueError(f"{where}: endPort requires a numeric port")
    if not port <= end_port <= 65535:
        raise ValueError(f"{where}: endPort {end_port} must be within [{port}, 65535]")
    return end_port


# --------------------------------------------------------------------------------------------
# documents and object names


def is_kustomization(document: Mapping[str, Any]) -> bool:
    """A kustomize ``Kustomization`` (such as the one ``netpol-dsl build`` writes): known, not a policy."""
    api_version = document.get("apiVersion")
    return (document.get("kind") == "Kustomization" and isinstance(api_version, str)
            and api_version.startswith(_KUSTOMIZE))


def metadata_namespace(metadata: Mapping[str, Any], name: str) -> str:
    """``metadata.namespace`` of the object ``name``; absent or empty, ``default`` (as the API server does)."""
    return as_string(metadata.get("namespace") or DEFAULT_NAMESPACE, f"{name}: metadata.namespace")


def object_name(metadata: Mapping[str, Any], kind: str, *, namespaced: bool) -> tuple[str, str | None, str]:
    """The ``metadata.name``, the namespace (None unless ``namespaced``) and the ident of an object of
    ``kind``: ``KIND namespace/name``, ``KIND name`` for a cluster-scoped one."""
    name = as_string(metadata.get("name"), "metadata.name")
    namespace = metadata_namespace(metadata, name) if namespaced else None
    return name, namespace, f"{kind} {name if namespace is None else f'{namespace}/{name}'}"


# --------------------------------------------------------------------------------------------
# NetworkPolicy (networking.k8s.io/v1) fields


def check_peer(pod_selector: Any, namespace_selector: Any, ip_block: Any, where: str) -> None:
    """A ``from``/``to`` peer sets a selector or an ``ipBlock``, never an ``ipBlock`` with a selector."""
    if pod_selector is None and namespace_selector is None and ip_block is None:
        raise ValueError(f"{where}: a peer must set podSelector, namespaceSelector or ipBlock")
    if ip_block is not None and (pod_selector is not None or namespace_selector is not None):
        raise ValueError(f"{where}: ipBlock cannot be combined with podSelector or namespaceSelector")


def policy_types(value: Any, ident: str, has_egress: bool, where: str) -> list[str]:
    """The effective ``spec.policyTypes`` of NetworkPolicy ``ident``, with the API server's defaulting.

    Absent or empty: ``Ingress``, plus ``Egress`` when ``has_egress`` (``spec.egress`` has a rule).
    ``where`` names the field when it is not a list.
    """
    types = [as_string(t, f"{ident}: spec.policyTypes") for t in as_list(value, where)]
    for t in types:
        if t not in ("Ingress", "Egress"):
            raise ValueError(f"{ident}: unknown policyType {t!r}")
    if not types:
        types = ["Ingress", "Egress"] if has_egress else ["Ingress"]
    return types


# --------------------------------------------------------------------------------------------
# LabelSelector


def requirement_holds(operator: str, values: frozenset[str], value: str | None) -> bool:
    """Whether a label with ``value`` (None: no such label) meets ``operator`` over ``values``."""
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    return value is None  # DoesNotExist


def describe_requirement(key: str, operator: str, values: frozenset[str]) -> str:
    """``key``, ``!key`` or ``key in (a,b)`` / ``key notin (a,b)``."""
    if operator == "Exists":
        return key
    if operator == "DoesNotExist":
        return f"!{key}"
    return f"{key} {operator.lower()} ({','.join(sorted(values))})"


@attrs.frozen
class LabelRequirement:
    """One ``matchExpressions`` item over plain labels."""

    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return requirement_holds(self.operator, self.values, labels.get(self.key))

    def describe(self) -> str:
        return describe_requirement(self.key, self.operator, self.values)


def parse_label_selector(
    value: Any,
    where: str,
    *,
    null_value: str | None = None,
    sort_first: bool = False,
    strict_expressions: bool = False,
) -> tuple[tuple[tuple[str, str], ...], tuple[LabelRequirement, ...]]:
    """A LabelSelector as its ``matchLabels`` pairs (sorted) and its ``matchExpressions``, validated.

    Keys are taken literally (an engine that gives them more meaning, such as Cilium's sources,
    reads them afterwards).  ``null_value``: what a null ``matchLabels`` value reads as (None: it
    is an error).  ``sort_first``: check the ``matchLabels`` pairs in key order rather than as
    given (which bad pair is reported).  ``strict_expressions``: reject ``matchExpressions`` items
    with fields other than ``key``, ``operator`` and ``values``.
    """
    raw = as_mapping(value, where)
    unknown = set(raw) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise ValueError(f"{where}: unknown selector fields {sorted(unknown)}")
    labels = as_mapping(raw.get("matchLabels"), f"{where}.matchLabels")
    pairs: list[tuple[str, str]] = []
    for k, v in sorted(labels.items()) if sort_first else labels.items():
        key = as_string(k, f"{where}.matchLabels key")
        pairs.append((key, null_value if v is None and null_value is not None
                      else as_string(v, f"{where}.matchLabels[{k}]")))
    requirements: list[LabelRequirement] = []
    for i, item in enumerate(as_list(raw.get("matchExpressions"), f"{where}.matchExpressions")):
        here = f"{where}.matchExpressions[{i}]"
        expr = as_mapping(item, here)
        if strict_expressions:
            extra = set(expr) - {"key", "operator", "values"}
            if extra:
                raise ValueError(f"{here}: unknown fields {sorted(extra)}")
        key = as_string(expr.get("key"), f"{here}.key")
        operator = as_string(expr.get("operator"), f"{here}.operator")
        if operator not in LABEL_OPERATORS:
            raise ValueError(f"{here}: unknown operator {operator!r}")
        values = frozenset(as_string(v, f"{here}.values") for v in as_list(expr.get("values"), f"{here}.values"))
        if operator in ("In", "NotIn") and not values:
            raise ValueError(f"{here}: operator {operator} requires a non-empty values list")
        if operator in ("Exists", "DoesNotExist") and values:
            raise ValueError(f"{here}: operator {operator} must not have values")
        requirements.append(LabelRequirement(key, operator, values))
    return tuple(sorted(pairs)), tuple(requirements)


# --------------------------------------------------------------------------------------------
# ports and CIDRs


@attrs.frozen
class PortSpec:
    """A ``ports[]`` item: ``port`` a number, a named container port or None (every port of the
    protocol), ``end_port`` an inclusive range end.  The engines decide which protocols match."""

    protocol: str
    port: int | str | None = None
    end_port: int | None = None

    def covers(self, protocol: str, port: int, destination: Endpoint) -> bool:
        """Whether ``port`` (of a connection with ``protocol``, to ``destination``) is in range.

        A named port resolves on the destination pod's containers, for the connection's protocol,
        and never matches a non-pod destination.
        """
        if self.port is None:
            return True
        if isinstance(self.port, str):
            if not isinstance(destination, Pod):
                return False
            resolved = destination.named_ports(protocol).get(self.port)
            return resolved is not None and resolved == port
        if self.end_port is None:
            return port == self.port
        return self.port <= port <= self.end_port

    def describe(self) -> str:
        if self.port is None:
            return f"{self.protocol}/any"
        if self.end_port is not None:
            return f"{self.protocol}/{self.port}-{self.end_port}"
        return f"{self.protocol}/{self.port}"


@attrs.frozen
class CidrBlock:
    """A CIDR with exceptions: matches the addresses of ``cidr`` in none of ``excepts``."""

    cidr: Network
    excepts: tuple[Network, ...] = ()

    def matches(self, ip: IPAddress) -> bool:
        if ip.version != self.cidr.version or ip not in self.cidr:
            return False
        return not any(ip.version == e.version and ip in e for e in self.excepts)

    def describe(self) -> str:
        return str(self.cidr) + (f" except {', '.join(str(e) for e in self.excepts)}" if self.excepts else "")

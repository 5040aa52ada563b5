"""The parsed NetworkPolicy model (selectors, peers, ports, rules, policies) and its parsing and validation."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from netpol_dsl.endpoints import Connection, Endpoint, External, IPAddress, Node, Pod

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
PORT_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})
DEFAULT_NAMESPACE = "default"
# provenance annotation written by the kubernetes target (netpol_dsl.targets.kubernetes.SOURCE_ANNOTATION)
SOURCE_ANNOTATION = "netpol-dsl.dev/source"

Direction = Literal["ingress", "egress"]
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ManifestError(ValueError):
    """A document the engine cannot read; ``position`` is its index in the sequence given."""

    def __init__(self, position: int, detail: str) -> None:
        self.position = position
        self.detail = detail
        super().__init__(f"document {position}: {detail}")


# --------------------------------------------------------------------------------------------
# compiled policy model


@attrs.frozen
class _Requirement:
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == "In":
            return value is not None and value in self.values
        if self.operator == "NotIn":
            return value is None or value not in self.values
        if self.operator == "Exists":
            return value is not None
        return value is None  # DoesNotExist

    def describe(self) -> str:
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        return f"{self.key} {self.operator.lower()} ({','.join(sorted(self.values))})"


@attrs.frozen
class _Selector:
    """A LabelSelector: all ``matchLabels`` pairs and all ``matchExpressions`` must hold."""

    match_labels: tuple[tuple[str, str], ...]
    requirements: tuple[_Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.requirements
        )

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(k for k, _ in self.match_labels) | {r.key for r in self.requirements}

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.match_labels] + [r.describe() for r in self.requirements]
        return "{" + ", ".join(parts) + "}"


@attrs.frozen
class _IpBlock:
    cidr: _Network
    excepts: tuple[_Network, ...]

    def matches(self, ip: IPAddress) -> bool:
        if ip.version != self.cidr.version or ip not in self.cidr:
            return False
        return not any(ip.version == e.version and ip in e for e in self.excepts)

    def describe(self) -> str:
        text = f"ipBlock {self.cidr}"
        return text + (f" except {', '.join(str(e) for e in self.excepts)}" if self.excepts else "")


def _endpoint_ip(endpoint: Endpoint) -> IPAddress | None:
    if isinstance(endpoint, Pod | External | Node):
        return endpoint.ip
    return None


@attrs.frozen
class _Peer:
    pod_selector: _Selector | None
    namespace_selector: _Selector | None
    ip_block: _IpBlock | None

    def matches(self, endpoint: Endpoint, policy_namespace: str) -> bool:
        if self.ip_block is not None:
            ip = _endpoint_ip(endpoint)
            return ip is not None and self.ip_block.matches(ip)
        if not isinstance(endpoint, Pod):
            return False
        if self.namespace_selector is None:
            if endpoint.namespace != policy_namespace:
                return False
        elif not self.namespace_selector.matches(endpoint.namespace_label_map):
            return False
        return self.pod_selector is None or self.pod_selector.matches(endpoint.label_map)

    def describe(self) -> str:
        if self.ip_block is not None:
            return self.ip_block.describe()
        parts = []
        if self.namespace_selector is not None:
            parts.append(f"namespaceSelector{self.namespace_selector.describe()}")
        if self.pod_selector is not None:
            parts.append(f"podSelector{self.pod_selector.describe()}")
        return " and ".join(parts)


@attrs.frozen
class _PortSpec:
    protocol: str
    port: int | str | None
    end_port: int | None

    def matches(self, protocol: str, port: int, destination: Endpoint) -> bool:
        if protocol != self.protocol:
            return False
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
class _Rule:
    index: int
    peers: tuple[_Peer, ...]  # empty: every peer
    ports: tuple[_PortSpec, ...]  # empty: every port and protocol

    def peer_matches(self, peer: Endpoint, policy_namespace: str) -> bool:
        return not self.peers or any(p.matches(peer, policy_namespace) for p in self.peers)

    def port_matches(self, conn: Connection) -> bool:
        protocol = conn.protocol.upper()
        return not self.ports or any(p.matches(protocol, conn.port, conn.dst) for p in self.ports)

    def matches(self, peer: Endpoint, conn: Connection, policy_namespace: str) -> bool:
        return self.peer_matches(peer, policy_namespace) and self.port_matches(conn)

    def describe_peers(self) -> str:
        return " | ".join(p.describe() for p in self.peers) if self.peers else "any peer"

    def describe_ports(self) -> str:
        return ", ".join(p.describe() for p in self.ports) if self.ports else "any port"


@attrs.frozen
class _Policy:
    namespace: str
    name: str
    pod_selector: _Selector
    ingress: tuple[_Rule, ...] | None  # None: Ingress is not among the effective policyTypes
    egress: tuple[_Rule, ...] | None  # None: Egress is not among the effective policyTypes
    source: str = ""  # the netpol-dsl.dev/source annotation, if any

    @property
    def ident(self) -> str:
        return f"{self.namespace}/{self.name}"

    def rules(self, direction: Direction) -> tuple[_Rule, ...] | None:
        return self.ingress if direction == "ingress" else self.egress

    @property
    def ref(self) -> PolicyRef:
        types = tuple(t for t, rules in (("Ingress", self.ingress), ("Egress", self.egress)) if rules is not None)
        return PolicyRef(self.namespace, self.name, types, self.pod_selector.describe(), self.source)


@attrs.frozen
class PolicyRef:
    """A NetworkPolicy as explanations name it: ``ns/name``, effective types, podSelector, provenance."""

    namespace: str
    name: str
    types: tuple[str, ...]
    pod_selector: str
    source: str = ""

    @property
    def ident(self) -> str:
        return f"{self.namespace}/{self.name}"


# --------------------------------------------------------------------------------------------
# parsing (with the API server's validation, so malformed manifests are not silently misread)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string, got {value!r}")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    return value


_OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist"})


def _parse_selector(value: Any, where: str) -> _Selector:
    raw = _mapping(value, where)
    unknown = set(raw) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise ValueError(f"{where}: unknown selector fields {sorted(unknown)}")
    labels = _mapping(raw.get("matchLabels"), f"{where}.matchLabels")
    match_labels = tuple(
        sorted(
            (_string(k, f"{where}.matchLabels key"), _string(v, f"{where}.matchLabels[{k}]"))
            for k, v in labels.items()
        )
    )
    requirements: list[_Requirement] = []
    for i, item in enumerate(_list(raw.get("matchExpressions"), f"{where}.matchExpressions")):
        here = f"{where}.matchExpressions[{i}]"
        expr = _mapping(item, here)
        key = _string(expr.get("key"), f"{here}.key")
        operator = _string(expr.get("operator"), f"{here}.operator")
        if operator not in _OPERATORS:
            raise ValueError(f"{here}: unknown operator {operator!r}")
        values = frozenset(_string(v, f"{here}.values") for v in _list(expr.get("values"), f"{here}.values"))
        if operator in ("In", "NotIn") and not values:
            raise ValueError(f"{here}: operator {operator} requires a non-empty values list")
        if operator in ("Exists", "DoesNotExist") and values:
            raise ValueError(f"{here}: operator {operator} must not have values")
        requirements.append(_Requirement(key, operator, values))
    return _Selector(match_labels, tuple(requirements))


def _parse_network(value: Any, where: str) -> _Network:
    text = _string(value, where)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise ValueError(f"{where}: invalid CIDR {text!r}") from exc


def _parse_peer(value: Any, where: str) -> _Peer:
    raw = _mapping(value, where)
    pod = raw.get("podSelector")
    namespace = raw.get("namespaceSelector")
    block = raw.get("ipBlock")
    if pod is None and namespace is None and block is None:
        raise ValueError(f"{where}: a peer must set podSelector, namespaceSelector or ipBlock")
    if block is not None and (pod is not None or namespace is not None):
        raise ValueError(f"{where}: ipBlock cannot be combined with podSelector or namespaceSelector")
    ip_block: _IpBlock | None = None
    if block is not None:
        block_map = _mapping(block, f"{where}.ipBlock")
        cidr = _parse_network(block_map.get("cidr"), f"{where}.ipBlock.cidr")
        excepts = tuple(
            _parse_network(e, f"{where}.ipBlock.except")
            for e in _list(block_map.get("except"), f"{where}.ipBlock.except")
        )
        ip_block = _IpBlock(cidr, excepts)
    return _Peer(
        pod_selector=None if pod is None else _parse_selector(pod, f"{where}.podSelector"),
        namespace_selector=(
            None if namespace is None else _parse_selector(namespace, f"{where}.namespaceSelector")
        ),
        ip_block=ip_block,
    )


def _parse_port(value: Any, where: str) -> _PortSpec:
    raw = _mapping(value, where)
    protocol = _string(raw.get("protocol", "TCP") or "TCP", f"{where}.protocol")
    if protocol not in PORT_PROTOCOLS:
        raise ValueError(f"{where}: unsupported protocol {protocol!r}")
    port_value = raw.get("port")
    port: int | str | None
    if port_value is None:
        port = None
    elif isinstance(port_value, str):
        if not port_value:
            raise ValueError(f"{where}.port: empty port name")
        port = port_value
    else:
        port = _int(port_value, f"{where}.port")
        if not 1 <= port <= 65535:
            raise ValueError(f"{where}.port: {port} is out of range")
    end_value = raw.get("endPort")
    end_port: int | None = None
    if end_value is not None:
        end_port = _int(end_value, f"{where}.endPort")
        if not isinstance(port, int):
            raise ValueError(f"{where}: endPort requires a numeric port")
        if not port <= end_port <= 65535:
            raise ValueError(f"{where}: endPort {end_port} must be within [{port}, 65535]")
    return _PortSpec(protocol, port, end_port)


def _parse_rules(value: Any, peer_field: str, where: str) -> tuple[_Rule, ...]:
    rules: list[_Rule] = []
    for i, item in enumerate(_list(value, where)):
        here = f"{where}[{i}]"
        raw = _mapping(item, here)
        peers = tuple(
            _parse_peer(p, f"{here}.{peer_field}[{j}]")
            for j, p in enumerate(_list(raw.get(peer_field), f"{here}.{peer_field}"))
        )
        ports = tuple(
            _parse_port(p, f"{here}.ports[{j}]")
            for j, p in enumerate(_list(raw.get("ports"), f"{here}.ports"))
        )
        rules.append(_Rule(i, peers, ports))
    return tuple(rules)


def _parse_policy(document: Any) -> _Policy:
    if not isinstance(document, Mapping):
        raise ValueError(f"expected a mapping, got {type(document).__name__}")
    api_version = document.get("apiVersion")
    kind = document.get("kind")
    if api_version != API_VERSION or kind != KIND:
        raise ValueError(
            f"unsupported kind {kind!r} (apiVersion {api_version!r}); only {API_VERSION} {KIND} is understood"
        )
    metadata = _mapping(document.get("metadata"), "metadata")
    name = _string(metadata.get("name"), "metadata.name")
    namespace = _string(metadata.get("namespace") or DEFAULT_NAMESPACE, f"{name}: metadata.namespace")
    ident = f"{namespace}/{name}"
    annotations = _mapping(metadata.get("annotations"), f"{ident}: metadata.annotations")
    source = annotations.get(SOURCE_ANNOTATION, "")
    spec = _mapping(document.get("spec"), f"{ident}: spec")
    pod_selector = _parse_selector(spec.get("podSelector"), f"{ident}: spec.podSelector")
    ingress = _parse_rules(spec.get("ingress"), "from", f"{ident}: spec.ingress")
    egress = _parse_rules(spec.get("egress"), "to", f"{ident}: spec.egress")
    types = [
        _string(t, f"{ident}: spec.policyTypes")
        for t in _list(spec.get("policyTypes"), f"{ident}: spec.policyTypes")
    ]
    for t in types:
        if t not in ("Ingress", "Egress"):
            raise ValueError(f"{ident}: unknown policyType {t!r}")
    if not types:
        types = ["Ingress", "Egress"] if egress else ["Ingress"]
    return _Policy(
        namespace=namespace,
        name=name,
        pod_selector=pod_selector,
        ingress=ingress if "Ingress" in types else None,
        egress=egress if "Egress" in types else None,
        source=source if isinstance(source, str) else "",
    )


def validate(policies: Sequence[Any]) -> list[ManifestError]:
    """Every problem of ``policies`` at once, one :class:`ManifestError` per bad document."""
    problems: list[ManifestError] = []
    for position, document in enumerate(policies):
        try:
            _parse_policy(document)
        except ValueError as exc:
            problems.append(ManifestError(position, str(exc)))
    return problems

"""The parsed NetworkPolicy model (selectors, peers, ports, rules, policies) and its parsing and validation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from netpol_dsl.endpoints import Connection, Endpoint, External, IPAddress, Node, Pod
from netpol_dsl.engines.manifest import DEFAULT_NAMESPACE as DEFAULT_NAMESPACE  # re-exported
from netpol_dsl.engines.manifest import (
    CidrBlock,
    LabelRequirement,
    PortSpec,
    as_end_port,
    as_list,
    as_mapping,
    as_network,
    as_port,
    as_string,
    check_peer,
    metadata_namespace,
    parse_label_selector,
    policy_types,
)
from netpol_dsl.engines.manifest import ManifestError as ManifestError  # re-exported (shared by both engines)
from netpol_dsl.provenance import SOURCE_ANNOTATION

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
PORT_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})
# provenance annotation written by the kubernetes target (netpol_dsl.targets.kubernetes.SOURCE_ANNOTATION)

Direction = Literal["ingress", "egress"]


# --------------------------------------------------------------------------------------------
# compiled policy model


@attrs.frozen
class _Selector:
    """A LabelSelector: all ``matchLabels`` pairs and all ``matchExpressions`` must hold."""

    match_labels: tuple[tuple[str, str], ...]
    requirements: tuple[LabelRequirement, ...]

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
class _IpBlock(CidrBlock):
    """An ``ipBlock`` peer."""

    def describe(self) -> str:
        return f"ipBlock {super().describe()}"


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
class _PortSpec(PortSpec):
    """A ``ports[]`` item: ``protocol`` TCP, UDP or SCTP, matching that protocol only."""

    def matches(self, protocol: str, port: int, destination: Endpoint) -> bool:
        return protocol == self.protocol and self.covers(protocol, port, destination)


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


def _parse_selector(value: Any, where: str) -> _Selector:
    """As the API server reads it: a null ``matchLabels`` value is an error, extra expression fields are ignored."""
    match_labels, requirements = parse_label_selector(value, where)
    return _Selector(match_labels, requirements)


def _parse_peer(value: Any, where: str) -> _Peer:
    raw = as_mapping(value, where)
    pod = raw.get("podSelector")
    namespace = raw.get("namespaceSelector")
    block = raw.get("ipBlock")
    check_peer(pod, namespace, block, where)
    ip_block: _IpBlock | None = None
    if block is not None:
        block_map = as_mapping(block, f"{where}.ipBlock")
        cidr = as_network(block_map.get("cidr"), f"{where}.ipBlock.cidr")
        excepts = tuple(
            as_network(e, f"{where}.ipBlock.except")
            for e in as_list(block_map.get("except"), f"{where}.ipBlock.except")
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
    raw = as_mapping(value, where)
    protocol = as_string(raw.get("protocol", "TCP") or "TCP", f"{where}.protocol")
    if protocol not in PORT_PROTOCOLS:
        raise ValueError(f"{where}: unsupported protocol {protocol!r}")
    port_value = raw.get("port")
    port = None if port_value is None else as_port(port_value, where)
    end_value = raw.get("endPort")
    end_port = None if end_value is None else as_end_port(end_value, port, where)
    return _PortSpec(protocol, port, end_port)


def _parse_rules(value: Any, peer_field: str, where: str) -> tuple[_Rule, ...]:
    rules: list[_Rule] = []
    for i, item in enumerate(as_list(value, where)):
        here = f"{where}[{i}]"
        raw = as_mapping(item, here)
        peers = tuple(
            _parse_peer(p, f"{here}.{peer_field}[{j}]")
            for j, p in enumerate(as_list(raw.get(peer_field), f"{here}.{peer_field}"))
        )
        ports = tuple(
            _parse_port(p, f"{here}.ports[{j}]")
            for j, p in enumerate(as_list(raw.get("ports"), f"{here}.ports"))
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
    metadata = as_mapping(document.get("metadata"), "metadata")
    name = as_string(metadata.get("name"), "metadata.name")
    namespace = metadata_namespace(metadata, name)
    ident = f"{namespace}/{name}"
    annotations = as_mapping(metadata.get("annotations"), f"{ident}: metadata.annotations")
    source = annotations.get(SOURCE_ANNOTATION, "")
    spec = as_mapping(document.get("spec"), f"{ident}: spec")
    pod_selector = _parse_selector(spec.get("podSelector"), f"{ident}: spec.podSelector")
    ingress = _parse_rules(spec.get("ingress"), "from", f"{ident}: spec.ingress")
    egress = _parse_rules(spec.get("egress"), "to", f"{ident}: spec.egress")
    types = policy_types(spec.get("policyTypes"), ident, bool(egress), f"{ident}: spec.policyTypes")
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

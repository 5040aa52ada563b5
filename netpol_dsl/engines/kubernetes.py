"""A static evaluator of Kubernetes ``networking.k8s.io/v1`` NetworkPolicy semantics.

Given NetworkPolicy manifests (plain mappings, as loaded from YAML) and a concrete
:class:`~netpol_dsl.endpoints.Connection`, decide whether the policies allow it, following
https://kubernetes.io/docs/concepts/services-networking/network-policies/ and the API reference:

* A pod is *isolated* for ingress (egress) iff a NetworkPolicy in the pod's namespace selects it
  with ``spec.podSelector`` and that policy's effective ``policyTypes`` include ``Ingress``
  (``Egress``).  When ``policyTypes`` is absent or empty it defaults to ``["Ingress"]`` plus
  ``"Egress"`` when ``spec.egress`` has at least one rule.
* In an isolated direction the connection is allowed iff at least one rule of at least one
  selecting policy (of that policy type) matches it; policies are additive.  A non-isolated
  direction allows everything.
* A connection is allowed iff egress is allowed at the source (only checked when the source is a
  :class:`~netpol_dsl.endpoints.Pod`) and ingress is allowed at the destination (only checked when
  the destination is a Pod).  External addresses, nodes and the API server carry no policy.
* A rule matches when one of its peers matches the other end (absent or empty ``from``/``to``:
  every peer) and one of its ports matches (absent or empty ``ports``: every port and protocol).
* Peers: ``podSelector`` alone selects pods of the policy's own namespace, ``namespaceSelector``
  alone selects every pod of the matching namespaces, both in one peer is their conjunction, and
  ``ipBlock`` matches by IP address.  We take the widest reading of ``ipBlock`` (which upstream
  leaves implementation-defined for cluster-internal addresses): it matches external addresses,
  pod IPs and node IPs alike; an endpoint without an IP never matches it.
* Ports: ``protocol`` defaults to TCP; ``port`` is a number or a named container port, resolved on
  the connection's destination pod (the peer for egress rules, the selected pod for ingress
  rules) for the same protocol, and never matching a non-pod destination; ``endPort`` makes an
  inclusive range; no ``port`` means every port of the protocol.  Connections with a protocol
  other than TCP, UDP or SCTP (e.g. ICMP) match only rules without a ``ports`` restriction.

Documents that are not ``networking.k8s.io/v1`` NetworkPolicies, and NetworkPolicies the API
server would reject (unknown operators, peers with no selector, ``endPort`` with a named port, ...),
raise :class:`ValueError`.
"""

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

Direction = Literal["ingress", "egress"]
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class Verdict:
    """Whether a connection is allowed, with one explanation line per side and a conclusion."""

    allowed: bool
    explanation: tuple[str, ...]


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


@attrs.frozen
class _Selector:
    """A LabelSelector: all ``matchLabels`` pairs and all ``matchExpressions`` must hold."""

    match_labels: tuple[tuple[str, str], ...]
    requirements: tuple[_Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.requirements
        )


@attrs.frozen
class _IpBlock:
    cidr: _Network
    excepts: tuple[_Network, ...]

    def matches(self, ip: IPAddress) -> bool:
        if ip.version != self.cidr.version or ip not in self.cidr:
            return False
        return not any(ip.version == e.version and ip in e for e in self.excepts)


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


@attrs.frozen
class _Rule:
    index: int
    peers: tuple[_Peer, ...]  # empty: every peer
    ports: tuple[_PortSpec, ...]  # empty: every port and protocol

    def matches(self, peer: Endpoint, conn: Connection, policy_namespace: str) -> bool:
        if self.peers and not any(p.matches(peer, policy_namespace) for p in self.peers):
            return False
        protocol = conn.protocol.upper()
        return not self.ports or any(p.matches(protocol, conn.port, conn.dst) for p in self.ports)


@attrs.frozen
class _Policy:
    namespace: str
    name: str
    pod_selector: _Selector
    ingress: tuple[_Rule, ...] | None  # None: Ingress is not among the effective policyTypes
    egress: tuple[_Rule, ...] | None  # None: Egress is not among the effective policyTypes

    @property
    def ident(self) -> str:
        return f"{self.namespace}/{self.name}"

    def rules(self, direction: Direction) -> tuple[_Rule, ...] | None:
        return self.ingress if direction == "ingress" else self.egress


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


def _parse_policy(document: Any, position: int) -> _Policy:
    if not isinstance(document, Mapping):
        raise ValueError(f"document {position}: expected a mapping, got {type(document).__name__}")
    api_version = document.get("apiVersion")
    kind = document.get("kind")
    if api_version != API_VERSION or kind != KIND:
        raise ValueError(
            f"document {position}: unsupported kind {kind!r} (apiVersion {api_version!r}); "
            f"only {API_VERSION} {KIND} is understood"
        )
    metadata = _mapping(document.get("metadata"), f"document {position}: metadata")
    name = _string(metadata.get("name"), f"document {position}: metadata.name")
    namespace = _string(metadata.get("namespace") or DEFAULT_NAMESPACE, f"{name}: metadata.namespace")
    ident = f"{namespace}/{name}"
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
    )


# --------------------------------------------------------------------------------------------
# evaluation


class KubernetesEngine:
    """NetworkPolicy semantics over a fixed set of policies, indexed by namespace.

    Build it once and call :meth:`evaluate` for as many connections as needed.

    Node exception: the Kubernetes documentation states that traffic from the node on which a
    pod runs is always allowed (kubelet health checks and the like), so a connection whose
    source is a :class:`~netpol_dsl.endpoints.Node` named like the destination pod's ``node``
    is allowed on the ingress side even when the pod is isolated for ingress.  Nodes never
    have egress policy themselves, so such a connection is always allowed.
    """

    def __init__(self, policies: Sequence[Mapping[str, Any]]) -> None:
        by_namespace: dict[str, list[_Policy]] = {}
        for position, document in enumerate(policies):
            policy = _parse_policy(document, position)
            by_namespace.setdefault(policy.namespace, []).append(policy)
        self._by_namespace: dict[str, tuple[_Policy, ...]] = {
            ns: tuple(items) for ns, items in by_namespace.items()
        }

    def evaluate(self, conn: Connection) -> Verdict:
        egress_ok, egress_line = self._side("egress", conn.src, conn.dst, conn)
        ingress_ok, ingress_line = self._side("ingress", conn.dst, conn.src, conn)
        allowed = egress_ok and ingress_ok
        if allowed:
            conclusion = f"{conn.describe()}: allowed"
        else:
            denied = [side for side, ok in (("egress", egress_ok), ("ingress", ingress_ok)) if not ok]
            conclusion = f"{conn.describe()}: denied by {' and '.join(denied)}"
        return Verdict(allowed, (egress_line, ingress_line, conclusion))

    def _side(
        self, direction: Direction, subject: Endpoint, peer: Endpoint, conn: Connection
    ) -> tuple[bool, str]:
        """Whether ``subject``'s ``direction`` policy admits the connection to/from ``peer``."""
        role = "source" if direction == "egress" else "destination"
        if not isinstance(subject, Pod):
            return True, f"{direction}: {role} {subject.describe()} is not a pod; no policy applies"
        at = f"{direction} at {subject.describe()}"
        if direction == "ingress" and isinstance(peer, Node) and peer.name and peer.name == subject.node:
            return True, f"{at}: allowed, traffic from the pod's own node {peer.describe()} is always allowed"
        labels = subject.label_map
        selecting = [
            policy
            for policy in self._by_namespace.get(subject.namespace, ())
            if policy.rules(direction) is not None and policy.pod_selector.matches(labels)
        ]
        if not selecting:
            kind = "Ingress" if direction == "ingress" else "Egress"
            return True, f"{at}: not isolated (no policy with policyType {kind} selects it)"
        allowing = [
            f"{policy.ident} {direction}[{rule.index}]"
            for policy in selecting
            for rule in policy.rules(direction) or ()
            if rule.matches(peer, conn, policy.namespace)
        ]
        isolated = f"{at}: isolated by {', '.join(p.ident for p in selecting)}"
        if allowing:
            return True, f"{isolated}; allowed by {', '.join(allowing)}"
        return False, f"{isolated}; no {direction} rule allows {conn.describe()}"


def evaluate(policies: Sequence[Mapping[str, Any]], conn: Connection) -> Verdict:
    """Evaluate one connection against ``policies`` (see :class:`KubernetesEngine`)."""
    return KubernetesEngine(policies).evaluate(conn)

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
* A pod's traffic to itself (loopback) is never subject to NetworkPolicy: the docs list "the ability
  to prevent loopback" among what NetworkPolicy cannot do, and the upstream conformance suite
  (``test/e2e/network/netpol``, ``Reachability.AllowLoopback``) expects it allowed whatever the
  policies say.

Documents that are not ``networking.k8s.io/v1`` NetworkPolicies, and NetworkPolicies the API
server would reject (unknown operators, peers with no selector, ``endPort`` with a named port, ...),
raise :class:`ManifestError` (a :class:`ValueError`).

Besides :meth:`KubernetesEngine.evaluate`, the engine offers :meth:`KubernetesEngine.trace` (every
selecting policy and every rule checked, for step-by-step explanations) and
:meth:`KubernetesEngine.reachability`, which decides all pod-to-pod pairs at once over pod
*identities* (see :class:`_Reachability`).
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
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


@attrs.frozen
class Verdict:
    """Whether a connection is allowed, with one explanation line per side and a conclusion."""

    allowed: bool
    explanation: tuple[str, ...]


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


# --------------------------------------------------------------------------------------------
# traces: what evaluate() decided, and why, as data


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


@attrs.frozen
class RuleCheck:
    """One rule of a selecting policy, checked against the connection."""

    policy: PolicyRef
    direction: Direction
    index: int
    peers: str  # described, e.g. "podSelector{app=web} | ipBlock 10.0.0.0/8"
    ports: str  # described, e.g. "TCP/8080, UDP/53"
    peer_ok: bool
    port_ok: bool

    @property
    def matched(self) -> bool:
        return self.peer_ok and self.port_ok

    @property
    def label(self) -> str:
        return f"{self.policy.ident} {self.direction}[{self.index}]"


SideReason = Literal["not-a-pod", "own-node", "not-isolated", "isolated"]


@attrs.frozen
class SideTrace:
    """The decision of one side: egress at the source or ingress at the destination."""

    direction: Direction
    subject: Endpoint
    peer: Endpoint
    reason: SideReason
    selecting: tuple[PolicyRef, ...] = ()
    rules: tuple[RuleCheck, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.reason != "isolated" or any(r.matched for r in self.rules)

    @property
    def allowing(self) -> tuple[RuleCheck, ...]:
        return tuple(r for r in self.rules if r.matched)


@attrs.frozen
class Trace:
    """Both sides of a connection; ``loopback`` when a pod talks to itself (no policy applies)."""

    conn: Connection
    loopback: bool
    egress: SideTrace | None
    ingress: SideTrace | None

    @property
    def allowed(self) -> bool:
        return self.loopback or bool(self.egress and self.egress.allowed and self.ingress and self.ingress.allowed)


def _is_loopback(conn: Connection) -> bool:
    return isinstance(conn.src, Pod) and conn.src == conn.dst


def _side_line(side: SideTrace, conn: Connection) -> str:
    direction = side.direction
    role = "source" if direction == "egress" else "destination"
    if side.reason == "not-a-pod":
        return f"{direction}: {role} {side.subject.describe()} is not a pod; no policy applies"
    at = f"{direction} at {side.subject.describe()}"
    if side.reason == "own-node":
        return f"{at}: allowed, traffic from the pod's own node {side.peer.describe()} is always allowed"
    if side.reason == "not-isolated":
        kind = "Ingress" if direction == "ingress" else "Egress"
        return f"{at}: not isolated (no policy with policyType {kind} selects it)"
    isolated = f"{at}: isolated by {', '.join(p.ident for p in side.selecting)}"
    if side.allowing:
        return f"{isolated}; allowed by {', '.join(r.label for r in side.allowing)}"
    return f"{isolated}; no {direction} rule allows {conn.describe()}"


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
        parsed: list[_Policy] = []
        for position, document in enumerate(policies):
            try:
                policy = _parse_policy(document)
            except ValueError as exc:
                raise ManifestError(position, str(exc)) from exc
            parsed.append(policy)
            by_namespace.setdefault(policy.namespace, []).append(policy)
        self._policies = tuple(parsed)
        self._by_namespace: dict[str, tuple[_Policy, ...]] = {
            ns: tuple(items) for ns, items in by_namespace.items()
        }

    @property
    def policies(self) -> tuple[PolicyRef, ...]:
        """Every policy, in the order given."""
        return tuple(p.ref for p in self._policies)

    def evaluate(self, conn: Connection) -> Verdict:
        t = self.trace(conn)
        if t.loopback:
            return Verdict(True, (
                f"loopback: {conn.src.describe()} talks to itself; NetworkPolicy never applies",
                f"{conn.describe()}: allowed",
            ))
        assert t.egress is not None and t.ingress is not None
        egress_ok, ingress_ok = t.egress.allowed, t.ingress.allowed
        if egress_ok and ingress_ok:
            conclusion = f"{conn.describe()}: allowed"
        else:
            denied = [side for side, ok in (("egress", egress_ok), ("ingress", ingress_ok)) if not ok]
            conclusion = f"{conn.describe()}: denied by {' and '.join(denied)}"
        return Verdict(egress_ok and ingress_ok, (_side_line(t.egress, conn), _side_line(t.ingress, conn), conclusion))

    def trace(self, conn: Connection) -> Trace:
        """Every selecting policy and every one of their rules checked against ``conn``."""
        if _is_loopback(conn):
            return Trace(conn, True, None, None)
        return Trace(conn, False, self._side("egress", conn.src, conn.dst, conn),
                     self._side("ingress", conn.dst, conn.src, conn))

    def _side(self, direction: Direction, subject: Endpoint, peer: Endpoint, conn: Connection) -> SideTrace:
        """Whether ``subject``'s ``direction`` policy admits the connection to/from ``peer``."""
        if not isinstance(subject, Pod):
            return SideTrace(direction, subject, peer, "not-a-pod")
        if direction == "ingress" and isinstance(peer, Node) and peer.name and peer.name == subject.node:
            return SideTrace(direction, subject, peer, "own-node")
        labels = subject.label_map
        selecting = [
            policy
            for policy in self._by_namespace.get(subject.namespace, ())
            if policy.rules(direction) is not None and policy.pod_selector.matches(labels)
        ]
        if not selecting:
            return SideTrace(direction, subject, peer, "not-isolated")
        checks = []
        for policy in selecting:
            ref = policy.ref
            for rule in policy.rules(direction) or ():
                checks.append(RuleCheck(
                    ref, direction, rule.index, rule.describe_peers(), rule.describe_ports(),
                    rule.peer_matches(peer, policy.namespace), rule.port_matches(conn),
                ))
        return SideTrace(direction, subject, peer, "isolated", tuple(p.ref for p in selecting), tuple(checks))

    def reachability(
        self, sources: Sequence[Pod], destinations: Sequence[Pod], protocol: str, port: int
    ) -> list[int]:
        """Every source-to-destination decision at once, for one protocol and port.

        Returns one bitset per source: bit ``j`` of ``result[i]`` is set iff ``sources[i]`` may
        open ``protocol``/``port`` to ``destinations[j]``; the same answers as :meth:`evaluate`
        (loopback included), computed over pod identities (see :class:`_Reachability`).
        """
        return _Reachability(self._policies, sources, destinations, protocol.upper(), port).rows()


def evaluate(policies: Sequence[Mapping[str, Any]], conn: Connection) -> Verdict:
    """Evaluate one connection against ``policies`` (see :class:`KubernetesEngine`)."""
    return KubernetesEngine(policies).evaluate(conn)


# --------------------------------------------------------------------------------------------
# all pairs at once, over identities and bitsets


def _bits(value: int) -> list[int]:
    """The indices of the set bits of ``value``, ascending."""
    text = bin(value)[:1:-1]
    out = []
    i = text.find("1")
    while i >= 0:
        out.append(i)
        i = text.find("1", i + 1)
    return out


def _mask(indices: Iterable[int]) -> int:
    """The bitset with the given bits set (linear time, unlike repeated big-integer ORs)."""
    data = bytearray()
    for i in indices:
        byte = i >> 3
        if byte >= len(data):
            data.extend(bytes(byte + 1 - len(data)))
        data[byte] |= 1 << (i & 7)
    return int.from_bytes(data, "little")


def _block_signatures(blocks: Sequence[_IpBlock], ips: Iterable[IPAddress | None]) -> dict[IPAddress, tuple[int, ...]]:
    """For each address, the indices of the ``blocks`` that contain it (addresses in none are left out).

    Addresses are sorted once per IP version; each block then takes the slice of addresses within
    its CIDR (two bisections) minus the slices within its exceptions, so the cost is the number of
    (block, matching address) pairs, not blocks x addresses.
    """
    by_version: dict[int, list[IPAddress]] = {}
    for ip in set(ips):
        if ip is not None:
            by_version.setdefault(ip.version, []).append(ip)
    sorted_ips = {v: sorted(items) for v, items in by_version.items()}
    keys = {v: [int(ip) for ip in items] for v, items in sorted_ips.items()}
    found: dict[IPAddress, list[int]] = {}

    def span(network: _Network) -> tuple[int, int]:
        ints = keys[network.version]
        return (bisect.bisect_left(ints, int(network.network_address)),
                bisect.bisect_right(ints, int(network.broadcast_address)))

    for k, block in enumerate(blocks):
        if block.cidr.version not in keys:
            continue
        lo, hi = span(block.cidr)
        holes = sorted(span(e) for e in block.excepts if e.version == block.cidr.version)
        i = lo
        for hole_lo, hole_hi in (*holes, (hi, hi)):
            for ip in sorted_ips[block.cidr.version][i:max(i, min(hole_lo, hi))]:
                found.setdefault(ip, []).append(k)
            i = max(i, hole_hi)
    return {ip: tuple(items) for ip, items in found.items()}


class _Expander:
    """Maps bitsets over atoms to bitsets over destination indices (a linear map over GF(2)).

    Dense atom sets are expanded a byte (8 atoms) at a time through a lazily filled table, so a
    row costs at most ``atoms / 8`` big-integer ORs whatever its density.
    """

    def __init__(self, atom_masks: Sequence[int]) -> None:
        self._masks = atom_masks
        self._table: dict[int, int] = {}
        self._nbytes = (len(atom_masks) + 7) // 8 or 1

    def __call__(self, atoms: int) -> int:
        masks = self._masks
        out = 0
        if atoms.bit_count() <= 16:
            for a in _bits(atoms):
                out |= masks[a]
            return out
        table = self._table
        for chunk, byte in enumerate(atoms.to_bytes(self._nbytes, "little")):
            if byte:
                key = chunk << 8 | byte
                value = table.get(key)
                if value is None:
                    value = 0
                    for bit in _bits(byte):
                        value |= masks[chunk * 8 + bit]
                    table[key] = value
                out |= value
        return out


class _Reachability:
    """All-pairs NetworkPolicy decisions over *atoms* instead of pods.

    An atom is a set of pods the policies cannot tell apart for this protocol and port: same
    namespace, same values for every pod-label key any selector mentions, same values for every
    namespace-label key any namespaceSelector mentions, same numbers for the named ports the rules
    mention (for this protocol), and same membership in every distinct ipBlock (ipBlocks match
    pod IPs, so the IP matters exactly through them).  Every peer set, every port set and every
    selecting-policy set is then a union of atoms, computed once per distinct peer, port list or
    policy set as a bitset over atoms; egress is decided row-wise (destinations a source may reach)
    and ingress column-wise (sources a destination admits), transposed through the distinct peer
    sets, and the two intersected.  Finally each atom row is expanded to destination pods and
    loopback bits are set.
    """

    def __init__(
        self,
        policies: Sequence[_Policy],
        sources: Sequence[Pod],
        destinations: Sequence[Pod],
        protocol: str,
        port: int,
    ) -> None:
        self.policies = policies
        self.sources = sources
        self.destinations = destinations
        self.protocol = protocol
        self.port = port
        self._collect()
        self._atomize()

    # -- what the policies can distinguish

    def _collect(self) -> None:
        pod_keys: set[str] = set()
        ns_keys: set[str] = set()
        names: set[str] = set()
        blocks: dict[_IpBlock, int] = {}
        for policy in self.policies:
            pod_keys |= policy.pod_selector.keys
            for rule in (*(policy.ingress or ()), *(policy.egress or ())):
                for peer in rule.peers:
                    if peer.pod_selector is not None:
                        pod_keys |= peer.pod_selector.keys
                    if peer.namespace_selector is not None:
                        ns_keys |= peer.namespace_selector.keys
                    if peer.ip_block is not None:
                        blocks.setdefault(peer.ip_block, len(blocks))
                for spec in rule.ports:
                    if isinstance(spec.port, str) and spec.protocol == self.protocol:
                        names.add(spec.port)
        self.pod_keys = tuple(sorted(pod_keys))
        self.ns_keys = tuple(sorted(ns_keys))
        self.names = tuple(sorted(names))
        self.blocks = blocks

    def _atomize(self) -> None:
        atoms: dict[tuple[Any, ...], int] = {}
        reps: list[Pod] = []
        ns_cache: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str | None, ...]] = {}
        signatures = _block_signatures(list(self.blocks), [p.ip for p in (*self.sources, *self.destinations)])

        def atom_of(pod: Pod) -> int:
            ns_key = (pod.namespace, pod.namespace_labels)
            ns_values = ns_cache.get(ns_key)
            if ns_values is None:
                ns_labels = pod.namespace_label_map
                ns_values = ns_cache[ns_key] = tuple(ns_labels.get(k) for k in self.ns_keys)
            labels = dict(pod.labels)
            named = pod.named_ports(self.protocol) if self.names else {}
            key = (
                pod.namespace,
                ns_values,
                tuple(labels.get(k) for k in self.pod_keys),
                tuple(named.get(n) for n in self.names),
                signatures.get(pod.ip, ()) if pod.ip is not None else (),
            )
            atom = atoms.get(key)
            if atom is None:
                atom = atoms[key] = len(reps)
                reps.append(pod)
            return atom

        self.src_atoms = [atom_of(p) for p in self.sources]
        self.dst_atoms = [atom_of(p) for p in self.destinations]
        self.reps = reps
        self.size = len(reps)
        self.all = (1 << self.size) - 1
        by_ns: dict[str, list[int]] = {}
        for a, rep in enumerate(reps):
            by_ns.setdefault(rep.namespace, []).append(a)
        self.by_namespace = by_ns
        in_block: list[list[int]] = [[] for _ in self.blocks]
        named: list[tuple[int | None, ...]] = []
        for a, key in enumerate(atoms):
            for k in key[4]:
                in_block[k].append(a)
            named.append(key[3])
        self.block_atoms = [_mask(items) for items in in_block]
        self.named_values = named

    # -- sets of atoms

    def _peer_set(self, peer: _Peer, policy_namespace: str, cache: dict[tuple[_Peer, str], int]) -> int:
        # only a podSelector-only peer depends on the policy's namespace
        own = peer.namespace_selector is None and peer.ip_block is None
        key = (peer, policy_namespace if own else "")
        found = cache.get(key)
        if found is not None:
            return found
        if peer.ip_block is not None:
            value = self.block_atoms[self.blocks[peer.ip_block]]
        else:
            if peer.namespace_selector is None:
                candidates = self.by_namespace.get(policy_namespace, [])
            else:
                selector = peer.namespace_selector
                candidates = [a for ns, items in self.by_namespace.items()
                              if selector.matches(self.reps[items[0]].namespace_label_map) for a in items]
            pod_selector = peer.pod_selector
            value = _mask(a for a in candidates
                          if pod_selector is None or pod_selector.matches(self.reps[a].label_map))
        cache[key] = value
        return value

    def _port_set(self, ports: tuple[_PortSpec, ...], cache: dict[tuple[_PortSpec, ...], int]) -> int:
        """Destination atoms on which one of ``ports`` matches."""
        if not ports:
            return self.all
        found = cache.get(ports)
        if found is not None:
            return found
        value = 0
        for spec in ports:
            if spec.protocol != self.protocol:
                continue
            if isinstance(spec.port, str):
                pos = self.names.index(spec.port)
                value |= _mask(a for a, values in enumerate(self.named_values) if values[pos] == self.port)
            elif spec.port is None or (
                spec.port == self.port if spec.end_port is None else spec.port <= self.port <= spec.end_port
            ):
                value = self.all
                break
        cache[ports] = value
        return value

    def _rule_sets(self) -> tuple[list[list[tuple[int, int]]], list[list[tuple[int, int]]]]:
        """Per policy and direction: (peer set, port set) of each rule, as atom bitsets."""
        peer_cache: dict[tuple[_Peer, str], int] = {}
        port_cache: dict[tuple[_PortSpec, ...], int] = {}

        def sets(policy: _Policy, rules: tuple[_Rule, ...] | None) -> list[tuple[int, int]]:
            out = []
            for rule in rules or ():
                peers = self.all if not rule.peers else 0
                for peer in rule.peers:
                    peers |= self._peer_set(peer, policy.namespace, peer_cache)
                out.append((peers, self._port_set(rule.ports, port_cache)))
            return out

        return ([sets(p, p.ingress) for p in self.policies], [sets(p, p.egress) for p in self.policies])

    def _selecting(self) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
        """Per atom: the indices of the policies that isolate it for ingress, and for egress."""
        by_ns: dict[str, list[int]] = {}
        for i, policy in enumerate(self.policies):
            by_ns.setdefault(policy.namespace, []).append(i)
        ingress: list[tuple[int, ...]] = []
        egress: list[tuple[int, ...]] = []
        for rep in self.reps:
            labels = rep.label_map
            chosen = [i for i in by_ns.get(rep.namespace, ()) if self.policies[i].pod_selector.matches(labels)]
            ingress.append(tuple(i for i in chosen if self.policies[i].ingress is not None))
            egress.append(tuple(i for i in chosen if self.policies[i].egress is not None))
        return ingress, egress

    def atom_rows(self) -> list[int]:
        """Per source atom: the destination atoms it may reach (loopback aside)."""
        ingress_sets, egress_sets = self._rule_sets()
        in_sel, eg_sel = self._selecting()
        # egress, row-wise: the destinations each source atom's egress admits
        egress_cache: dict[tuple[int, ...], int] = {(): self.all}
        egress_rows = []
        for chosen in eg_sel:
            row = egress_cache.get(chosen)
            if row is None:
                row = 0
                for i in chosen:
                    for peers, ports in egress_sets[i]:
                        row |= peers & ports
                egress_cache[chosen] = row
            egress_rows.append(row)
        # ingress, column-wise: which destinations each distinct peer set admits sources into
        open_to_all = 0  # destination atoms that admit every source
        admitted_by: dict[int, int] = {}  # source peer set -> destination atoms admitting it
        for b, chosen in enumerate(in_sel):
            bit = 1 << b
            if not chosen:
                open_to_all |= bit
                continue
            for i in chosen:
                for peers, ports in ingress_sets[i]:
                    if ports & bit and peers:
                        admitted_by[peers] = admitted_by.get(peers, 0) | bit
        open_to_all |= admitted_by.pop(self.all, 0)
        ingress_cols = [open_to_all] * self.size  # per source atom: destination atoms admitting it
        for peers, dests in admitted_by.items():
            for a in _bits(peers):
                ingress_cols[a] |= dests
        return [egress_rows[a] & ingress_cols[a] for a in range(self.size)]

    def rows(self) -> list[int]:
        atom_rows = self.atom_rows()
        dst_masks = [0] * self.size
        for j, a in enumerate(self.dst_atoms):
            dst_masks[a] |= 1 << j
        expand = _Expander(dst_masks)
        expanded: dict[int, int] = {}
        dst_index = {(p.namespace, p.name): j for j, p in enumerate(self.destinations)}
        out = []
        for i, a in enumerate(self.src_atoms):
            if a not in expanded:
                expanded[a] = expand(atom_rows[a])
            row = expanded[a]
            pod = self.sources[i]
            own = dst_index.get((pod.namespace, pod.name))
            if own is not None and self.destinations[own] == pod:
                row |= 1 << own  # loopback
            out.append(row)
        return out

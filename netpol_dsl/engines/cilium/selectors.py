"""Cilium identities (labels with a source) and endpoint selectors over them.

An identity maps a label key to ``(source, value)``.  A pod's identity carries its labels and the
labels Cilium derives from Kubernetes, all with source ``k8s``; nodes, external addresses and the
API server get the ``reserved`` labels of their entity (``reserved:host``, ``reserved:world``, ...).
Selector keys may name a source (``k8s:app``, ``reserved:host``, ``$host`` = ``reserved:host``);
a key without one means ``any:`` (Cilium's ``ParseSelectLabel``), which matches every source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from netpol_dsl.endpoints import ApiServer, Endpoint, External, Node, Pod

NAMESPACE_KEY = "io.kubernetes.pod.namespace"
CLUSTER_KEY = "io.cilium.k8s.policy.cluster"
SERVICE_ACCOUNT_KEY = "io.cilium.k8s.policy.serviceaccount"
NAMESPACE_LABELS_PREFIX = "io.cilium.k8s.namespace.labels."

SOURCE_K8S = "k8s"
SOURCE_ANY = "any"
SOURCE_RESERVED = "reserved"

Identity = Mapping[str, tuple[str, str]]  # label key -> (source, value)

OPERATORS = frozenset({"In", "NotIn", "Exists", "DoesNotExist"})


# --------------------------------------------------------------------------------------------
# identities


def pod_identity(pod: Pod, cluster_name: str) -> dict[str, tuple[str, str]]:
    """The security identity labels of ``pod`` (all of source ``k8s``)."""
    identity = {key: (SOURCE_K8S, value) for key, value in pod.labels}
    for key, value in pod.namespace_label_map.items():
        identity[NAMESPACE_LABELS_PREFIX + key] = (SOURCE_K8S, value)
    identity[NAMESPACE_KEY] = (SOURCE_K8S, pod.namespace)
    identity[CLUSTER_KEY] = (SOURCE_K8S, cluster_name)
    identity[SERVICE_ACCOUNT_KEY] = (SOURCE_K8S, pod.service_account)
    return identity


def is_own_node(subject: Pod, endpoint: Endpoint) -> bool:
    """Whether ``endpoint`` is the node ``subject`` runs on (Cilium's ``host`` from the pod's view)."""
    return isinstance(endpoint, Node) and bool(endpoint.name) and endpoint.name == subject.node


def peer_identity(peer: Endpoint, subject: Pod, cluster_name: str) -> dict[str, tuple[str, str]]:
    """The identity of ``peer`` as seen by policy of ``subject`` (host vs remote-node is relative)."""
    if isinstance(peer, Pod):
        return pod_identity(peer, cluster_name)
    if isinstance(peer, Node):
        return {("host" if is_own_node(subject, peer) else "remote-node"): (SOURCE_RESERVED, "")}
    if isinstance(peer, External):
        return {"world": (SOURCE_RESERVED, "")}
    assert isinstance(peer, ApiServer)
    return {"kube-apiserver": (SOURCE_RESERVED, "")}


def split_key(text: str) -> tuple[str, str]:
    """``k8s:app`` -> (k8s, app); ``$host`` -> (reserved, host); ``app`` -> (any, app)."""
    if text.startswith("$"):
        return SOURCE_RESERVED, text[1:]
    source, sep, key = text.partition(":")
    if not sep:
        return SOURCE_ANY, text
    return source, key


# --------------------------------------------------------------------------------------------
# selectors


@attrs.frozen
class Requirement:
    source: str
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: frozenset[str]

    def matches(self, identity: Identity) -> bool:
        found = identity.get(self.key)
        value = found[1] if found is not None and self.source in (SOURCE_ANY, found[0]) else None
        if self.operator == "In":
            return value is not None and value in self.values
        if self.operator == "NotIn":
            return value is None or value not in self.values
        if self.operator == "Exists":
            return value is not None
        return value is None

    def describe(self) -> str:
        key = self.key if self.source == SOURCE_ANY else f"{self.source}:{self.key}"
        if self.operator == "Exists":
            return key
        if self.operator == "DoesNotExist":
            return f"!{key}"
        if self.operator == "In" and len(self.values) == 1:
            return f"{key}={next(iter(self.values))}"
        return f"{key} {self.operator.lower()} ({','.join(sorted(self.values))})"


@attrs.frozen
class Selector:
    """A LabelSelector over identities: every requirement must hold (``{}`` selects everything)."""

    requirements: tuple[Requirement, ...]

    def matches(self, identity: Identity) -> bool:
        return all(r.matches(identity) for r in self.requirements)

    def has_key(self, key: str) -> bool:
        """Whether a requirement names ``key`` with source ``k8s`` or ``any`` (Cilium's ``HasKey``)."""
        return any(r.key == key and r.source in (SOURCE_K8S, SOURCE_ANY) for r in self.requirements)

    def has_source(self, source: str) -> bool:
        return any(r.source == source for r in self.requirements)

    def keys_with_prefix(self, prefix: str) -> tuple[str, ...]:
        return tuple(sorted({r.key for r in self.requirements if r.key.startswith(prefix)}))

    def prefixed(self, prefix: str, source: str = SOURCE_K8S) -> Selector:
        """The same requirements over ``prefix + key`` (a K8s namespaceSelector as namespace labels)."""
        return Selector(tuple(attrs.evolve(r, key=prefix + r.key, source=source) for r in self.requirements))

    def __and__(self, other: Selector) -> Selector:
        return Selector(self.requirements + other.requirements)

    def describe(self) -> str:
        return "{" + ", ".join(r.describe() for r in self.requirements) + "}"


ALL = Selector(())


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


def parse_selector(value: Any, where: str, *, sources: bool = True, default_source: str = SOURCE_ANY) -> Selector:
    """Parse a LabelSelector; ``sources=False`` (Kubernetes selectors) takes keys literally."""
    raw = _mapping(value, where)
    unknown = set(raw) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise ValueError(f"{where}: unknown selector fields {sorted(unknown)}")

    def key_of(text: str) -> tuple[str, str]:
        return split_key(text) if sources else (default_source, text)

    requirements: list[Requirement] = []
    for k, v in sorted(_mapping(raw.get("matchLabels"), f"{where}.matchLabels").items()):
        source, key = key_of(_string(k, f"{where}.matchLabels key"))
        value_text = "" if v is None else _string(v, f"{where}.matchLabels[{k}]")
        requirements.append(Requirement(source, key, "In", frozenset({value_text})))
    for i, item in enumerate(_list(raw.get("matchExpressions"), f"{where}.matchExpressions")):
        here = f"{where}.matchExpressions[{i}]"
        expr = _mapping(item, here)
        extra = set(expr) - {"key", "operator", "values"}
        if extra:
            raise ValueError(f"{here}: unknown fields {sorted(extra)}")
        source, key = key_of(_string(expr.get("key"), f"{here}.key"))
        operator = _string(expr.get("operator"), f"{here}.operator")
        if operator not in OPERATORS:
            raise ValueError(f"{here}: unknown operator {operator!r}")
        values = frozenset(_string(v, f"{here}.values") for v in _list(expr.get("values"), f"{here}.values"))
        if operator in ("In", "NotIn") and not values:
            raise ValueError(f"{here}: operator {operator} requires a non-empty values list")
        if operator in ("Exists", "DoesNotExist") and values:
            raise ValueError(f"{here}: operator {operator} must not have values")
        requirements.append(Requirement(source, key, operator, values))
    return Selector(tuple(requirements))


# --------------------------------------------------------------------------------------------
# peer selectors (fromEndpoints / toEndpoints, and Kubernetes peers translated to them)


@attrs.frozen
class EndpointPeer:
    """One ``fromEndpoints``/``toEndpoints`` selector with what Cilium adds to it.

    ``namespace``: the namespace a CNP implies when the selector names none.  ``pods_only``: the
    ``k8s:io.kubernetes.pod.namespace`` Exists requirement a CCNP (or a translated Kubernetes
    namespaceSelector) implies, so that ``{}`` means every pod and not the reserved identities.
    ``ignored``: namespace-label keys used in a CNP, where Cilium does not honour them.
    """

    selector: Selector
    namespace: str | None = None
    pods_only: bool = False
    ignored: tuple[str, ...] = ()

    def matches(self, identity: Identity) -> bool:
        if self.ignored:
            return False
        ns = identity.get(NAMESPACE_KEY)
        if self.namespace is not None and ns != (SOURCE_K8S, self.namespace):
            return False
        if self.pods_only and (ns is None or ns[0] != SOURCE_K8S):
            return False
        return self.selector.matches(identity)

    def describe(self) -> str:
        text = self.selector.describe()
        if self.namespace is not None:
            text += f" in namespace {self.namespace}"
        return text


def endpoint_peer(selector: Selector, policy_namespace: str | None) -> EndpointPeer:
    """What Cilium makes of a peer selector in a CNP (``policy_namespace`` set) or a CCNP (None)."""
    if selector.has_source(SOURCE_RESERVED):
        # reserved identities (host, world, ...) have no namespace: nothing is implied
        return EndpointPeer(selector)
    explicit = selector.has_key(NAMESPACE_KEY)
    if policy_namespace is not None:
        ignored = selector.keys_with_prefix(NAMESPACE_LABELS_PREFIX)
        return EndpointPeer(selector, None if explicit else policy_namespace, False, ignored)
    return EndpointPeer(selector, None, not explicit)

"""Cilium identities (labels with a source) and endpoint selectors over them.

An identity maps a label key to ``(source, value)``.  A pod's identity carries its labels and the
labels Cilium derives from Kubernetes, all with source ``k8s``; nodes, external addresses and the
API server get the ``reserved`` labels of their entity (``reserved:host``, ``reserved:world``, ...).
Selector keys may name a source (``k8s:app``, ``reserved:host``, ``$host`` = ``reserved:host``);
a key without one means ``any:`` (Cilium's ``ParseSelectLabel``), which matches every source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from netpol_dsl.endpoints import ApiServer, Endpoint, External, Node, Pod
from netpol_dsl.engines.manifest import describe_requirement, parse_label_selector, requirement_holds

NAMESPACE_KEY = "io.kubernetes.pod.namespace"
CLUSTER_KEY = "io.cilium.k8s.policy.cluster"
SERVICE_ACCOUNT_KEY = "io.cilium.k8s.policy.serviceaccount"
NAMESPACE_LABELS_PREFIX = "io.cilium.k8s.namespace.labels."

SOURCE_K8S = "k8s"
SOURCE_ANY = "any"
SOURCE_RESERVED = "reserved"

Identity = Mapping[str, tuple[str, str]]  # label key -> (source, value)


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
        """The LabelSelector semantics over the label's value, if its source is the one named."""
        found = identity.get(self.key)
        value = found[1] if found is not None and self.source in (SOURCE_ANY, found[0]) else None
        return requirement_holds(self.operator, self.values, value)

    def describe(self) -> str:
        key = self.key if self.source == SOURCE_ANY else f"{self.source}:{self.key}"
        if self.operator == "In" and len(self.values) == 1:
            return f"{key}={next(iter(self.values))}"
        return describe_requirement(key, self.operator, self.values)


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


def parse_selector(value: Any, where: str, *, sources: bool = True, default_source: str = SOURCE_ANY) -> Selector:
    """Parse a LabelSelector; ``sources=False`` (Kubernetes selectors) takes keys literally.

    Cilium's reading: a null ``matchLabels`` value is the empty string, ``matchLabels`` is read in
    key order, and ``matchExpressions`` items with unknown fields are rejected (the CRD schema).
    Each ``matchLabels`` pair becomes an ``In`` requirement with one value.
    """
    match_labels, expressions = parse_label_selector(
        value, where, null_value="", sort_first=True, strict_expressions=True)

    def key_of(text: str) -> tuple[str, str]:
        return split_key(text) if sources else (default_source, text)

    requirements = [Requirement(*key_of(k), "In", frozenset({v})) for k, v in match_labels]
    requirements += [Requirement(*key_of(r.key), r.operator, r.values) for r in expressions]
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

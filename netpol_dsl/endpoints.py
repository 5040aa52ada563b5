"""Concrete endpoints and connections: what the reference semantics and the engines evaluate."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import attrs

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _pairs(labels: Mapping[str, str] | tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    items = labels.items() if isinstance(labels, Mapping) else labels
    return tuple(sorted((str(k), str(v)) for k, v in items))


@attrs.frozen(order=True)
class ContainerPort:
    port: int
    protocol: str = "TCP"
    name: str = ""


@attrs.frozen(order=True)
class Pod:
    """A pod with its labels and its namespace's labels (which include kubernetes.io/metadata.name)."""

    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    namespace_labels: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    ip: IPAddress | None = None
    ports: tuple[ContainerPort, ...] = ()
    node: str = ""
    service_account: str = "default"
    # the labels of the pod's ServiceAccount (Calico selects by them); left out of equality, hashing and
    # ordering so that a Pod compares, hashes and sorts as it did before the field existed
    service_account_labels: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs, eq=False,
                                                                     order=False)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def namespace_label_map(self) -> dict[str, str]:
        labels = dict(self.namespace_labels)
        labels.setdefault("kubernetes.io/metadata.name", self.namespace)
        return labels

    def named_ports(self, protocol: str) -> dict[str, int]:
        return {p.name: p.port for p in self.ports if p.name and p.protocol == protocol}

    def describe(self) -> str:
        return f"{self.namespace}/{self.name}"


@attrs.frozen(order=True)
class External:
    """An address outside the cluster, with the DNS names that resolve to it."""

    ip: IPAddress
    names: tuple[str, ...] = ()

    def describe(self) -> str:
        return self.names[0] if self.names else str(self.ip)


@attrs.frozen(order=True)
class Node:
    name: str
    ip: IPAddress | None = None

    def describe(self) -> str:
        return f"node/{self.name}"


@attrs.frozen(order=True)
class ApiServer:
    def describe(self) -> str:
        return "kube-apiserver"


Endpoint = Pod | External | Node | ApiServer


@attrs.frozen
class HttpRequest:
    method: str = "GET"
    path: str = "/"
    host: str = ""
    headers: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class Connection:
    """A connection attempt: ``src`` opens ``protocol``/``port`` to ``dst``."""

    src: Endpoint
    dst: Endpoint
    protocol: str
    port: int
    http: HttpRequest | None = None

    def describe(self) -> str:
        return f"{self.src.describe()} -> {self.dst.describe()} {self.protocol.lower()}/{self.port}"

"""Zones: named groups of peers.  ``a >> b`` is a flow from zone a to zone b.

How namespace and pod selection combine is visible in the types, never in
indentation: ``namespace("shop").pods(app="web")`` and
``namespaces(team="web").pods(app="api")`` are one :class:`Pods` zone each
(namespace AND pods); ``a | b`` is an :class:`AnyOf` zone (OR).  ``.service_account(name)``
narrows a namespace or pods zone to the pods running as that ServiceAccount (AND again).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Self

import attrs
from typeguard import typechecked

from netpol_dsl import values
from netpol_dsl.diagnostics import Code, Location, caller_location, fail
from netpol_dsl.dsl.labels import LabelExpr, build_selector
from netpol_dsl.ir.peers import namespace_selector
from netpol_dsl.ir.selectors import SERVICE_ACCOUNT_KEY, Constraint, Selector, Shape
from netpol_dsl.values import IPNetwork


@attrs.frozen
class Zone:
    """Base of every zone; ``name`` shows in diagnostics and flow descriptions."""

    name: str | None = attrs.field(default=None, kw_only=True)
    location: Location = attrs.field(eq=False, factory=caller_location, kw_only=True)

    def named(self, name: str) -> Self:
        """The same zone under a readable name (used in messages and object names)."""
        return attrs.evolve(self, name=values.zone_name(name), location=caller_location())

    def __rshift__(self, other: Zone | Sequence[Zone]) -> Flow:
        return Flow((self,), _zones(other, "flow destination"))

    def __rrshift__(self, other: Sequence[Zone]) -> Flow:
        return Flow(_zones(other, "flow source"), (self,))

    def __or__(self, other: Zone) -> AnyOf:
        mine = self.members if isinstance(self, AnyOf) else (self,)
        theirs = other.members if isinstance(other, AnyOf) else (other,)
        return AnyOf(members=mine + theirs)

    def label(self) -> str:
        return self.name or self.describe()

    def describe(self) -> str:
        raise NotImplementedError


def _zones(item: Zone | Sequence[Zone], what: str) -> tuple[Zone, ...]:
    items = (item,) if isinstance(item, Zone) else tuple(item)
    for z in items:
        if not isinstance(z, Zone):
            raise fail(Code.NPD018, f"{what} must be a zone, got {type(z).__name__} {z!r}",
                       hint="ports go in allow(flow, tcp(...)), not in the flow")
    if not items:
        raise fail(Code.NPD015, f"{what} is an empty list of zones")
    return items


@attrs.frozen
class Pods(Zone):
    """Pods matching ``pods`` in namespaces matching ``namespaces`` (AND)."""

    namespaces: Selector
    pods: Selector
    scope: str  # how the namespaces were chosen, for messages

    def service_account(self, name: str) -> Pods:
        """These pods, only those running as the ServiceAccount ``name`` (AND).

        Example: ``shop.pods(app="web").service_account("web")``.  Two different accounts
        contradict each other (NPD016); ``|`` is the union.
        """
        pods = self.pods.conjoin(_service_account_selector(name))
        if pods is None:
            raise fail(Code.NPD016, f"service_account({name!r}) contradicts the service account of "
                       f"{self.describe()} and selects nothing", hint="use '|' for pods of either account")
        return Pods(namespaces=self.namespaces, pods=pods, scope=self.scope)

    def describe(self) -> str:
        return f"{self.scope}/{self.pods.describe()}"


@attrs.frozen
class Namespace(Zone):
    """One namespace by name: as a zone, all of its pods."""

    namespace: str
    labels: tuple[tuple[str, str], ...] = ()

    def pods(self, *exprs: LabelExpr | Mapping[str, str], **labels: str) -> Pods:
        """Pods of this namespace matching every requirement, e.g. ``shop.pods(app="web")``."""
        return Pods(namespaces=namespace_selector(self.namespace),
                    pods=build_selector(exprs, labels, "pods()"), scope=self.namespace)

    def service_account(self, name: str) -> Pods:
        """The pods of this namespace running as the ServiceAccount ``name``, e.g.
        ``shop.service_account("web")``; the same zone as ``service_account("shop", "web")``."""
        return Pods(namespaces=namespace_selector(self.namespace), pods=_service_account_selector(name),
                    scope=self.namespace)

    def describe(self) -> str:
        return f"{self.namespace}/*"


@attrs.frozen
class Namespaces(Zone):
    """Namespaces chosen by their labels: as a zone, all of their pods."""

    selector: Selector

    def pods(self, *exprs: LabelExpr | Mapping[str, str], **labels: str) -> Pods:
        """Pods matching the requirements in the chosen namespaces (namespace AND pods)."""
        return Pods(namespaces=self.selector, pods=build_selector(exprs, labels, "pods()"),
                    scope=self.describe().removesuffix("/*"))

    def service_account(self, name: str) -> Pods:
        """The pods running as a ServiceAccount called ``name`` in each chosen namespace (namespace AND
        account), e.g. ``namespaces(team="payments").service_account("api")``."""
        return Pods(namespaces=self.selector, pods=_service_account_selector(name),
                    scope=self.describe().removesuffix("/*"))

    def describe(self) -> str:
        return ("ns[" + self.selector.describe() + "]/*") if not self.selector.is_all else "*/*"


@attrs.frozen
class Cidr(Zone):
    """External addresses in ``network`` except ``excepts``."""

    network: IPNetwork
    excepts: tuple[IPNetwork, ...] = ()

    def describe(self) -> str:
        return str(self.network) + (f" except {','.join(map(str, self.excepts))}" if self.excepts else "")


@attrs.frozen
class Fqdn(Zone):
    """External hosts by DNS name (``exact``) or DNS pattern."""

    pattern: str
    exact: bool = True

    def describe(self) -> str:
        return self.pattern


class EntityName(enum.Enum):
    WORLD = "world"
    CLUSTER = "cluster"
    HOST = "host"
    REMOTE_NODE = "remote-node"
    KUBE_APISERVER = "kube-apiserver"
    ANYTHING = "anything"


@attrs.frozen
class Entity(Zone):
    """A well-known peer: the internet, the whole cluster, nodes, the API server, or anything."""

    entity: EntityName

    def describe(self) -> str:
        return self.entity.value


@attrs.frozen
class AnyOf(Zone):
    """The union of several zones (OR)."""

    members: tuple[Zone, ...] = ()

    def describe(self) -> str:
        return " | ".join(m.label() for m in self.members)


@attrs.frozen
class Flow:
    """Traffic from every source zone to every destination zone."""

    sources: tuple[Zone, ...]
    destinations: tuple[Zone, ...]
    location: Location = attrs.field(eq=False, factory=caller_location)

    def __rshift__(self, other: Zone | Sequence[Zone]) -> Flow:
        raise fail(Code.NPD015, "chained flows 'a >> b >> c' are ambiguous",
                   hint="write two flows: allow(a >> b, ...), allow(b >> c, ...)")

    def describe(self) -> str:
        src = ", ".join(z.label() for z in self.sources)
        dst = ", ".join(z.label() for z in self.destinations)
        return f"{src} -> {dst}"


def _service_account_selector(name: str) -> Selector:
    """Service accounts are a reserved pseudo-label of the pod selector (see ir.selectors)."""
    return Selector((Constraint(SERVICE_ACCOUNT_KEY, Shape.IN, (values.service_account_name(name),)),))


# ---- constructors -----------------------------------------------------------------------------


@typechecked
def namespace(name: str, labels: Mapping[str, str] | None = None) -> Namespace:
    """A namespace by name; ``labels`` declares its labels (used to select it and by some targets)."""
    values.dns_label(name, "namespace name")
    pairs = tuple(sorted((values.label_key(k), values.label_value(v, k)) for k, v in (labels or {}).items()))
    return Namespace(namespace=name, labels=pairs, name=name)


@typechecked
def namespaces(*exprs: LabelExpr | Mapping[str, str], **labels: str) -> Namespaces:
    """Every namespace whose labels match, e.g. ``namespaces(team="payments")``."""
    return Namespaces(selector=build_selector(exprs, labels, "namespaces()"))


@typechecked
def all_namespaces() -> Namespaces:
    """Every namespace; ``all_namespaces().pods(app="x")`` is cluster-wide."""
    return Namespaces(selector=Selector())


@typechecked
def all_pods() -> Pods:
    """Every pod of the cluster."""
    return Pods(namespaces=Selector(), pods=Selector(), scope="*", name="all-pods")


@typechecked
def service_account(namespace: str, name: str) -> Pods:
    """The pods of ``namespace`` that run as the ServiceAccount ``name`` (``spec.serviceAccountName``).

    Args:
        namespace: the namespace of the account and its pods (a DNS-1123 label).
        name: the ServiceAccount's name (a DNS-1123 subdomain of at most 63 characters).

    Returns:
        A :class:`Pods` zone, the same as ``namespace(namespace).service_account(name)``; for pods
        with given labels *and* account write ``namespace(...).pods(...).service_account(name)``.

    Example: ``allow(service_account("shop", "web") >> service_account("shop", "api"), tcp(8080))``.
    Targets select the account by its engine's identity label; ``kubernetes`` cannot (NPD211).
    """
    values.dns_label(namespace, "namespace name")
    return Pods(namespaces=namespace_selector(namespace), pods=_service_account_selector(name), scope=namespace)


@typechecked
def cidr(network: str, *, except_: Sequence[str] = ()) -> Cidr:
    """External addresses: ``cidr("203.0.113.0/24", except_=["203.0.113.7/32"])``."""
    net = values.network(network)
    excepts = []
    for text in except_:
        e = values.network(text, "except CIDR")
        if e.version != net.version:
            raise fail(Code.NPD008, f"except CIDR {text!r} is IPv{e.version} but {network!r} is IPv{net.version}")
        if not e.subnet_of(net) or e == net:  # type: ignore[arg-type]
            raise fail(Code.NPD008, f"except CIDR {text!r} is not strictly inside {network!r}")
        excepts.append(e)
    return Cidr(network=net, excepts=tuple(sorted(excepts, key=str)))


@typechecked
def fqdn(name: str) -> Fqdn:
    """An external host by exact DNS name, e.g. ``fqdn("payments.example.com")``."""
    return Fqdn(pattern=values.dns_name(name), exact=True)


@typechecked
def fqdn_pattern(pattern: str) -> Fqdn:
    """External hosts by DNS pattern: ``*`` within one label (``*.bing.com``), ``**.`` any depth."""
    return Fqdn(pattern=values.dns_pattern(pattern), exact=False)


@typechecked
def world() -> Entity:
    """Every address outside the cluster (IPv4 and IPv6)."""
    return Entity(entity=EntityName.WORLD, name="world")


@typechecked
def cluster() -> Entity:
    """Every pod and node of the cluster (use all_pods() for pods only)."""
    return Entity(entity=EntityName.CLUSTER, name="cluster")


@typechecked
def host() -> Entity:
    """The node a pod runs on."""
    return Entity(entity=EntityName.HOST, name="host")


@typechecked
def remote_node() -> Entity:
    """Every other node of the cluster."""
    return Entity(entity=EntityName.REMOTE_NODE, name="remote-node")


@typechecked
def kube_apiserver() -> Entity:
    """The Kubernetes API server."""
    return Entity(entity=EntityName.KUBE_APISERVER, name="kube-apiserver")


@typechecked
def anything() -> Entity:
    """Every peer at all: pods, nodes and external addresses."""
    return Entity(entity=EntityName.ANYTHING, name="anything")


@typechecked
def cluster_dns(namespace: str = "kube-system", labels: Mapping[str, str] | None = None) -> Pods:
    """The cluster's DNS resolver pods (CoreDNS/kube-dns; labels default to ``k8s-app=kube-dns``)."""
    values.dns_label(namespace, "namespace name")
    return Pods(namespaces=namespace_selector(namespace),
                pods=build_selector((), dict(labels or {"k8s-app": "kube-dns"}), "cluster_dns()"),
                scope=namespace, name="cluster-dns")

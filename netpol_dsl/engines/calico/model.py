"""The parsed policy model: endpoints as Calico sees them, entity rules, rules, policies, tiers, network sets."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Literal

import attrs

from netpol_dsl.endpoints import Connection, Pod
from netpol_dsl.engines.calico.selectors import Selector
from netpol_dsl.engines.manifest import Network

Direction = Literal["ingress", "egress"]
Action = Literal["Allow", "Deny", "Log", "Pass"]
DefaultAction = Literal["Deny", "Pass"]

NAMESPACE_KEY = "projectcalico.org/namespace"
ORCHESTRATOR_KEY = "projectcalico.org/orchestrator"
SERVICE_ACCOUNT_KEY = "projectcalico.org/serviceaccount"
NAME_KEY = "projectcalico.org/name"
NAMESPACE_PREFIX = "pcns."
SERVICE_ACCOUNT_PREFIX = "pcsa."

PROTOCOL_NUMBERS = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136}
PORT_PROTOCOLS = frozenset({6, 17, 132})  # numorstring.Protocol.SupportsPorts
_PROTOCOL_NAMES = {number: name for name, number in PROTOCOL_NUMBERS.items()}
# Connection.protocol spellings (upper-cased) -> IP protocol number
_CONNECTION_PROTOCOLS = {"TCP": 6, "UDP": 17, "SCTP": 132, "ICMP": 1, "ICMPV6": 58, "ICMP6": 58, "UDPLITE": 136}


def protocol_number(conn_protocol: str) -> int | None:
    return _CONNECTION_PROTOCOLS.get(conn_protocol.upper())


def protocol_name(number: int) -> str:
    return _PROTOCOL_NAMES.get(number, str(number))


# --------------------------------------------------------------------------------------------
# endpoints, as Calico selectors see them


@attrs.frozen
class View:
    """One Calico endpoint an address belongs to: a pod's workload endpoint or a network set.

    ``labels`` are what selectors see (inherited ``pcns.*``/``pcsa.*`` labels included);
    ``namespaced`` is False for a GlobalNetworkSet; ``pod`` is set for a workload endpoint (named ports).
    """

    what: str
    labels: Mapping[str, str] = attrs.field(eq=False)
    namespaced: bool
    pod: Pod | None = None


def pod_labels(pod: Pod) -> dict[str, str]:
    """The labels of ``pod``'s workload endpoint: inherited profile labels, then the pod's own, then
    the ``projectcalico.org/*`` labels Calico sets."""
    labels = {NAMESPACE_PREFIX + k: v for k, v in pod.namespace_label_map.items()}
    labels[NAMESPACE_PREFIX + NAME_KEY] = pod.namespace
    labels.update((SERVICE_ACCOUNT_PREFIX + k, v) for k, v in pod.service_account_labels)
    labels[SERVICE_ACCOUNT_PREFIX + NAME_KEY] = pod.service_account
    labels.update(pod.labels)
    labels[NAMESPACE_KEY] = pod.namespace
    labels[ORCHESTRATOR_KEY] = "k8s"
    labels[SERVICE_ACCOUNT_KEY] = pod.service_account
    return labels


@attrs.frozen
class NetworkSet:
    """A GlobalNetworkSet (``namespace`` None) or a NetworkSet."""

    name: str
    namespace: str | None
    labels: tuple[tuple[str, str], ...]
    nets: tuple[Network, ...]

    @property
    def ident(self) -> str:
        return f"GlobalNetworkSet {self.name}" if self.namespace is None else f"NetworkSet {self.namespace}/{self.name}"

    def contains(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip.version == n.version and ip in n for n in self.nets)

    def view(self, namespace_labels: Mapping[str, str]) -> View:
        labels: dict[str, str] = {}
        if self.namespace is not None:
            labels = {NAMESPACE_PREFIX + k: v for k, v in namespace_labels.items()}
            labels[NAMESPACE_PREFIX + NAME_KEY] = self.namespace
        labels.update(self.labels)
        if self.namespace is not None:
            labels[NAMESPACE_KEY] = self.namespace
        return View(self.ident, labels, self.namespace is not None)


# --------------------------------------------------------------------------------------------
# rules


@attrs.frozen
class PortMatch:
    """A ``ports``/``notPorts`` item: ``first``-``last`` or a named port."""

    first: int = 0
    last: int = 0
    name: str = ""

    def describe(self) -> str:
        if self.name:
            return self.name
        return str(self.first) if self.first == self.last else f"{self.first}:{self.last}"


@attrs.frozen
class EntityRule:
    """A rule's ``source`` or ``destination``.  Selector-like fields are None when absent (an empty
    string in the manifest is absent too, as in Calico); ``namespace`` is the policy's namespace for a
    NetworkPolicy (the default restriction of its selectors), None for a GlobalNetworkPolicy."""

    namespace: str | None = None
    selector: Selector | None = None
    not_selector: Selector | None = None
    namespace_selector: Selector | None = None
    sa_names: frozenset[str] | None = None
    sa_selector: Selector | None = None
    nets: tuple[Network, ...] | None = None
    not_nets: tuple[Network, ...] = ()
    ports: tuple[PortMatch, ...] | None = None
    not_ports: tuple[PortMatch, ...] = ()

    @property
    def has_positive(self) -> bool:
        """Whether Calico forms a positive selector (calico:libcalico-go/.../updateprocessors/rules.go):
        selector or serviceAccounts given, or a namespace restriction that applies because
        notSelector or namespaceSelector is given."""
        parts = self.selector is not None or self.sa_names is not None or self.sa_selector is not None
        restricted = self.namespace_selector is not None or self.namespace is not None
        return parts or (restricted and (self.not_selector is not None or self.namespace_selector is not None))

    def _namespace_ok(self, view: View) -> bool:
        if self.namespace_selector is not None:
            return self.namespace_selector.matches(view.labels, NAMESPACE_PREFIX, all_value=view.namespaced,
                                                   global_value=not view.namespaced)
        if self.namespace is not None:
            return view.labels.get(NAMESPACE_KEY) == self.namespace
        return True

    def positive(self, view: View) -> bool:
        """The positive selector on one endpoint (only meaningful when :attr:`has_positive`), with
        notSelector folded in as Felix does when there is a positive selector."""
        if self.sa_selector is not None and not self.sa_selector.matches(view.labels, SERVICE_ACCOUNT_PREFIX):
            return False
        if self.sa_names is not None and view.labels.get(SERVICE_ACCOUNT_KEY) not in self.sa_names:
            return False
        if self.selector is not None and not self.selector.matches(view.labels):
            return False
        if not self._namespace_ok(view):
            return False
        return self.not_selector is None or not self.not_selector.matches(view.labels)

    def describe_peer(self) -> str:
        parts = []
        if self.selector is not None:
            parts.append(f"selector {self.selector.describe()!r}")
        if self.namespace_selector is not None:
            parts.append(f"namespaceSelector {self.namespace_selector.describe()!r}")
        elif self.namespace is not None and self.has_positive:
            parts.append(f"namespace {self.namespace}")
        if self.sa_names is not None:
            parts.append(f"serviceAccounts.names {sorted(self.sa_names)}")
        if self.sa_selector is not None:
            parts.append(f"serviceAccounts.selector {self.sa_selector.describe()!r}")
        if self.not_selector is not None:
            parts.append(f"notSelector {self.not_selector.describe()!r}")
        if self.nets is not None:
            parts.append(f"nets {', '.join(str(n) for n in self.nets)}")
        if self.not_nets:
            parts.append(f"notNets {', '.join(str(n) for n in self.not_nets)}")
        return " and ".join(parts) or "any endpoint"


@attrs.frozen
class IcmpMatch:
    type: int
    code: int | None = None

    def matches(self, kind: int, code: int) -> bool:
        return kind == self.type and (self.code is None or code == self.code)

    def describe(self) -> str:
        return f"type {self.type}" + (f" code {self.code}" if self.code is not None else "")


@attrs.frozen
class Rule:
    """One ``ingress``/``egress`` rule.  ``http``: the rule had an ``http`` match, which Felix does not
    enforce (only Istio Application Layer Policy does), so it is evaluated as its L3/L4 part."""

    label: str
    action: Action
    protocol: int | None = None
    not_protocol: int | None = None
    ip_version: int | None = None
    icmp: IcmpMatch | None = None
    not_icmp: IcmpMatch | None = None
    source: EntityRule = EntityRule()
    destination: EntityRule = EntityRule()
    http: bool = False

    @property
    def named_port_protocol(self) -> int:
        """Felix resolves named ports for the rule's protocol when it is UDP or SCTP, else for TCP."""
        return self.protocol if self.protocol in (17, 132) else 6


@attrs.frozen
class Policy:
    """A GlobalNetworkPolicy, a NetworkPolicy, or a Kubernetes NetworkPolicy translated as Calico does.

    ``sort_name`` is the name Felix breaks order ties with (``namespace/name`` for namespaced
    policies, ``namespace/knp.default.name`` for Kubernetes ones).  ``host_only`` is set for a
    ``doNotTrack``/``preDNAT`` GlobalNetworkPolicy, which applies to host endpoints only.
    """

    kind: str
    name: str
    namespace: str | None
    tier: str
    order: float | None
    selector: Selector
    namespace_selector: Selector | None = None
    sa_selector: Selector | None = None
    types: frozenset[Direction] = frozenset()
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    host_only: str = ""
    position: int = 0

    @property
    def ident(self) -> str:
        return f"{self.kind} {self.name}" if self.namespace is None else f"{self.kind} {self.namespace}/{self.name}"

    @property
    def sort_name(self) -> str:
        name = f"knp.default.{self.name}" if self.kind == KNP else self.name
        return name if self.namespace is None else f"{self.namespace}/{name}"

    @property
    def sort_key(self) -> tuple[bool, float, str]:
        return (self.order is None, self.order or 0.0, self.sort_name)

    def rules(self, direction: Direction) -> tuple[Rule, ...]:
        return self.ingress if direction == "ingress" else self.egress

    def selects(self, pod: Pod, labels: Mapping[str, str]) -> bool:
        """Whether the policy applies to ``pod`` (whose workload endpoint has ``labels``)."""
        if self.host_only:
            return False
        if self.namespace is not None and pod.namespace != self.namespace:
            return False
        if not self.selector.matches(labels):
            return False
        if self.namespace_selector is not None and not self.namespace_selector.matches(labels, NAMESPACE_PREFIX):
            return False
        return self.sa_selector is None or self.sa_selector.matches(labels, SERVICE_ACCOUNT_PREFIX)


KNP = "KubernetesNetworkPolicy"
GNP = "GlobalNetworkPolicy"
CNP = "NetworkPolicy"


@attrs.frozen
class Tier:
    name: str
    order: float | None
    default_action: DefaultAction = "Deny"

    @property
    def sort_key(self) -> tuple[bool, float, str]:
        return (self.order is None, self.order or 0.0, self.name)

    def describe(self) -> str:
        order = "no order" if self.order is None else f"order {_number(self.order)}"
        return f"tier {self.name} ({order}, defaultAction {self.default_action})"


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


BUILTIN_TIERS = {
    "kube-admin": Tier("kube-admin", 1000.0, "Pass"),
    "default": Tier("default", 1_000_000.0, "Deny"),
    "kube-baseline": Tier("kube-baseline", 10_000_000.0, "Pass"),
}


def connection_family(conn: Connection) -> int:
    """The IP version of ``conn``: that of an end with an address, else 6 for ICMPv6, else 4."""
    for end in (conn.src, conn.dst):
        ip = getattr(end, "ip", None)
        if ip is not None:
            return int(ip.version)
    return 6 if protocol_number(conn.protocol) == 58 else 4

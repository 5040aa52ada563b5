"""What a cluster contains, for the simulator: namespaces, pods, nodes, external hosts, service accounts.

Two input forms are accepted, in any number of files and YAML documents, and merged:

* our inventory form::

    cluster: {name: default}
    namespaces: {shop: {team: web}}                  # name -> labels
    pods:
      - {namespace: shop, name: web-1, labels: {app: web}, ip: 10.0.1.5, serviceAccount: web,
         node: node-1, ports: [{port: 8080, protocol: TCP, name: http}]}
    nodes: [{name: node-1, ip: 192.168.0.1, labels: {}}]
    external: [{name: payments.example.com, ips: [203.0.113.7]}, {ip: 198.51.100.1}]
    serviceAccounts: {shop/web: {tier: frontend}}

* Kubernetes objects as ``kubectl get namespaces,pods -A -o yaml`` prints them (a ``v1 List``), or
  single ``Namespace``, ``Pod``, ``Node`` and ``ServiceAccount`` objects.

Every namespace gets the label ``kubernetes.io/metadata.name`` the API server sets.  Pods that
have finished (phase ``Succeeded`` or ``Failed``) and ``hostNetwork`` pods (whose traffic is the
node's, outside NetworkPolicy) are left out.  Each pod carries the labels of its ServiceAccount (if
the inventory lists it; Calico selects by them).  Problems are reported all at once as
:class:`InputError`, each prefixed with its file and document number (from 1).
"""

from __future__ import annotations

import importlib
import ipaddress
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs

from netpol_dsl.endpoints import ContainerPort, Endpoint, External, IPAddress, Node, Pod
from netpol_dsl.ir.selectors import NAMESPACE_NAME_LABEL

PROTOCOLS = ("TCP", "UDP", "SCTP")
DNS_NAMESPACE = "kube-system"
DNS_LABEL = ("k8s-app", "kube-dns")
_FINISHED = frozenset({"Succeeded", "Failed"})
_OUR_KEYS = frozenset({"cluster", "namespaces", "pods", "nodes", "external", "serviceAccounts"})
_KINDS = ("Namespace", "Pod", "Node", "ServiceAccount")

Labels = tuple[tuple[str, str], ...]

_T = TypeVar("_T")


class InputError(ValueError):
    """Malformed input: one ``where: what`` line per problem (``where`` names file and document)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------------------------
# reading YAML


def _loader() -> tuple[Any, Any]:
    """(load_all, error type) of PyYAML, a dependency for this: its C loader is about 10x faster than a
    pure-Python one on large inventories (the pure ``SafeLoader`` where PyYAML lacks libyaml).

    It reads YAML 1.1, as kubectl does (``on``/``yes`` are booleans, so unquoted label values
    like that are rejected below instead of silently becoming ``"True"``).
    """
    pyyaml = importlib.import_module("yaml")  # no stubs needed: the two names used are checked below
    loader = getattr(pyyaml, "CSafeLoader", pyyaml.SafeLoader)
    return (lambda text: pyyaml.load_all(text, Loader=loader)), pyyaml.YAMLError


def read_documents(path: Path, what: str) -> list[tuple[str, Any]]:
    """The non-empty YAML documents of ``path`` as ``("FILE: document N", data)`` pairs, N from 1."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError([f"{path}: cannot read {what}: {reason}"]) from exc
    if text.lstrip()[:1] in ("{", "["):  # JSON (kubectl -o json) is YAML too, and json is much faster
        try:
            data = json.loads(text)
        except ValueError:
            pass  # flow-style YAML, or broken: the YAML reader decides and reports
        else:
            return [] if data is None else [(f"{path}: document 1", data)]
    load_all, error = _loader()
    out: list[tuple[str, Any]] = []
    index = 0
    try:
        for index, data in enumerate(load_all(text), start=1):
            if data is not None:
                out.append((f"{path}: document {index}", data))
    except error as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError([f"{path}: document {index + 1}: invalid YAML{at}: {problem}"]) from exc
    return out


# --------------------------------------------------------------------------------------------
# the model


@attrs.frozen(order=True)
class Namespace:
    name: str
    labels: Labels  # always includes kubernetes.io/metadata.name


@attrs.frozen(order=True)
class NodeInfo:
    name: str
    ip: IPAddress | None = None
    labels: Labels = ()

    @property
    def endpoint(self) -> Node:
        return Node(self.name, self.ip)


@attrs.frozen(order=True)
class ExternalHost:
    """An address outside the cluster; ``names`` resolve to every address in ``ips``."""

    names: tuple[str, ...]
    ips: tuple[IPAddress, ...]


@attrs.frozen(order=True)
class ServiceAccount:
    namespace: str
    name: str
    labels: Labels = ()


def _norm_name(name: str) -> str:
    return name.rstrip(".").lower()


@attrs.frozen
class Inventory:
    """A merged, validated inventory; every tuple sorted."""

    cluster: str = "default"
    namespaces: tuple[Namespace, ...] = ()
    pods: tuple[Pod, ...] = ()
    nodes: tuple[NodeInfo, ...] = ()
    external: tuple[ExternalHost, ...] = ()
    service_accounts: tuple[ServiceAccount, ...] = ()
    _pods: dict[str, Pod] = attrs.field(init=False, eq=False, repr=False)
    _by_ip: dict[IPAddress, Endpoint] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        by_ip: dict[IPAddress, Endpoint] = {}
        for host in reversed(self.external):
            for ip in host.ips:
                by_ip[ip] = External(ip, host.names)
        for node in reversed(self.nodes):
            if node.ip is not None:
                by_ip[node.ip] = node.endpoint
        for pod in reversed(self.pods):
            if pod.ip is not None:
                by_ip[pod.ip] = pod
        object.__setattr__(self, "_pods", {p.describe(): p for p in self.pods})
        object.__setattr__(self, "_by_ip", by_ip)

    def pod(self, ref: str) -> Pod | None:
        """The pod ``namespace/name``, if any."""
        return self._pods.get(ref)

    def node(self, name: str) -> Node | None:
        return next((n.endpoint for n in self.nodes if n.name == name), None)

    def at_ip(self, ip: IPAddress) -> Endpoint:
        """What has address ``ip``: a pod, else a node, else an external host (named if listed)."""
        return self._by_ip.get(ip) or External(ip)

    def resolve(self, name: str) -> tuple[External, ...] | None:
        """The addresses of an ``external`` name (case-insensitive, trailing dot optional), if listed."""
        want = _norm_name(name)
        for host in self.external:
            if any(_norm_name(n) == want for n in host.names):
                return tuple(External(ip, host.names) for ip in host.ips)
        return None

    def dns_pods(self) -> tuple[Pod, ...]:
        """The cluster DNS: pods in kube-system labelled k8s-app=kube-dns."""
        return tuple(p for p in self.pods if p.namespace == DNS_NAMESPACE and DNS_LABEL in p.labels)

    def select(self, refs: Sequence[str]) -> tuple[Pod, ...]:
        """The pods named by ``refs`` (``ns`` = every pod of the namespace, ``ns/pod`` = one pod), in
        inventory order; every pod when ``refs`` is empty.  Unknown references raise InputError."""
        if not refs:
            return self.pods
        namespaces = {n.name for n in self.namespaces}
        bad = [r for r in refs if (r not in self._pods) if ("/" in r or r not in namespaces)]
        if bad:
            raise InputError([f"no pod or namespace {r!r} in the inventory" for r in bad])
        wanted = set(refs)
        return tuple(p for p in self.pods if p.namespace in wanted or p.describe() in wanted)


# --------------------------------------------------------------------------------------------
# parsing


def _labels(value: Any, where: str, problems: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"{where}: expected a mapping of labels, got {type(value).__name__}")
        return {}
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            problems.append(f"{where}: label {k!r}: {v!r}: keys and values must be strings (quote them)")
        else:
            out[k] = v
    return out


def _ip(value: Any, where: str, problems: list[str]) -> IPAddress | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, str):
            return ipaddress.ip_address(value)
    except ValueError:
        pass
    problems.append(f"{where}: invalid IP address {value!r}")
    return None


def _string(value: Any, where: str, problems: list[str], default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or not value:
        problems.append(f"{where}: expected a non-empty string, got {value!r}")
        return ""
    return value


def _items(value: Any, where: str, problems: list[str]) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{where}: expected a list, got {type(value).__name__}")
        return []
    return value


def _fields(value: Any, where: str, allowed: frozenset[str], problems: list[str]) -> Mapping[str, Any] | None:
    if not isinstance(value, Mapping):
        problems.append(f"{where}: expected a mapping, got {type(value).__name__}")
        return None
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        problems.append(f"{where}: unknown fields {unknown} (known: {sorted(allowed)})")
    return value


def _port(value: Any, where: str, problems: list[str], number_key: str) -> ContainerPort | None:
    raw = _fields(value, where, frozenset({number_key, "protocol", "name", "hostPort", "hostIP"}), problems)
    if raw is None:
        return None
    number = raw.get(number_key)
    protocol = raw.get("protocol") or "TCP"
    name = raw.get("name") or ""
    ok = True
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
        problems.append(f"{where}.{number_key}: expected a port number 1-65535, got {number!r}")
        ok = False
    if protocol not in PROTOCOLS:
        problems.append(f"{where}.protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        ok = False
    if not isinstance(name, str):
        problems.append(f"{where}.name: expected a string, got {name!r}")
        ok = False
    return ContainerPort(number, protocol, name) if ok and isinstance(number, int) else None


@attrs.frozen
class _PodRecord:
    where: str
    namespace: str
    name: str
    labels: dict[str, str]
    ip: IPAddress | None
    ports: tuple[ContainerPort, ...]
    node: str
    service_account: str


class _Builder:
    """Accumulates inventory parts from any number of documents, then checks and merges them."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.cluster: tuple[str, str] | None = None
        self.namespaces: dict[str, tuple[str, dict[str, str]]] = {}
        self.pods: dict[str, _PodRecord] = {}
        self.nodes: dict[str, tuple[str, NodeInfo]] = {}
        self.external: list[ExternalHost] = []
        self.accounts: dict[str, tuple[str, ServiceAccount]] = {}

    # -- adding, with duplicate checks

    def namespace(self, where: str, name: str, labels: dict[str, str]) -> None:
        if not name:
            return
        auto = labels.setdefault(NAMESPACE_NAME_LABEL, name)
        if auto != name:
            self.problems.append(f"{where}: namespace {name}: label {NAMESPACE_NAME_LABEL} must be {name!r}")
        self._once(self.namespaces, name, where, labels, f"namespace {name}")

    def pod(self, record: _PodRecord) -> None:
        if not record.namespace or not record.name:
            return
        key = f"{record.namespace}/{record.name}"
        seen = self.pods.get(key)
        if seen is not None and attrs.evolve(seen, where="") != attrs.evolve(record, where=""):
            self.problems.append(f"{record.where}: pod {key} is defined again differently (first at {seen.where})")
        elif seen is None:
            self.pods[key] = record

    def node(self, where: str, node: NodeInfo) -> None:
        if node.name:
            self._once(self.nodes, node.name, where, node, f"node {node.name}")

    def account(self, where: str, account: ServiceAccount) -> None:
        key = f"{account.namespace}/{account.name}"
        self._once(self.accounts, key, where, account, f"service account {key}")

    def _once(self, table: dict[str, tuple[str, _T]], key: str, where: str, value: _T, what: str) -> None:
        """Record ``value`` under ``key``; the same again is fine, a different one is a problem."""
        seen = table.get(key)
        if seen is None:
            table[key] = (where, value)
        elif seen[1] != value:
            self.problems.append(f"{where}: {what} is defined again differently (first at {seen[0]})")

    # -- our form

    def ours(self, where: str, doc: Mapping[str, Any]) -> None:
        problems = self.problems
        unknown = sorted(str(k) for k in doc if k not in _OUR_KEYS)
        if unknown:
            problems.append(f"{where}: unknown top-level fields {unknown} (an inventory has "
                            f"{', '.join(sorted(_OUR_KEYS))}, or is a kubectl v1 List)")
        if "cluster" in doc:
            raw = _fields(doc["cluster"], f"{where}: cluster", frozenset({"name"}), problems)
            if raw is not None:
                name = _string(raw.get("name"), f"{where}: cluster.name", problems)
                if self.cluster is not None and self.cluster[1] != name:
                    problems.append(f"{where}: cluster {name!r} differs from {self.cluster[1]!r} "
                                    f"(at {self.cluster[0]})")
                elif self.cluster is None:
                    self.cluster = (where, name)
        namespaces = doc.get("namespaces")
        if namespaces is not None and not isinstance(namespaces, Mapping):
            problems.append(f"{where}: namespaces: expected a mapping of name to labels")
        for name, labels in (namespaces or {}).items() if isinstance(namespaces, Mapping) else ():
            here = f"{where}: namespaces.{name}"
            self.namespace(where, _string(name, here, problems), _labels(labels, here, problems))
        for i, item in enumerate(_items(doc.get("pods"), f"{where}: pods", problems)):
            self.our_pod(f"{where}: pods[{i}]", item)
        for i, item in enumerate(_items(doc.get("nodes"), f"{where}: nodes", problems)):
            here = f"{where}: nodes[{i}]"
            raw = _fields(item, here, frozenset({"name", "ip", "labels"}), problems)
            if raw is not None:
                self.node(where, NodeInfo(_string(raw.get("name"), f"{here}.name", problems),
                                          _ip(raw.get("ip"), f"{here}.ip", problems),
                                          _sorted(_labels(raw.get("labels"), f"{here}.labels", problems))))
        for i, item in enumerate(_items(doc.get("external"), f"{where}: external", problems)):
            self.our_external(f"{where}: external[{i}]", item)
        accounts = doc.get("serviceAccounts")
        if accounts is not None and not isinstance(accounts, Mapping):
            problems.append(f"{where}: serviceAccounts: expected a mapping of namespace/name to labels")
        for ref, labels in (accounts or {}).items() if isinstance(accounts, Mapping) else ():
            here = f"{where}: serviceAccounts.{ref}"
            if not isinstance(ref, str) or ref.count("/") != 1 or not all(ref.split("/")):
                problems.append(f"{here}: expected a key 'namespace/name'")
                continue
            ns, name = ref.split("/")
            self.account(where, ServiceAccount(ns, name, _sorted(_labels(labels, here, problems))))

    def our_pod(self, where: str, item: Any) -> None:
        problems = self.problems
        allowed = frozenset({"namespace", "name", "labels", "ip", "serviceAccount", "node", "ports"})
        raw = _fields(item, where, allowed, problems)
        if raw is None:
            return
        ports = [_port(p, f"{where}.ports[{j}]", problems, "port")
                 for j, p in enumerate(_items(raw.get("ports"), f"{where}.ports", problems))]
        self.pod(_PodRecord(
            where,
            _string(raw.get("namespace"), f"{where}.namespace", problems),
            _string(raw.get("name"), f"{where}.name", problems),
            _labels(raw.get("labels"), f"{where}.labels", problems),
            _ip(raw.get("ip"), f"{where}.ip", problems),
            tuple(p for p in ports if p is not None),
            _string(raw.get("node"), f"{where}.node", problems, default=""),
            _string(raw.get("serviceAccount"), f"{where}.serviceAccount", problems, default="default"),
        ))

    def our_external(self, where: str, item: Any) -> None:
        problems = self.problems
        raw = _fields(item, where, frozenset({"name", "names", "ip", "ips"}), problems)
        if raw is None:
            return
        names = [raw["name"]] if "name" in raw else list(_items(raw.get("names"), f"{where}.names", problems))
        ips = [raw["ip"]] if "ip" in raw else list(_items(raw.get("ips"), f"{where}.ips", problems))
        for n in names:
            _string(n, f"{where}.name", problems)
        parsed = [_ip(ip, f"{where}.ip", problems) for ip in ips]
        if not ips:
            problems.append(f"{where}: an external entry needs ip or ips")
        self.external.append(ExternalHost(tuple(n for n in names if isinstance(n, str) and n),
                                          tuple(ip for ip in parsed if ip is not None)))

    # -- Kubernetes objects

    def kube_object(self, where: str, obj: Any) -> None:
        problems = self.problems
        if not isinstance(obj, Mapping):
            problems.append(f"{where}: expected a Kubernetes object, got {type(obj).__name__}")
            return
        kind = obj.get("kind")
        metadata = _sub(obj, "metadata")
        name = _string(metadata.get("name"), f"{where}: metadata.name", problems)
        if obj.get("apiVersion") != "v1" or kind not in _KINDS:
            problems.append(f"{where}: unsupported kind {kind!r} (apiVersion {obj.get('apiVersion')!r}) in an "
                            f"inventory; expected v1 {', '.join(_KINDS)} or a v1 List of them")
            return
        labels = _labels(metadata.get("labels"), f"{where}: metadata.labels", problems)
        if kind == "Namespace":
            self.namespace(where, name, labels)
            return
        namespace = _string(metadata.get("namespace"), f"{where}: metadata.namespace", problems, default="default")
        if kind == "ServiceAccount":
            self.account(where, ServiceAccount(namespace, name, _sorted(labels)))
            return
        spec, status = _sub(obj, "spec"), _sub(obj, "status")
        if kind == "Node":
            addresses = [a for a in _items(status.get("addresses"), f"{where}: status.addresses", problems)
                         if isinstance(a, Mapping) and a.get("type") == "InternalIP"]
            ip = _ip(addresses[0].get("address"), f"{where}: status.addresses", problems) if addresses else None
            self.node(where, NodeInfo(name, ip, _sorted(labels)))
            return
        if status.get("phase") in _FINISHED or spec.get("hostNetwork") is True:
            return
        ports: list[ContainerPort | None] = []
        for c, container in enumerate(_items(spec.get("containers"), f"{where}: spec.containers", problems)):
            here = f"{where}: spec.containers[{c}]"
            items = container.get("ports") if isinstance(container, Mapping) else None
            ports += [_port(p, f"{here}.ports[{j}]", problems, "containerPort")
                      for j, p in enumerate(_items(items, f"{here}.ports", problems))]
        self.pod(_PodRecord(
            where, namespace, name, labels,
            _ip(status.get("podIP"), f"{where}: status.podIP", problems),
            tuple(p for p in ports if p is not None),
            _string(spec.get("nodeName"), f"{where}: spec.nodeName", problems, default=""),
            _string(spec.get("serviceAccountName"), f"{where}: spec.serviceAccountName", problems,
                    default="default"),
        ))

    def document(self, where: str, doc: Any) -> None:
        if not isinstance(doc, Mapping):
            self.problems.append(f"{where}: expected a mapping (an inventory or Kubernetes objects), "
                                 f"got {type(doc).__name__}")
        elif doc.get("kind") == "List":
            for i, item in enumerate(_items(doc.get("items"), f"{where}: items", self.problems)):
                self.kube_object(f"{where}, item {i + 1}", item)
        elif "kind" in doc or "apiVersion" in doc:
            self.kube_object(where, doc)
        else:
            self.ours(where, doc)

    # -- result

    def build(self) -> Inventory:
        problems = self.problems
        namespaces = {name: labels for name, (_, labels) in self.namespaces.items()}
        pods = []
        for key, record in sorted(self.pods.items()):
            labels = namespaces.get(record.namespace)
            if labels is None:
                problems.append(f"{record.where}: pod {key}: namespace {record.namespace!r} is not in the "
                                f"inventory (list it under namespaces:, with its labels)")
                continue
            names = [p.name for p in record.ports if p.name]
            if len(names) != len(set(names)):
                problems.append(f"{record.where}: pod {key}: container port names must be unique")
            account = self.accounts.get(f"{record.namespace}/{record.service_account}")
            pods.append(Pod(record.namespace, record.name, record.labels, labels, ip=record.ip,
                            ports=record.ports, node=record.node, service_account=record.service_account,
                            service_account_labels=account[1].labels if account is not None else ()))
        if problems:
            raise InputError(problems)
        return Inventory(
            cluster=self.cluster[1] if self.cluster else "default",
            namespaces=tuple(Namespace(n, _sorted(labels)) for n, labels in sorted(namespaces.items())),
            pods=tuple(pods),
            nodes=tuple(sorted(node for _, node in self.nodes.values())),
            external=tuple(self.external),
            service_accounts=tuple(sorted(a for _, a in self.accounts.values())),
        )


def _sub(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _sorted(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def parse_inventory(documents: Iterable[tuple[str, Any]]) -> Inventory:
    """Merge ``(where, data)`` documents (see :func:`read_documents`) into one Inventory."""
    builder = _Builder()
    for where, doc in documents:
        builder.document(where, doc)
    return builder.build()


def _documents(paths: Sequence[str | Path]) -> Iterator[tuple[str, Any]]:
    for path in paths:
        yield from read_documents(Path(path), "inventory")


def load_inventory(paths: Sequence[str | Path]) -> Inventory:
    """Read and merge inventory files; raises :class:`InputError` listing every problem."""
    return parse_inventory(_documents(paths))

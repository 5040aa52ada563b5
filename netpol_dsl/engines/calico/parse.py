"""Reading manifests into the policy model: Tiers, (Global)NetworkPolicies, (Global)NetworkSets, staged
policies (read, never enforced) and Kubernetes NetworkPolicies translated the way Calico does (rules:
:mod:`.rules`).

What Calico's validation (calico:libcalico-go/lib/validator/v3/validator.go) or the CRD schema rejects,
and what the engine cannot decide from a connection (``services``), raises :class:`ManifestError`
naming the document and the field, so that no rule is silently misread.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from netpol_dsl.engines.calico.model import (
    BUILTIN_TIERS,
    CNP,
    GNP,
    KNP,
    NAMESPACE_KEY,
    ORCHESTRATOR_KEY,
    PROTOCOL_NUMBERS,
    DefaultAction,
    Direction,
    EntityRule,
    NetworkSet,
    Policy,
    PortMatch,
    Rule,
    Tier,
)
from netpol_dsl.engines.calico.rules import check_fields, no_global, parse_rule, parse_selector
from netpol_dsl.engines.calico.selectors import (
    ALL,
    AllNode,
    CompareNode,
    HasNode,
    InNode,
    Node,
    NotNode,
    Selector,
    conjunction,
)
from netpol_dsl.engines.manifest import (
    DEFAULT_NAMESPACE,
    as_end_port,
    as_list,
    as_mapping,
    as_network,
    as_port,
    as_string,
    check_peer,
    is_kustomization,
    metadata_namespace,
    object_name,
    parse_label_selector,
    policy_types,
    reading_document,
)
from netpol_dsl.engines.manifest import ManifestError as ManifestError  # re-exported (shared by the engines)

CALICO_API_VERSION = "projectcalico.org/v3"
K8S_API_VERSION = "networking.k8s.io/v1"
STAGED_KINDS = frozenset({"StagedGlobalNetworkPolicy", "StagedNetworkPolicy", "StagedKubernetesNetworkPolicy"})
CALICO_KINDS = frozenset({"Tier", GNP, CNP, "GlobalNetworkSet", "NetworkSet"}) | STAGED_KINDS

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_METADATA = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_COMMON_SPEC = frozenset({"order", "tier", "selector", "serviceAccountSelector", "types", "ingress", "egress",
                          "performanceHints"})
_SPEC_FIELDS = {
    GNP: _COMMON_SPEC | {"namespaceSelector", "doNotTrack", "preDNAT", "applyOnForward"},
    CNP: _COMMON_SPEC,
}


@attrs.frozen
class Parsed:
    """Every object of the manifests that matters for traffic, plus the staged policies (by ident)."""

    tiers: Mapping[str, Tier]
    policies: tuple[Policy, ...]
    network_sets: tuple[NetworkSet, ...]
    staged: tuple[str, ...]


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _labels(metadata: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    labels = as_mapping(metadata.get("labels"), f"{where}: metadata.labels")
    out = []
    for k, v in labels.items():
        out.append((as_string(k, f"{where}: metadata.labels key"), as_string(v, f"{where}: metadata.labels[{k}]")))
    return tuple(sorted(out))


# --------------------------------------------------------------------------------------------
# policies


def _types(spec: Mapping[str, Any], where: str) -> frozenset[Direction]:
    """``types``, defaulted as Calico does: Ingress if there are no egress rules, Egress if only egress
    rules, both if both."""
    given = [as_string(t, f"{where}.types") for t in as_list(spec.get("types"), f"{where}.types")]
    for t in given:
        if t not in ("Ingress", "Egress"):
            raise ValueError(f"{where}.types: unknown type {t!r} (Ingress or Egress)")
    if len(set(given)) != len(given):
        raise ValueError(f"{where}.types: a type is given more than once")
    if not given:
        has_ingress, has_egress = bool(spec.get("ingress")), bool(spec.get("egress"))
        given = ["Ingress"] if has_ingress or not has_egress else []
        given += ["Egress"] if has_egress else []
    return _directions(given)


def _directions(types: Sequence[str]) -> frozenset[Direction]:
    """The directions of policy types (``Ingress``, ``Egress``)."""
    directions: set[Direction] = set()
    if "Ingress" in types:
        directions.add("ingress")
    if "Egress" in types:
        directions.add("egress")
    return frozenset(directions)


def _calico_policy(document: Mapping[str, Any], metadata: Mapping[str, Any], kind: str, position: int,
                   tiers: Mapping[str, Tier]) -> Policy:
    name, namespace, ident = object_name(metadata, kind, namespaced=kind == CNP)
    check_fields(document, _METADATA, ident)
    spec = as_mapping(document.get("spec"), f"{ident}: spec")
    where = f"{ident}: spec"
    check_fields(spec, frozenset(_SPEC_FIELDS[kind]), where)
    tier = as_string(spec.get("tier") or "default", f"{where}.tier")
    if tier not in tiers:
        raise ValueError(f"{where}.tier: no Tier {tier!r} (define it with a projectcalico.org/v3 Tier; built in "
                         f"are {', '.join(sorted(BUILTIN_TIERS))})")
    for key in ("selector", "serviceAccountSelector", "namespaceSelector"):
        no_global(spec, key, where)
    flags = {key: spec.get(key) for key in ("doNotTrack", "preDNAT", "applyOnForward")}
    for key, flag in flags.items():
        if flag is not None and not isinstance(flag, bool):
            raise ValueError(f"{where}.{key}: expected a boolean, got {flag!r}")
    if flags["doNotTrack"] and flags["preDNAT"]:
        raise ValueError(f"{where}: preDNAT and doNotTrack cannot both be true")
    if (flags["doNotTrack"] or flags["preDNAT"]) and not flags["applyOnForward"]:
        raise ValueError(f"{where}: applyOnForward must be true if either preDNAT or doNotTrack is true")
    types = _types(spec, where)
    if flags["preDNAT"] and (spec.get("egress") or "egress" in types):
        raise ValueError(f"{where}: a preDNAT policy cannot have egress rules or the Egress type")
    sections = {}
    both: tuple[Direction, Direction] = ("ingress", "egress")
    for direction in both:
        sections[direction] = tuple(
            parse_rule(r, f"{where}.{direction}[{i}]", direction, namespace, f"{ident} {direction}[{i}]")
            for i, r in enumerate(as_list(spec.get(direction), f"{where}.{direction}")))
    host_only = "doNotTrack" if flags["doNotTrack"] else "preDNAT" if flags["preDNAT"] else ""
    return Policy(
        kind=kind, name=name, namespace=namespace, tier=tier,
        order=_number(spec.get("order"), f"{where}.order"),
        selector=parse_selector(spec, "selector", where) or ALL,
        namespace_selector=parse_selector(spec, "namespaceSelector", where),
        sa_selector=parse_selector(spec, "serviceAccountSelector", where),
        types=types, ingress=sections["ingress"], egress=sections["egress"],
        host_only=host_only, position=position,
    )


# --------------------------------------------------------------------------------------------
# Kubernetes NetworkPolicy, the way Calico translates it (calico:libcalico-go/lib/backend/k8s/conversion)

_K8S_ORCHESTRATOR: Node = CompareNode(ORCHESTRATOR_KEY, "==", "k8s")


def _k8s_selector(value: Any, where: str, pods: bool) -> Selector:
    """A LabelSelector as a Calico selector; pod selectors also require ``projectcalico.org/orchestrator
    == 'k8s'`` (so they never match network sets), an empty namespace selector is ``all()``."""
    pairs, requirements = parse_label_selector(value, where)
    nodes: list[Node] = [_K8S_ORCHESTRATOR] if pods else []
    nodes += [CompareNode(k, "==", v) for k, v in pairs]
    for r in requirements:
        if r.operator in ("In", "NotIn"):
            nodes.append(InNode(r.key, r.values, r.operator == "NotIn"))
        elif r.operator == "Exists":
            nodes.append(HasNode(r.key))
        else:
            nodes.append(NotNode(HasNode(r.key)))
    text = "{" + ", ".join([f"{k}={v}" for k, v in pairs] + [r.describe() for r in requirements]) + "}"
    if not pods and len(nodes) == 0:
        return Selector(AllNode(), "{}")
    return conjunction(nodes, text)


def _k8s_ports(raw: Mapping[str, Any], where: str) -> list[tuple[int | None, tuple[PortMatch, ...] | None]]:
    """(protocol, destination ports) per ``ports[]`` item; [(None, None)] when there are none."""
    out: list[tuple[int | None, tuple[PortMatch, ...] | None]] = []
    for i, item in enumerate(as_list(raw.get("ports"), f"{where}.ports")):
        here = f"{where}.ports[{i}]"
        port = as_mapping(item, here)
        check_fields(port, frozenset({"protocol", "port", "endPort"}), here)
        name = as_string(port.get("protocol") or "TCP", f"{here}.protocol")
        if name not in ("TCP", "UDP", "SCTP"):
            raise ValueError(f"{here}.protocol: expected TCP, UDP or SCTP, got {name!r}")
        value = None if port.get("port") is None else as_port(port["port"], here)
        end = None if port.get("endPort") is None else as_end_port(port["endPort"], value, here)
        if value is None:
            if end is not None:
                raise ValueError(f"{here}: endPort requires port")
            out.append((PROTOCOL_NUMBERS[name], None))
        elif isinstance(value, str):
            out.append((PROTOCOL_NUMBERS[name], (PortMatch(name=value),)))
        else:
            out.append((PROTOCOL_NUMBERS[name], (PortMatch(value, end if end is not None else value),)))
    return out or [(None, None)]


def _k8s_rules(value: Any, where: str, direction: Direction, namespace: str, label: str) -> tuple[Rule, ...]:
    """One Kubernetes rule as the Calico Allow rules it becomes: one per peer and port item."""
    raw = as_mapping(value, where)
    field = "from" if direction == "ingress" else "to"
    check_fields(raw, frozenset({field, "ports"}), where)
    peers: list[EntityRule] = []
    for i, item in enumerate(as_list(raw.get(field), f"{where}.{field}")):
        here = f"{where}.{field}[{i}]"
        peer = as_mapping(item, here)
        check_fields(peer, frozenset({"podSelector", "namespaceSelector", "ipBlock"}), here)
        pods, nss, block = peer.get("podSelector"), peer.get("namespaceSelector"), peer.get("ipBlock")
        check_peer(pods, nss, block, here)
        if block is not None:
            raw_block = as_mapping(block, f"{here}.ipBlock")
            check_fields(raw_block, frozenset({"cidr", "except"}), f"{here}.ipBlock")
            cidr = as_network(raw_block.get("cidr"), f"{here}.ipBlock.cidr")
            excepts = tuple(as_network(e, f"{here}.ipBlock.except")
                            for e in as_list(raw_block.get("except"), f"{here}.ipBlock.except"))
            peers.append(EntityRule(namespace=namespace, nets=(cidr,), not_nets=excepts))
            continue
        peers.append(EntityRule(
            namespace=namespace,
            selector=_k8s_selector(pods, f"{here}.podSelector", True),
            namespace_selector=None if nss is None else _k8s_selector(nss, f"{here}.namespaceSelector", False),
        ))
    rules = []
    for protocol, ports in _k8s_ports(raw, where):
        for remote in peers or [EntityRule(namespace=namespace)]:
            if direction == "ingress":
                rules.append(Rule(label, "Allow", protocol, source=remote,
                                  destination=EntityRule(namespace=namespace, ports=ports)))
            else:
                rules.append(Rule(label, "Allow", protocol, destination=attrs.evolve(remote, ports=ports)))
    return tuple(rules)


def _k8s_policy(document: Mapping[str, Any], metadata: Mapping[str, Any], position: int) -> Policy:
    name = as_string(metadata.get("name"), "metadata.name")
    namespace = metadata_namespace(metadata, name)
    ident = f"{KNP} {namespace}/{name}"
    check_fields(document, _METADATA, ident)
    spec = as_mapping(document.get("spec"), f"{ident}: spec")
    where = f"{ident}: spec"
    check_fields(spec, frozenset({"podSelector", "policyTypes", "ingress", "egress"}), where)
    sections = {}
    both: tuple[Direction, Direction] = ("ingress", "egress")
    for direction in both:
        sections[direction] = tuple(
            rule for i, r in enumerate(as_list(spec.get(direction), f"{where}.{direction}"))
            for rule in _k8s_rules(r, f"{where}.{direction}[{i}]", direction, namespace, f"{ident} {direction}[{i}]"))
    types = policy_types(spec.get("policyTypes"), ident, bool(spec.get("egress")), f"{where}.policyTypes")
    return Policy(
        kind=KNP, name=name, namespace=namespace, tier="default", order=1000.0,
        selector=_k8s_selector(spec.get("podSelector"), f"{where}.podSelector", True),
        types=_directions(types), ingress=sections["ingress"], egress=sections["egress"], position=position,
    )


# --------------------------------------------------------------------------------------------
# tiers and network sets


def _tier(document: Mapping[str, Any], metadata: Mapping[str, Any]) -> Tier:
    name = as_string(metadata.get("name"), "metadata.name")
    where = f"Tier {name}"
    check_fields(document, _METADATA, where)
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise ValueError(f"{where}: metadata.name must be a DNS label (lower case alphanumerics and '-', no dots)")
    spec = as_mapping(document.get("spec"), f"{where}: spec")
    check_fields(spec, frozenset({"order", "defaultAction"}), f"{where}: spec")
    order = _number(spec.get("order"), f"{where}: spec.order")
    builtin = BUILTIN_TIERS.get(name)
    if builtin is not None and order != builtin.order:
        raise ValueError(f"{where}: spec.order of the built-in tier {name} must be {builtin.order:.0f}")
    action = spec.get("defaultAction")
    if action is None:
        default: DefaultAction = builtin.default_action if builtin is not None else "Deny"
    elif action == "Deny":
        default = "Deny"
    elif action == "Pass":
        default = "Pass"
    else:
        raise ValueError(f"{where}: spec.defaultAction: expected Deny or Pass, got {action!r}")
    return Tier(name, order, default)


def _network_set(document: Mapping[str, Any], metadata: Mapping[str, Any], kind: str) -> NetworkSet:
    name, namespace, ident = object_name(metadata, kind, namespaced=kind == "NetworkSet")
    check_fields(document, _METADATA, ident)
    labels = _labels(metadata, ident)
    if any(k == NAMESPACE_KEY for k, _ in labels):
        raise ValueError(f"{ident}: metadata.labels: {NAMESPACE_KEY} is not a valid label name")
    spec = as_mapping(document.get("spec"), f"{ident}: spec")
    check_fields(spec, frozenset({"nets"}), f"{ident}: spec")
    nets = tuple(as_network(n, f"{ident}: spec.nets[{i}]")
                 for i, n in enumerate(as_list(spec.get("nets"), f"{ident}: spec.nets")))
    return NetworkSet(name, namespace, labels, nets)


# --------------------------------------------------------------------------------------------
# documents


def _classify(document: Any) -> str:
    if not isinstance(document, Mapping):
        raise ValueError(f"expected a mapping, got {type(document).__name__}")
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if api_version == CALICO_API_VERSION and kind in CALICO_KINDS:
        return str(kind)
    if api_version == K8S_API_VERSION and kind == "NetworkPolicy":
        return KNP
    if is_kustomization(document):
        return "skip"
    raise ValueError(
        f"unsupported kind {kind!r} (apiVersion {api_version!r}); the Calico engine understands {CALICO_API_VERSION} "
        f"{', '.join(sorted(CALICO_KINDS))} and {K8S_API_VERSION} NetworkPolicy")


def parse_documents(documents: Sequence[Mapping[str, Any]]) -> Parsed:
    """Read every document; raises :class:`ManifestError` for the first one that cannot be read.

    Tiers and network sets are read first, so a policy may come before the Tier it names.
    """
    tiers: dict[str, Tier] = dict(BUILTIN_TIERS)
    declared: set[str] = set()
    sets: list[NetworkSet] = []
    staged: list[str] = []
    later: list[tuple[int, str, Mapping[str, Any], Mapping[str, Any]]] = []
    for position, document in enumerate(documents):
        with reading_document(position):
            kind = _classify(document)
            metadata = as_mapping(document.get("metadata"), "metadata")
            if kind == "Tier":
                tier = _tier(document, metadata)
                if tier.name in declared:
                    raise ValueError(f"Tier {tier.name} is defined twice")
                declared.add(tier.name)
                tiers[tier.name] = tier
            elif kind in ("GlobalNetworkSet", "NetworkSet"):
                sets.append(_network_set(document, metadata, kind))
            elif kind in STAGED_KINDS:
                name = as_string(metadata.get("name"), f"{kind}: metadata.name")
                namespace = metadata.get("namespace")
                scoped = kind != "StagedGlobalNetworkPolicy"
                staged.append(f"{kind} {f'{namespace or DEFAULT_NAMESPACE}/' if scoped else ''}{name}")
            elif kind != "skip":
                later.append((position, kind, document, metadata))
    policies: list[Policy] = []
    for position, kind, document, metadata in later:
        with reading_document(position):
            if kind == KNP:
                policies.append(_k8s_policy(document, metadata, position))
            else:
                policies.append(_calico_policy(document, metadata, kind, position, tiers))
    return Parsed(tiers, tuple(policies), tuple(sets), tuple(staged))

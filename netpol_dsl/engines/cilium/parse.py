"""Reading manifests into the policy model: CNP, CCNP, CiliumCIDRGroup and Kubernetes NetworkPolicy.

Fields the evaluator cannot decide from a :class:`~netpol_dsl.endpoints.Connection` (``toServices``,
``toGroups``, ``toNodes``/``fromNodes``, ``toRequires``/``fromRequires``, ``listener``,
``serverNames``) and anything the CRD schema or Cilium's validation rejects raise
:class:`ManifestError`, so that no rule is silently misread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from netpol_dsl.engines.cilium.l7 import DnsPattern, HeaderCheck, HttpRule, compile_regex, dns_pattern, parse_header
from netpol_dsl.engines.cilium.model import (
    ENTITIES,
    EXTENDED_PROTOCOLS,
    ICMP_TYPES,
    PORT_PROTOCOLS,
    CidrPeer,
    CidrSet,
    Direction,
    IcmpField,
    Policy,
    PortProtocol,
    PortRule,
    Rule,
)
from netpol_dsl.engines.cilium.selectors import (
    NAMESPACE_LABELS_PREFIX,
    SOURCE_K8S,
    EndpointPeer,
    Selector,
    endpoint_peer,
    parse_selector,
)
from netpol_dsl.engines.manifest import ManifestError as ManifestError  # re-exported (shared by both engines)
from netpol_dsl.engines.manifest import (
    Network,
    as_end_port,
    as_int,
    as_list,
    as_mapping,
    as_network,
    as_port,
    as_string,
    check_peer,
    is_kustomization,
    metadata_namespace,
    object_name,
    policy_types,
    reading_document,
)

CILIUM_API_VERSION = "cilium.io/v2"
CNP = "CiliumNetworkPolicy"
CCNP = "CiliumClusterwideNetworkPolicy"
CIDR_GROUP = "CiliumCIDRGroup"
CIDR_GROUP_API_VERSIONS = frozenset({"cilium.io/v2", "cilium.io/v2alpha1"})
K8S_API_VERSION = "networking.k8s.io/v1"
K8S_KIND = "NetworkPolicy"
MAX_ICMP_FIELDS = 40  # per icmps entry (CRD maxItems; cilium:pkg/policy/api/rule_validation.go)

_SPEC_FIELDS = frozenset({
    "description", "endpointSelector", "nodeSelector", "ingress", "ingressDeny", "egress", "egressDeny",
    "enableDefaultDeny", "labels", "log",
})
_UNSUPPORTED = frozenset({
    "toServices", "toGroups", "fromGroups", "toNodes", "fromNodes", "toRequires", "fromRequires",
    "listener", "serverNames",
})
_RULE_FIELDS: dict[tuple[Direction, bool], frozenset[str]] = {
    ("ingress", False): frozenset({"fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet", "toPorts", "icmps",
                                   "authentication"}),
    ("ingress", True): frozenset({"fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet", "toPorts", "icmps"}),
    ("egress", False): frozenset({"toEndpoints", "toEntities", "toCIDR", "toCIDRSet", "toFQDNs", "toPorts", "icmps",
                                  "authentication"}),
    ("egress", True): frozenset({"toEndpoints", "toEntities", "toCIDR", "toCIDRSet", "toPorts", "icmps"}),
}


@attrs.frozen
class CidrGroup:
    name: str
    labels: dict[str, str]
    cidrs: tuple[Network, ...]


def _check_fields(raw: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unsupported = sorted(set(raw) & _UNSUPPORTED)
    if unsupported:
        raise ValueError(f"{where}: {', '.join(unsupported)} cannot be evaluated statically by the Cilium engine")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown or misplaced fields {unknown}")


def _opt_list(raw: Mapping[str, Any], key: str, where: str) -> Sequence[Any] | None:
    """None when the field is absent (or null), else the list (possibly empty)."""
    value = raw.get(key)
    return None if value is None else as_list(value, f"{where}.{key}")


# --------------------------------------------------------------------------------------------
# L4 and L7


def _parse_port(value: Any, where: str, default_protocol: str) -> PortProtocol:
    raw = as_mapping(value, where)
    _check_fields(raw, frozenset({"port", "endPort", "protocol"}), where)
    protocol = as_string(raw.get("protocol") or default_protocol, f"{where}.protocol")
    allowed = PORT_PROTOCOLS if default_protocol == "TCP" else PORT_PROTOCOLS | EXTENDED_PROTOCOLS | {"ANY"}
    if protocol not in allowed:
        raise ValueError(f"{where}: unsupported protocol {protocol!r}")
    port_value = raw.get("port")
    if isinstance(port_value, str) and port_value.isdigit():
        port_value = int(port_value)
    port = None if port_value is None else as_port(port_value, where, lowest=0) or None  # port 0 = every port
    end_value = raw.get("endPort")
    end_port: int | None = None
    if end_value is not None and end_value != 0:  # endPort 0 = no range
        end_port = as_end_port(end_value, port, where)
    return PortProtocol(protocol, port, end_port)


def _parse_http(value: Any, where: str) -> HttpRule:
    raw = as_mapping(value, where)
    _check_fields(raw, frozenset({"method", "path", "host", "headers", "headerMatches"}), where)
    fields = {}
    for key in ("method", "path", "host"):
        text = raw.get(key)
        if text:
            fields[key] = compile_regex(as_string(text, f"{where}.{key}"), f"{where}.{key}")
    headers = [parse_header(as_string(h, f"{where}.headers")) for h in as_list(raw.get("headers"), f"{where}.headers")]
    for i, item in enumerate(as_list(raw.get("headerMatches"), f"{where}.headerMatches")):
        here = f"{where}.headerMatches[{i}]"
        match = as_mapping(item, here)
        _check_fields(match, frozenset({"name", "value", "secret", "mismatch"}), here)
        name = as_string(match.get("name"), f"{here}.name")
        if match.get("mismatch") is not None:
            continue  # a mismatch only logs or rewrites the header: the rule still matches
        if match.get("value") is not None:
            headers.append(HeaderCheck(name, as_string(match["value"], f"{here}.value")))
        elif match.get("secret") is not None:
            headers.append(HeaderCheck(name, never=True))
        else:
            headers.append(HeaderCheck(name))
    return HttpRule(where, headers=tuple(headers), **fields)


def _parse_dns(value: Any, where: str) -> DnsPattern:
    raw = as_mapping(value, where)
    _check_fields(raw, frozenset({"matchName", "matchPattern"}), where)
    if ("matchName" in raw) == ("matchPattern" in raw):
        raise ValueError(f"{where}: exactly one of matchName and matchPattern is required")
    exact = "matchName" in raw
    return dns_pattern(as_string(raw["matchName" if exact else "matchPattern"], where), exact, where)


def _parse_port_rule(value: Any, where: str, direction: Direction, deny: bool) -> PortRule:
    raw = as_mapping(value, where)
    allowed = {"ports"} if deny else {"ports", "rules", "originatingTLS", "terminatingTLS"}
    _check_fields(raw, frozenset(allowed), where)
    ports = tuple(_parse_port(p, f"{where}.ports[{i}]", "ANY") for i, p in enumerate(as_list(raw.get("ports"), where)))
    rules = as_mapping(raw.get("rules"), f"{where}.rules")
    _check_fields(rules, frozenset({"http", "dns"}), f"{where}.rules")
    http_raw, dns_raw = _opt_list(rules, "http", f"{where}.rules"), _opt_list(rules, "dns", f"{where}.rules")
    if http_raw is not None and dns_raw is not None:
        raise ValueError(f"{where}.rules: one port cannot have both HTTP and DNS rules")
    http = None if http_raw is None else tuple(
        _parse_http(h, f"{where}.rules.http[{i}]") for i, h in enumerate(http_raw))
    dns: tuple[DnsPattern, ...] | None = None
    if dns_raw is not None:
        if direction == "ingress":
            raise ValueError(f"{where}.rules.dns: DNS rules apply to egress only (the DNS proxy)")
        if any(p.end_port is not None for p in ports):
            raise ValueError(f"{where}: port ranges are not allowed with DNS rules")
        dns = tuple(_parse_dns(d, f"{where}.rules.dns[{i}]") for i, d in enumerate(dns_raw))
    return PortRule(where, ports, http, dns)


def _parse_icmps(value: Sequence[Any], where: str) -> tuple[IcmpField, ...]:
    out = []
    for i, item in enumerate(value):
        here = f"{where}[{i}]"
        raw = as_mapping(item, here)
        _check_fields(raw, frozenset({"fields"}), here)
        fields = as_list(raw.get("fields"), f"{here}.fields")
        if len(fields) > MAX_ICMP_FIELDS:
            raise ValueError(f"{here}.fields: too many types, the max is {MAX_ICMP_FIELDS}")
        for j, field in enumerate(fields):
            at = f"{here}.fields[{j}]"
            fraw = as_mapping(field, at)
            _check_fields(fraw, frozenset({"family", "type"}), at)
            family = as_string(fraw.get("family") or "IPv4", f"{at}.family")
            if family not in ICMP_TYPES:
                raise ValueError(f"{at}: unknown family {family!r}")
            kind = fraw.get("type")
            if isinstance(kind, str) and kind.isdigit():
                kind = int(kind)
            if isinstance(kind, str):
                if kind not in ICMP_TYPES[family]:
                    raise ValueError(f"{at}: unknown {family} ICMP type {kind!r}")
                kind = ICMP_TYPES[family][kind]
            number = as_int(kind, f"{at}.type")
            if not 0 <= number <= 255:
                raise ValueError(f"{at}.type: {number} is out of range")
            out.append(IcmpField(family, number))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# L3 and rules


def _parse_cidr_set(value: Any, where: str, groups: Mapping[str, CidrGroup]) -> CidrPeer:
    raw = as_mapping(value, where)
    _check_fields(raw, frozenset({"cidr", "cidrGroupRef", "cidrGroupSelector", "except"}), where)
    given = [k for k in ("cidr", "cidrGroupRef", "cidrGroupSelector") if raw.get(k) is not None]
    if len(given) != 1:
        raise ValueError(f"{where}: exactly one of cidr, cidrGroupRef and cidrGroupSelector is required")
    excepts = tuple(as_network(e, f"{where}.except") for e in as_list(raw.get("except"), f"{where}.except"))
    if given[0] == "cidr":
        block = CidrSet(as_network(raw["cidr"], f"{where}.cidr"), excepts)
        return CidrPeer((block,), block.describe())
    if excepts:
        raise ValueError(f"{where}: except cannot be combined with {given[0]}")
    if given[0] == "cidrGroupRef":
        name = as_string(raw["cidrGroupRef"], f"{where}.cidrGroupRef")
        group = groups.get(name)
        if group is None:
            return CidrPeer((), f"cidrGroupRef {name} (no such CiliumCIDRGroup: matches nothing)")
        return CidrPeer(tuple(CidrSet(c) for c in group.cidrs), f"cidrGroupRef {name}")
    selector = parse_selector(raw["cidrGroupSelector"], f"{where}.cidrGroupSelector", sources=False)
    chosen = [g for g in groups.values()
              if selector.matches({k: (SOURCE_K8S, v) for k, v in g.labels.items()})]
    names = ", ".join(sorted(g.name for g in chosen)) or "none"
    return CidrPeer(tuple(CidrSet(c) for g in chosen for c in g.cidrs),
                    f"cidrGroupSelector {selector.describe()} (groups: {names})")


def _parse_rule(value: Any, where: str, direction: Direction, deny: bool, namespace: str | None,
                groups: Mapping[str, CidrGroup]) -> Rule:
    raw = as_mapping(value, where)
    _check_fields(raw, _RULE_FIELDS[(direction, deny)], where)
    side = "from" if direction == "ingress" else "to"
    endpoints_raw = _opt_list(raw, f"{side}Endpoints", where)
    endpoints = None if endpoints_raw is None else tuple(
        endpoint_peer(parse_selector(s, f"{where}.{side}Endpoints[{i}]"), namespace)
        for i, s in enumerate(endpoints_raw))
    entities_raw = _opt_list(raw, f"{side}Entities", where)
    entities = None if entities_raw is None else tuple(
        as_string(e, f"{where}.{side}Entities") for e in entities_raw)
    for entity in entities or ():
        if entity not in ENTITIES:
            raise ValueError(f"{where}.{side}Entities: unknown entity {entity!r}")
    cidr_raw = _opt_list(raw, f"{side}CIDR", where)
    cidr_set_raw = _opt_list(raw, f"{side}CIDRSet", where)
    cidrs: tuple[CidrPeer, ...] | None = None
    if cidr_raw is not None or cidr_set_raw is not None:
        plain = [as_network(c, f"{where}.{side}CIDR[{i}]") for i, c in enumerate(cidr_raw or ())]
        cidrs = tuple(CidrPeer((CidrSet(n),), str(n)) for n in plain) + tuple(
            _parse_cidr_set(c, f"{where}.{side}CIDRSet[{i}]", groups) for i, c in enumerate(cidr_set_raw or ()))
    fqdn_raw = _opt_list(raw, "toFQDNs", where)
    fqdns = None if fqdn_raw is None else tuple(
        _parse_dns(f, f"{where}.toFQDNs[{i}]") for i, f in enumerate(fqdn_raw))
    to_ports = tuple(_parse_port_rule(p, f"{where}.toPorts[{i}]", direction, deny)
                     for i, p in enumerate(as_list(raw.get("toPorts"), f"{where}.toPorts")))
    icmps = _parse_icmps(as_list(raw.get("icmps"), f"{where}.icmps"), f"{where}.icmps")
    if icmps and to_ports:  # cilium:pkg/policy/api/rule_validation.go (errUnsupportedICMPWithToPorts)
        raise ValueError(f"{where}: the ICMPs block may only be present without toPorts (define a separate rule)")
    return Rule(where, endpoints, entities, cidrs, fqdns, False, to_ports, icmps)


def parse_cilium_spec(raw_value: Any, ident: str, kind: str, name: str, namespace: str | None,
                      spec_index: int | None, groups: Mapping[str, CidrGroup]) -> Policy:
    raw = as_mapping(raw_value, ident)
    _check_fields(raw, _SPEC_FIELDS, ident)
    endpoint_selector, node_selector = raw.get("endpointSelector"), raw.get("nodeSelector")
    if (endpoint_selector is None) == (node_selector is None):
        raise ValueError(f"{ident}: exactly one of endpointSelector and nodeSelector is required")
    subject: Selector | None = None
    if endpoint_selector is not None:
        subject = parse_selector(endpoint_selector, f"{ident}.endpointSelector")
    else:
        parse_selector(node_selector, f"{ident}.nodeSelector")  # validated; host policies select no pod
    sections = {key: _opt_list(raw, key, ident) for key in ("ingress", "ingressDeny", "egress", "egressDeny")}
    if all(v is None for v in sections.values()):
        raise ValueError(f"{ident}: at least one of ingress, ingressDeny, egress and egressDeny is required")
    rules: dict[str, tuple[Rule, ...]] = {}
    for key, items in sections.items():
        side: Direction = "ingress" if key.startswith("ingress") else "egress"
        rules[key] = tuple(
            _parse_rule(r, f"{ident} {key}[{i}]", side, key.endswith("Deny"), namespace, groups)
            for i, r in enumerate(items or ()))
    toggles = as_mapping(raw.get("enableDefaultDeny"), f"{ident}.enableDefaultDeny")
    _check_fields(toggles, frozenset({"ingress", "egress"}), f"{ident}.enableDefaultDeny")
    default_deny: set[Direction] = set()
    both: tuple[Direction, Direction] = ("ingress", "egress")
    for direction in both:
        toggle = toggles.get(direction)
        if toggle is not None and not isinstance(toggle, bool):
            raise ValueError(f"{ident}.enableDefaultDeny.{direction}: expected a boolean, got {toggle!r}")
        # "If not specified, the default is true for each traffic direction that has rules" (CRD)
        has_rules = bool(rules[direction] or rules[direction + "Deny"])
        if has_rules if toggle is None else toggle:
            default_deny.add(direction)
    return Policy(kind, name, namespace, subject, rules["ingress"], rules["egress"], rules["ingressDeny"],
                  rules["egressDeny"], frozenset(default_deny), spec_index)


# --------------------------------------------------------------------------------------------
# Kubernetes NetworkPolicy, the way Cilium translates it


def _k8s_selector(value: Any, where: str) -> Selector:
    return parse_selector(value, where, sources=False, default_source=SOURCE_K8S)


def _k8s_rule(value: Any, where: str, peer_field: str, namespace: str) -> Rule:
    raw = as_mapping(value, where)
    _check_fields(raw, frozenset({peer_field, "ports"}), where)
    endpoints: list[EndpointPeer] = []
    cidrs: list[CidrPeer] = []
    peers = as_list(raw.get(peer_field), f"{where}.{peer_field}")
    for i, item in enumerate(peers):
        here = f"{where}.{peer_field}[{i}]"
        peer = as_mapping(item, here)
        _check_fields(peer, frozenset({"podSelector", "namespaceSelector", "ipBlock"}), here)
        pods, nss, block = peer.get("podSelector"), peer.get("namespaceSelector"), peer.get("ipBlock")
        check_peer(pods, nss, block, here)
        if block is not None:
            cidrs.append(_parse_cidr_set(block, f"{here}.ipBlock", {}))
            continue
        pod_sel = _k8s_selector(pods, f"{here}.podSelector")
        if nss is None:
            endpoints.append(EndpointPeer(pod_sel, namespace))
        else:
            ns_sel = _k8s_selector(nss, f"{here}.namespaceSelector").prefixed(NAMESPACE_LABELS_PREFIX)
            endpoints.append(EndpointPeer(pod_sel & ns_sel, None, True))
    ports = tuple(_parse_port(p, f"{where}.ports[{i}]", "TCP")
                  for i, p in enumerate(as_list(raw.get("ports"), f"{where}.ports")))
    return Rule(
        where,
        endpoints=tuple(endpoints) if endpoints else None,
        cidrs=tuple(cidrs) if cidrs else None,
        any_peer=not peers,
        to_ports=(PortRule(f"{where}.ports", ports),) if ports else (),
    )


def parse_k8s_policy(document: Mapping[str, Any], metadata: Mapping[str, Any]) -> Policy:
    name = as_string(metadata.get("name"), "metadata.name")
    namespace = metadata_namespace(metadata, name)
    ident = f"{K8S_KIND} {namespace}/{name}"
    spec = as_mapping(document.get("spec"), f"{ident}: spec")
    _check_fields(spec, frozenset({"podSelector", "policyTypes", "ingress", "egress"}), f"{ident}: spec")
    subject = _k8s_selector(spec.get("podSelector"), f"{ident}: spec.podSelector")
    ingress = tuple(_k8s_rule(r, f"{ident} ingress[{i}]", "from", namespace)
                    for i, r in enumerate(as_list(spec.get("ingress"), f"{ident}: spec.ingress")))
    egress = tuple(_k8s_rule(r, f"{ident} egress[{i}]", "to", namespace)
                   for i, r in enumerate(as_list(spec.get("egress"), f"{ident}: spec.egress")))
    types = policy_types(spec.get("policyTypes"), ident, bool(egress), f"{ident}: policyTypes")
    pairs: tuple[tuple[Direction, str], ...] = (("ingress", "Ingress"), ("egress", "Egress"))
    directions = frozenset(d for d, t in pairs if t in types)
    return Policy(
        K8S_KIND, name, namespace, subject,
        ingress=ingress if "ingress" in directions else (),
        egress=egress if "egress" in directions else (),
        default_deny=directions,
    )


# --------------------------------------------------------------------------------------------
# documents


def _classify(document: Any) -> str:
    if not isinstance(document, Mapping):
        raise ValueError(f"expected a mapping, got {type(document).__name__}")
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if api_version == CILIUM_API_VERSION and kind in (CNP, CCNP):
        return "cilium"
    if api_version in CIDR_GROUP_API_VERSIONS and kind == CIDR_GROUP:
        return "group"
    if api_version == K8S_API_VERSION and kind == K8S_KIND:
        return "k8s"
    if is_kustomization(document):
        return "skip"
    raise ValueError(
        f"unsupported kind {kind!r} (apiVersion {api_version!r}); the Cilium engine understands "
        f"{CILIUM_API_VERSION} {CNP}/{CCNP}/{CIDR_GROUP} and {K8S_API_VERSION} {K8S_KIND}")


def _parse_group(document: Mapping[str, Any], metadata: Mapping[str, Any]) -> CidrGroup:
    name = as_string(metadata.get("name"), "metadata.name")
    labels = {
        as_string(k, f"{name}: metadata.labels"): as_string(v, f"{name}: metadata.labels[{k}]")
        for k, v in as_mapping(metadata.get("labels"), f"{name}: metadata.labels").items()
    }
    spec = as_mapping(document.get("spec"), f"{CIDR_GROUP} {name}: spec")
    _check_fields(spec, frozenset({"externalCIDRs"}), f"{CIDR_GROUP} {name}: spec")
    cidrs = tuple(as_network(c, f"{CIDR_GROUP} {name}: spec.externalCIDRs")
                  for c in as_list(spec.get("externalCIDRs"), f"{CIDR_GROUP} {name}: spec.externalCIDRs"))
    return CidrGroup(name, labels, cidrs)


def _parse_cilium(document: Mapping[str, Any], metadata: Mapping[str, Any],
                  groups: Mapping[str, CidrGroup]) -> list[Policy]:
    kind = as_string(document.get("kind"), "kind")
    name, namespace, ident = object_name(metadata, kind, namespaced=kind == CNP)
    _check_fields(document, frozenset({"apiVersion", "kind", "metadata", "spec", "specs", "status"}), ident)
    spec, specs = document.get("spec"), _opt_list(document, "specs", ident)
    if spec is None and not specs:
        raise ValueError(f"{ident}: spec or specs is required")
    out = []
    if spec is not None:
        out.append(parse_cilium_spec(spec, f"{ident}", kind, name, namespace, None, groups))
    for i, item in enumerate(specs or ()):
        out.append(parse_cilium_spec(item, f"{ident} specs[{i}]", kind, name, namespace, i, groups))
    return out


def parse_documents(documents: Sequence[Mapping[str, Any]]) -> tuple[Policy, ...]:
    """Every policy (one per ``spec``/``specs[]`` item) of ``documents``; CIDR groups are resolved."""
    classified: list[tuple[int, str, Mapping[str, Any], Mapping[str, Any]]] = []
    groups: dict[str, CidrGroup] = {}
    for position, document in enumerate(documents):
        with reading_document(position):
            category = _classify(document)
            metadata = as_mapping(document.get("metadata"), "metadata")
            if category == "group":
                group = _parse_group(document, metadata)
                groups[group.name] = group
            elif category != "skip":
                classified.append((position, category, document, metadata))
    policies: list[Policy] = []
    for position, category, document, metadata in classified:
        with reading_document(position):
            if category == "k8s":
                policies.append(parse_k8s_policy(document, metadata))
            else:
                policies.extend(_parse_cilium(document, metadata, groups))
    return tuple(policies)

"""Reading one rule of a Calico policy, and the field helpers the document reader shares.

What Calico's validation (calico:libcalico-go/lib/validator/v3/validator.go) rejects in a rule, and
``services`` (not decidable offline), raises :class:`ValueError` naming the field; the document
reader (:mod:`.parse`) turns it into a :class:`~netpol_dsl.engines.manifest.ManifestError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from netpol_dsl.engines.calico.model import (
    PORT_PROTOCOLS,
    PROTOCOL_NUMBERS,
    Action,
    Direction,
    EntityRule,
    IcmpMatch,
    PortMatch,
    Rule,
)
from netpol_dsl.engines.calico.selectors import Selector, SelectorError, only_global, parse
from netpol_dsl.engines.manifest import Network, as_int, as_list, as_mapping, as_network, as_string

ACTIONS: frozenset[str] = frozenset({"Allow", "Deny", "Log", "Pass"})

_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_RANGE = re.compile(r"^(\d+):(\d+)$")
_RULE_FIELDS = frozenset({"action", "protocol", "notProtocol", "icmp", "notICMP", "ipVersion", "source",
                          "destination", "http", "metadata"})
_ENTITY_FIELDS = frozenset({"nets", "notNets", "selector", "notSelector", "namespaceSelector", "serviceAccounts",
                            "services", "ports", "notPorts"})


def check_fields(raw: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(k) for k in set(raw) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown or misplaced fields {unknown}")


def parse_selector(raw: Mapping[str, Any], key: str, where: str) -> Selector | None:
    """The selector in ``raw[key]``; None when absent or the empty string (Calico: not given)."""
    value = raw.get(key)
    if value is None:
        return None
    text = as_string(value, f"{where}.{key}")
    if text == "":
        return None
    try:
        return parse(text)
    except SelectorError as exc:
        raise ValueError(f"{where}.{key}: invalid selector {text!r}: {exc}") from None


def no_global(raw: Mapping[str, Any], key: str, where: str) -> None:
    if "global()" in str(raw.get(key) or ""):
        raise ValueError(f"{where}.{key}: global() can only be used in an EntityRule namespaceSelector")


# --------------------------------------------------------------------------------------------
# rules


def _protocol(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in PROTOCOL_NUMBERS:
            raise ValueError(f"{where}: unknown protocol {value!r} (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255)")
        return PROTOCOL_NUMBERS[value]
    number = as_int(value, where)
    if not 1 <= number <= 255:
        raise ValueError(f"{where}: protocol {number} is out of range 1-255")
    return number


def _port(value: Any, where: str) -> PortMatch:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, str):
        found = _RANGE.match(value)
        if found:
            first, last = int(found.group(1)), int(found.group(2))
            if not first <= last <= 65535:
                raise ValueError(f"{where}: invalid port range {value!r}")
            return PortMatch(first, last)
        if len(value) > 15 or not _PORT_NAME.match(value) or "--" in value or not re.search("[a-z]", value):
            raise ValueError(f"{where}: {value!r} is neither a port, a range 'min:max' nor a port name")
        return PortMatch(name=value)
    number = as_int(value, where)
    if not 0 <= number <= 65535:
        raise ValueError(f"{where}: port {number} is out of range")
    return PortMatch(number, number)


def _ports(raw: Mapping[str, Any], key: str, where: str) -> tuple[PortMatch, ...] | None:
    if raw.get(key) is None:
        return None
    return tuple(_port(p, f"{where}.{key}[{i}]") for i, p in enumerate(as_list(raw[key], f"{where}.{key}")))


def _nets(raw: Mapping[str, Any], key: str, where: str) -> tuple[Network, ...] | None:
    if raw.get(key) is None:
        return None
    return tuple(as_network(n, f"{where}.{key}[{i}]") for i, n in enumerate(as_list(raw[key], f"{where}.{key}")))


def _entity(value: Any, where: str, namespace: str | None) -> EntityRule:
    raw = as_mapping(value, where)
    check_fields(raw, _ENTITY_FIELDS, where)
    if raw.get("services") is not None:
        raise ValueError(f"{where}.services: a service match needs the Service's endpoints, which the Calico "
                         "engine cannot know offline; select the pods instead")
    no_global(raw, "selector", where)
    ns_text = raw.get("namespaceSelector")
    if isinstance(ns_text, str) and "global(" in ns_text and ns_text != "global()" and not only_global(ns_text):
        raise ValueError(f"{where}.namespaceSelector: global() cannot be combined with other selectors")
    sa_names: frozenset[str] | None = None
    sa_selector: Selector | None = None
    if raw.get("serviceAccounts") is not None:
        here = f"{where}.serviceAccounts"
        sam = as_mapping(raw["serviceAccounts"], here)
        check_fields(sam, frozenset({"names", "selector"}), here)
        names = [as_string(n, f"{here}.names") for n in as_list(sam.get("names"), f"{here}.names")]
        sa_names = frozenset(names) if names else None
        sa_selector = parse_selector(sam, "selector", here)
    return EntityRule(
        namespace=namespace,
        selector=parse_selector(raw, "selector", where),
        not_selector=parse_selector(raw, "notSelector", where),
        namespace_selector=parse_selector(raw, "namespaceSelector", where),
        sa_names=sa_names,
        sa_selector=sa_selector,
        nets=_nets(raw, "nets", where),
        not_nets=_nets(raw, "notNets", where) or (),
        ports=_ports(raw, "ports", where),
        not_ports=_ports(raw, "notPorts", where) or (),
    )


def _icmp(value: Any, where: str) -> IcmpMatch | None:
    if value is None:
        return None
    raw = as_mapping(value, where)
    check_fields(raw, frozenset({"type", "code"}), where)
    kind = None if raw.get("type") is None else as_int(raw["type"], f"{where}.type")
    code = None if raw.get("code") is None else as_int(raw["code"], f"{where}.code")
    if kind is None:
        if code is not None:
            raise ValueError(f"{where}: ICMP code specified without an ICMP type")
        return None
    if not 0 <= kind <= 254:
        raise ValueError(f"{where}.type: {kind} is out of range 0-254")
    if code is not None and not 0 <= code <= 255:
        raise ValueError(f"{where}.code: {code} is out of range 0-255")
    return IcmpMatch(kind, code)


def _check_families(rule: Rule, where: str) -> None:
    versions = {n.version for e in (rule.source, rule.destination) for n in (*(e.nets or ()), *e.not_nets)}
    if len(versions) > 1:
        raise ValueError(f"{where}: the rule contains both IPv4 and IPv6 CIDRs (split it per family)")
    if rule.ip_version is not None and versions and versions != {rule.ip_version}:
        raise ValueError(f"{where}: ipVersion {rule.ip_version} does not match the version of its CIDRs")


def parse_rule(value: Any, where: str, direction: Direction, namespace: str | None, label: str) -> Rule:
    """One rule of a Calico policy: ``where`` names it in errors (``GlobalNetworkPolicy x: spec.egress[0]``),
    ``label`` in explanations (``GlobalNetworkPolicy x egress[0]``)."""
    raw = as_mapping(value, where)
    check_fields(raw, _RULE_FIELDS, where)
    action = raw.get("action")
    if action not in ACTIONS:
        raise ValueError(f"{where}.action: expected Allow, Deny, Log or Pass, got {action!r}")
    protocol = _protocol(raw.get("protocol"), f"{where}.protocol")
    ip_version = raw.get("ipVersion")
    if ip_version is not None and (isinstance(ip_version, bool) or ip_version not in (4, 6)):
        raise ValueError(f"{where}.ipVersion: expected 4 or 6, got {ip_version!r}")
    rule = Rule(
        label="",
        action=_action(str(action)),
        protocol=protocol,
        not_protocol=_protocol(raw.get("notProtocol"), f"{where}.notProtocol"),
        ip_version=ip_version,
        icmp=_icmp(raw.get("icmp"), f"{where}.icmp"),
        not_icmp=_icmp(raw.get("notICMP"), f"{where}.notICMP"),
        source=_entity(raw.get("source"), f"{where}.source", namespace),
        destination=_entity(raw.get("destination"), f"{where}.destination", namespace),
        http=raw.get("http") is not None,
    )
    if raw.get("icmp") is not None and protocol not in (1, 58):
        raise ValueError(f"{where}: rules that specify ICMP fields must set protocol to ICMP or ICMPv6")
    if ip_version is not None and 1 in (rule.protocol, rule.not_protocol) and ip_version != 4:
        raise ValueError(f"{where}: must set ipVersion to 4 with protocol ICMP")
    if ip_version is not None and 58 in (rule.protocol, rule.not_protocol) and ip_version != 6:
        raise ValueError(f"{where}: must set ipVersion to 6 with protocol ICMPv6")
    for side, entity in (("source", rule.source), ("destination", rule.destination)):
        numeric = [p for p in (*(entity.ports or ()), *entity.not_ports) if not p.name]
        if numeric and protocol not in PORT_PROTOCOLS:
            raise ValueError(f"{where}.{side}: rules with numeric ports or port ranges must set protocol to TCP, "
                             "UDP or SCTP")
    _check_families(rule, where)
    if rule.http:
        _check_http(raw, where, direction, rule)
    if raw.get("metadata") is not None:
        check_fields(as_mapping(raw["metadata"], f"{where}.metadata"), frozenset({"annotations"}),
                      f"{where}.metadata")
    return attrs.evolve(rule, label=label)


def _action(text: str) -> Action:
    if text == "Allow":
        return "Allow"
    if text == "Deny":
        return "Deny"
    if text == "Log":
        return "Log"
    return "Pass"


def _check_http(raw: Mapping[str, Any], where: str, direction: Direction, rule: Rule) -> None:
    http = as_mapping(raw["http"], f"{where}.http")
    check_fields(http, frozenset({"methods", "paths"}), f"{where}.http")
    for i, path in enumerate(as_list(http.get("paths"), f"{where}.http.paths")):
        item = as_mapping(path, f"{where}.http.paths[{i}]")
        check_fields(item, frozenset({"exact", "prefix"}), f"{where}.http.paths[{i}]")
    for method in as_list(http.get("methods"), f"{where}.http.methods"):
        as_string(method, f"{where}.http.methods")
    if rule.action != "Allow":
        raise ValueError(f"{where}.http: only valid for Allow rules")
    if direction == "egress":
        raise ValueError(f"{where}.http: not allowed in egress rules")
    if rule.protocol not in (None, 6):
        raise ValueError(f"{where}.http: rules that specify HTTP fields must set protocol to TCP or leave it empty")

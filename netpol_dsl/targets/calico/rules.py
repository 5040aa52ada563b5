"""Calico rule pieces: CIDR entity rules, ports split per protocol, ICMP types and HTTP (ALP) matches."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from netpol_dsl.ir.peers import Network
from netpol_dsl.ir.ports import Ports, icmp_matches, icmp_types
from netpol_dsl.ir.program import HttpMatch

MAX_PORTS = 50  # per rule (validator)


def cidr_entity(net: Network) -> dict[str, Any]:
    entity: dict[str, Any] = {"nets": [str(net.cidr)]}
    if net.excepts:
        entity["notNets"] = [str(e) for e in net.excepts]
    return entity


def by_protocol(ports: Ports) -> list[tuple[str, list[int | str], int | None]]:
    """(protocol, ports, ICMP type) per Calico rule: one protocol per rule, at most MAX_PORTS ports, one ICMP
    type (None: every type); ("", [], None) for any."""
    if ports is None:
        return [("", [], None)]
    by: dict[str, list[int | str]] = defaultdict(list)
    whole: set[str] = set()
    for p in ports:
        if p.is_icmp:
            continue
        if p.name:
            by[p.protocol].append(p.name)
        elif p.all_ports:
            whole.add(p.protocol)
        else:
            by[p.protocol].append(p.first if p.first == p.last else f"{p.first}:{p.last}")
    out: list[tuple[str, list[int | str], int | None]] = [(proto, [], None) for proto in sorted(whole)]
    for proto in sorted(by):
        if proto in whole:
            continue
        items = by[proto]
        out += [(proto, items[i:i + MAX_PORTS], None) for i in range(0, len(items), MAX_PORTS)]
    for p in icmp_matches(ports):
        out += [(p.protocol, [], None)] if p.all_ports else [(p.protocol, [], t) for t in icmp_types(p)]
    return out


def path_match(pattern: str) -> dict[str, str] | None:
    """An HTTP path regex as Calico's ``exact`` or ``prefix`` match, if it is one."""
    literal = re.sub(r"\\(.)", r"\1", pattern)
    if re.escape(literal) == pattern or not re.search(r"[\\^$.|?*+()\[\]{}]", pattern):
        return {"exact": literal}
    if pattern.endswith(".*"):
        head = pattern[:-2]
        literal = re.sub(r"\\(.)", r"\1", head)
        if re.escape(literal) == head or not re.search(r"[\\^$.|?*+()\[\]{}]", head):
            return {"prefix": literal}
    return None


def http_match(match: HttpMatch) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if match.method is not None:
        out["methods"] = [match.method]
    path = path_match(match.path) if match.path is not None else None
    if path is not None:
        out["paths"] = [path]
    return out

"""``--engine cilium`` of the simulator: Cilium's semantics (netpol_dsl.engines.cilium) behind :class:`SimEngine`.

Registered by :mod:`netpol_dsl.simulate` (which this module imports, so it is loaded lazily from there).
What it adds to the evaluator (docs/simulate.md, "The cilium engine"):

* **DNS.** A ``dns_lookup: true`` query first sends the DNS query (source -> a cluster DNS pod, UDP 53);
  it must be allowed, by L3/L4 and by the DNS proxy when the allowing rules have ``rules.dns``.  The
  returned addresses reach ``toFQDNs`` rules only if a ``rules.dns`` pattern of the source's policies
  lets the proxy see the name; only then is the name passed to the evaluator as ``dns_names``.  A query
  by address (or without ``dns_lookup``) passes none: ``toFQDNs`` matches only addresses learned that way.
* **ICMP.** Cilium matches ``icmps[].fields[].type`` (never the code): the connection's ``port`` carries
  the ICMP type (the query's ``icmp``, by default echo request).
* **Provenance.** Explanations name the manifest file and document of every policy they mention and,
  for manifests netpol-dsl built, its ``netpol-dsl.dev/source`` annotation.
* **Matrix.** Naive per-pair evaluation (the identity fast path is kubernetes-only for now).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from netpol_dsl.endpoints import Connection, Endpoint, External, Pod
from netpol_dsl.engines.cilium import CiliumEngine, ManifestError
from netpol_dsl.engines.cilium.parse import parse_documents
from netpol_dsl.inventory import InputError, Inventory
from netpol_dsl.simulate import (
    ICMP_PROTOCOLS,
    Decision,
    Manifest,
    Query,
    _describe,
    is_ip_address,
    no_dns_pod,
    pairwise_reachability,
)
from netpol_dsl.simulate_origins import ManifestOrigins

_NAMESPACED = frozenset({"CiliumNetworkPolicy", "NetworkPolicy"})
_POLICY_KINDS = frozenset({"CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy", "NetworkPolicy"})
_SPECS_SUFFIX = re.compile(r" specs\[\d+\]$")
# a rule label of the evaluator: "CiliumNetworkPolicy shop/web egress[0]", "... specs[1] ingressDeny[2]"
_RULE_LABEL = re.compile(r"((?:CiliumNetworkPolicy|CiliumClusterwideNetworkPolicy|NetworkPolicy) \S+"
                         r"(?: specs\[\d+\])?) (?:ingress|egress|ingressDeny|egressDeny)\[\d+\]")
_ENGINE_LINE = ("engine: cilium (cilium.io/v2 CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and "
                "CiliumCIDRGroup; networking.k8s.io/v1 NetworkPolicy the Cilium way)")


def _object_ident(body: Mapping[str, Any]) -> str | None:
    """``KIND namespace/name`` (``KIND name`` for a CCNP), as the evaluator names the policy; None otherwise."""
    kind = body.get("kind")
    metadata = body.get("metadata")
    if kind not in _POLICY_KINDS or not isinstance(metadata, Mapping):
        return None
    name = metadata.get("name")
    if kind in _NAMESPACED:
        return f"{kind} {metadata.get('namespace') or 'default'}/{name}"
    return f"{kind} {name}"


class CiliumSimulator:
    """``--engine cilium``: CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy, CiliumCIDRGroup and
    plain NetworkPolicy, evaluated as Cilium enforces them."""

    name = "cilium"

    def __init__(self, manifests: Sequence[Manifest], inventory: Inventory) -> None:
        bodies = [m.body for m in manifests]
        self.origins = ManifestOrigins(manifests, _object_ident)  # by policy ident without specs[i]
        problems = list(self.origins.problems)
        try:
            self.engine = CiliumEngine(bodies, inventory.cluster)
        except ManifestError as first:
            problems += self._every_problem(manifests) or [f"{manifests[first.position].where}: {first.detail}"]
        if problems:
            raise InputError(f"{problem} (engine cilium)" for problem in problems)
        self.inventory = inventory
        self._lookups: dict[tuple[Endpoint, str], tuple[bool, bool, tuple[str, ...]]] = {}

    @staticmethod
    def _every_problem(manifests: Sequence[Manifest]) -> list[str]:
        """Each document read alone (the evaluator stops at the first bad one; a missing CiliumCIDRGroup
        is not an error, so documents are independent here)."""
        problems = []
        for manifest in manifests:
            try:
                parse_documents([manifest.body])
            except ManifestError as exc:
                problems.append(f"{manifest.where}: {exc.detail}")
        return problems

    # -- provenance

    def _base(self, ident: str) -> str:
        return _SPECS_SUFFIX.sub("", ident)

    def _origin(self, ident: str) -> str:
        return self.origins.describe(self._base(ident))

    def _rules(self, lines: Sequence[str]) -> dict[str, str]:
        """The rules named in ``lines`` (``KIND ns/name egress[0]``) whose policy has a netpol-dsl source."""
        found: dict[str, str] = {}
        for match in _RULE_LABEL.finditer("\n".join(lines)):
            ident = match.group(1)
            source = self.origins.source.get(self._base(ident))
            if source and ident in self.engine.policies:
                found.setdefault(match.group(0), source)
        return found

    def _with_sources(self, lines: Sequence[str]) -> list[str]:
        """``lines`` with ``RULE comes from MODULE:LINE`` before the last (the conclusion)."""
        out = list(lines)
        for label, source in self._rules(lines).items():
            out.insert(len(out) - 1, f"{label} comes from {source}")
        return out

    # -- DNS

    def _lookup(self, client: Endpoint, name: str) -> tuple[bool, bool, tuple[str, ...]]:
        """(allowed, the DNS proxy sees the name, explanation) of ``client`` resolving ``name``."""
        key = (client, name)
        found = self._lookups.get(key)
        if found is not None:
            return found
        servers = self.inventory.dns_pods()
        if not servers:
            found = (False, False, (no_dns_pod(name),))
        else:
            tried: list[str] = []
            for server in servers:
                if isinstance(client, Pod):
                    allowed, visible, lines = self.engine.dns_lookup(client, server, name)
                else:  # no endpoint policy and no DNS proxy at a node or an external client
                    verdict = self.engine.evaluate(Connection(client, server, "UDP", 53))
                    allowed, visible, lines = verdict.allowed, False, verdict.explanation
                if allowed:
                    found = (True, visible, tuple(f"dns: {line}" for line in self._with_sources(lines)))
                    break
                tried += lines
            else:
                found = (False, False, (
                    f"dns: lookup of {name} fails: {client.describe()} may not query any cluster DNS pod "
                    "on udp/53 (or the DNS proxy refuses the name)",
                    *(f"dns: {line}" for line in tried)))
        self._lookups[key] = found
        return found

    def dns(self, client: Endpoint, lookup: str) -> Decision:
        allowed, visible, lines = self._lookup(client, lookup)
        if allowed and not visible and not is_ip_address(lookup):
            lines = (*lines, f"dns: no rules.dns pattern lets the DNS proxy see {lookup}: toFQDNs rules will not "
                             "match its addresses")
        return Decision("allow" if allowed else "drop", lines)

    # -- connections

    @staticmethod
    def _icmp(conn: Connection, icmp: tuple[int, int] | None) -> Connection:
        """The connection as the evaluator takes ICMP: ``port`` carries the type (default echo request)."""
        if conn.protocol not in ICMP_PROTOCOLS:
            return conn
        kind = icmp[0] if icmp is not None else (conn.port or ICMP_PROTOCOLS[conn.protocol][0])
        return Connection(conn.src, conn.dst, conn.protocol, kind, conn.http)

    def _dns_names(self, query: Query, conn: Connection) -> tuple[str, ...]:
        """The name the DNS proxy saw for ``conn.dst``, if the query looked it up and the proxy saw it."""
        if not query.dns_lookup or not isinstance(conn.dst, External) or is_ip_address(query.lookup):
            return ()
        allowed, visible, _ = self._lookup(conn.src, query.lookup)
        return (query.lookup,) if allowed and visible else ()

    def decide(self, query: Query, conn: Connection) -> Decision:
        conn = self._icmp(conn, query.icmp)
        verdict = self.engine.evaluate(conn, self._dns_names(query, conn))
        lines = self._with_sources(verdict.explanation)
        if query.icmp is not None:
            lines.insert(len(lines) - 1, f"{query.protocol} type {query.icmp[0]} code {query.icmp[1]}: Cilium's icmps "
                         "match the type only; rules without L4 allow every type")
        if query.http is not None and not any("L7:" in line or "proxied for HTTP" in line for line in lines):
            lines.insert(len(lines) - 1, "http: no HTTP rules on this port; the request is not inspected")
        return Decision(verdict.outcome, tuple(lines))

    def reachability(self, sources: Sequence[Pod], destinations: Sequence[Pod], protocol: str,
                     port: int) -> list[int]:
        """Naive per-pair evaluation of opaque connections (a port proxied for HTTP is ``drop``)."""
        return pairwise_reachability(sources, destinations, protocol, port,
                                     lambda conn: self.engine.verdict(conn) == "allow")

    # -- explain

    def explain(self, conn: Connection) -> list[str]:
        icmp_note = conn.protocol in ICMP_PROTOCOLS and not conn.port
        conn = self._icmp(conn, None)
        lines = [f"connection: {_describe(conn)}", _ENGINE_LINE, f"cluster: {self.engine.cluster_name}"]
        if icmp_note:
            lines.append(f"{conn.protocol}: explained as echo request (type {conn.port}); Cilium's icmps match the "
                         "type only")
        verdict = self.engine.evaluate(conn)
        sides: dict[str, list[str]] = {"egress": [], "ingress": []}
        notes: list[str] = []
        for line in verdict.explanation[:-1]:
            direction = line.split(" ", 1)[0].rstrip(":")
            sides.get(direction, notes).append(line)
        if isinstance(conn.src, Pod) and conn.src == conn.dst:
            lines += ["", *verdict.explanation, "", "verdict: allow"]
            return lines
        lines += ["", *self._explain_side(1, "egress", "source", conn.src, sides["egress"])]
        lines += ["", *self._explain_side(2, "ingress", "destination", conn.dst, sides["ingress"])]
        if notes:
            lines += ["", *notes]
        lines += ["", verdict.explanation[-1], f"verdict: {verdict.outcome}"]
        if isinstance(conn.dst, External) and conn.dst.names:
            lines += self._explain_lookup(conn, conn.dst.names)
        return lines

    def _explain_side(self, step: int, direction: str, role: str, subject: Endpoint, found: list[str]) -> list[str]:
        lines = [f"{step}. {direction} at the {role} {subject.describe()}"]
        if isinstance(subject, Pod):
            selecting = self.engine.selecting(subject)
            if selecting:
                lines.append("   selected by:")
                for ident in selecting:
                    lines += [f"     {ident}", f"       from {self._origin(ident)}"]
            else:
                lines.append("   selected by no policy")
        return lines + [f"   {line}" for line in found]

    def _explain_lookup(self, conn: Connection, names: Sequence[str]) -> list[str]:
        lines = ["", f"by address, toFQDNs never matches {conn.dst.describe()}: Cilium applies toFQDNs only to "
                 "addresses its DNS proxy saw the source resolve"]
        for name in names:
            allowed, visible, dns_lines = self._lookup(conn.src, name)
            lines += ["", f"if {conn.src.describe()} first looks up {name} through the cluster DNS:",
                      *(f"   {line}" for line in dns_lines)]
            if not allowed:
                lines.append(f"verdict after a lookup of {name}: drop (the lookup fails; no connection)")
                continue
            verdict = self.engine.evaluate(conn, (name,) if visible else ())
            lines += [f"   {line}" for line in self._with_sources(verdict.explanation)]
            lines.append(f"verdict after a lookup of {name}: {verdict.outcome}")
        return lines

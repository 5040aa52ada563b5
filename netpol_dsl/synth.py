"""Synthesized inventories: a few endpoints and connections that exercise every distinction a program makes.

Differential tests (targets, engines, external analyzers) need concrete endpoints to
compare verdicts on.  :func:`representative_endpoints` builds a small, deterministic
inventory from the program alone, and :func:`connections` every connection between
its members worth asking about.  The same program always yields the same tuples, in
the same order.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Iterable, Mapping

import attrs

from netpol_dsl.endpoints import ApiServer, Connection, ContainerPort, Endpoint, External, IPAddress, Node, Pod
from netpol_dsl.ir.peers import DnsName, Network, Peer, Workloads, exclude
from netpol_dsl.ir.ports import ALL_PROTOCOLS, ICMP_PROTOCOLS, ICMP_TYPES
from netpol_dsl.ir.program import Program
from netpol_dsl.ir.selectors import NAMESPACE_NAME_LABEL, SERVICE_ACCOUNT_KEY, Selector, Shape
from netpol_dsl.values import IPNetwork

DEFAULT_POD_CIDR = ipaddress.ip_network("10.244.0.0/16")
DNS_ADDRESSES = ipaddress.ip_network("203.0.113.0/24")  # TEST-NET-3: addresses for DNS names
PUBLIC_ADDRESSES = (ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("1.1.1.1"))
NODE_RANGES = tuple(ipaddress.ip_network(n) for n in ("192.168.0.0/16", "172.16.0.0/12", "100.64.0.0/10"))
# avoided when another address will do: "this network", loopback, multicast and reserved v4; all
# but global unicast (2000::/3) v6
_RESERVED = tuple(ipaddress.ip_network(n) for n in ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/3",
                                                     "::/3", "4000::/2", "8000::/1"))
HOST_NODE = "node-1"  # every synthesized pod runs here
REMOTE_NODE = "node-2"  # no pod runs here
OTHER_KEY = "app"
DEFAULT_SERVICE_ACCOUNT = "default"  # what a pod runs as when no selector asks for an account
FIRST_NAMED_PORT = 30000
FIRST_UNMENTIONED_PORT = 12345
FIRST_UNMENTIONED_ICMP_TYPE = 100  # unassigned in ICMP, private experimentation in ICMPv6
_UNSAFE = re.compile(r"[^a-z0-9]+")
_PROTOCOL_ORDER: dict[str, int] = {p: i for i, p in enumerate(ALL_PROTOCOLS)}


@attrs.frozen
class PortPlan:
    """The ports a program mentions, as container ports of every synthesized pod and as probes.

    ``named`` gives each named port a number no rule mentions; ``probes`` holds every
    (protocol, port) worth asking about: both ends of each numeric port or range, the
    number of each named port, and a port no rule mentions for TCP and for each protocol
    a rule allows as a whole.  ICMP and ICMPv6 probes carry the type in the port: both ends
    of each type range a rule mentions and, for each of the two a rule mentions at all, a type
    no rule mentions.  Container ports are TCP, UDP and SCTP only.
    """

    named: tuple[tuple[str, str, int], ...]  # (protocol, name, number)
    container_ports: tuple[ContainerPort, ...]
    probes: tuple[tuple[str, int], ...]


def unmentioned_icmp_type(ranges: Iterable[tuple[int, int]]) -> int | None:
    """The first ICMP type from :data:`FIRST_UNMENTIONED_ICMP_TYPE` on (wrapping at 255) in none of ``ranges``."""
    taken = list(ranges)
    lo, hi = ICMP_TYPES
    for step in range(hi - lo + 1):
        kind = lo + (FIRST_UNMENTIONED_ICMP_TYPE - lo + step) % (hi - lo + 1)
        if not any(a <= kind <= b for a, b in taken):
            return kind
    return None


def port_plan(program: Program) -> PortPlan:
    """The :class:`PortPlan` of ``program``: named ports numbered from 30000, unmentioned ports from 12345,
    unmentioned ICMP types from 100."""
    ranges: set[tuple[str, int, int]] = set()
    names: set[tuple[str, str]] = set()
    whole: set[str] = {"TCP"}
    for rule in program.rules:
        for p in rule.ports or ():
            if p.name:
                names.add((p.protocol, p.name))
            elif p.all_ports:
                whole.add(p.protocol)
            else:
                ranges.add((p.protocol, p.first, p.last))

    def covered(port: int, protocol: str | None = None) -> bool:
        return any(lo <= port <= hi and protocol in (None, proto) for proto, lo, hi in ranges
                   if proto not in ICMP_PROTOCOLS)

    named: list[tuple[str, str, int]] = []
    number = FIRST_NAMED_PORT
    for proto, name in sorted(names):
        while covered(number):
            number += 1
        named.append((proto, name, number))
        number += 1
    numbers = {n for _, _, n in named}
    mentioned = {(proto, port) for proto, lo, hi in ranges for port in (lo, hi)}
    probes = set(mentioned) | {(proto, n) for proto, _, n in named}
    for proto in whole - set(ICMP_PROTOCOLS):
        port = FIRST_UNMENTIONED_PORT
        while covered(port, proto) or port in numbers:
            port += 1
        probes.add((proto, port))
    for proto in ICMP_PROTOCOLS:
        if proto in whole or any(p == proto for p, _, _ in ranges):
            kind = unmentioned_icmp_type((lo, hi) for p, lo, hi in ranges if p == proto)
            if kind is not None:
                probes.add((proto, kind))
    container = [ContainerPort(port, proto) for proto, port in mentioned if proto not in ICMP_PROTOCOLS]
    container += [ContainerPort(n, proto, name) for proto, name, n in named]
    return PortPlan(
        tuple(named),
        tuple(sorted(container, key=lambda c: (_PROTOCOL_ORDER[c.protocol], c.port, c.name))),
        tuple(sorted(probes, key=lambda p: (_PROTOCOL_ORDER[p[0]], p[1]))),
    )


def program_workloads(program: Program) -> tuple[Workloads, ...]:
    """Every Workloads that is a rule subject, a rule or expectation peer, or an isolation subject."""
    found = {r.subject for r in program.rules} | {i.subject for i in program.isolations}
    found |= {p for p in program_peers(program) if isinstance(p, Workloads)}
    return tuple(sorted(found))


def program_peers(program: Program) -> set[Peer]:
    """Every rule peer and every peer an expectation names."""
    found: set[Peer] = {r.peer for r in program.rules}
    for e in program.expectations:
        found.update(e.sources)
        found.update(e.destinations)
    return found


def _values_of(program: Program, key: str) -> set[str]:
    """Every value any selector of the program names for ``key``."""
    out: set[str] = set()
    for w in program_workloads(program):
        for selector in (w.namespaces, w.pods):
            c = selector.get(key)
            if c is not None:
                out.update(c.values)
    return out


def _fresh(base: str, taken: Iterable[str]) -> str:
    used = set(taken)
    if base not in used:
        return base
    n = 2
    while f"{base}-{n}" in used:
        n += 1
    return f"{base}-{n}"


def _satisfy(selector: Selector, labels: Mapping[str, str]) -> dict[str, str] | None:
    """``labels`` plus what ``selector`` needs; None when that would change a label already set."""
    out = dict(labels)
    for c in selector.constraints:
        # every pod has a service account: without one named, a pod runs as "default"
        seen = {SERVICE_ACCOUNT_KEY: DEFAULT_SERVICE_ACCOUNT, **out} if c.key == SERVICE_ACCOUNT_KEY else out
        if c.matches(seen):
            continue
        if c.key in out:
            return None
        out[c.key] = c.values[0] if c.shape is Shape.IN else _fresh("other", c.values)
    return out


def _pod_name(labels: Mapping[str, str], taken: set[str]) -> str:
    parts = [f"{k.rsplit('/', 1)[-1]}-{v}" if v else k.rsplit("/", 1)[-1] for k, v in sorted(labels.items())]
    slug = _UNSAFE.sub("-", "-".join(parts).lower()).strip("-")[:50].rstrip("-") or "unlabelled"
    name = _fresh(slug, taken)
    taken.add(name)
    return name


def _address_in(net: IPNetwork, avoid: tuple[IPNetwork, ...]) -> IPAddress | None:
    """An address of ``net`` outside ``avoid``, and outside reserved ranges when possible (None: no such address)."""
    for excluded in ((*avoid, *_RESERVED), avoid):
        pieces = exclude(net, excluded)
        roomy = [p for p in pieces if p.num_addresses > 2]
        if roomy:
            return roomy[0].network_address + 1
        if pieces:
            return pieces[0].network_address
    return None


def _host_net(ip: IPAddress) -> IPNetwork:
    return ipaddress.ip_network(ip)


def _near_misses(w: Workloads) -> list[Workloads]:
    """Workloads that break exactly one requirement of ``w`` (the namespace name excepted)."""
    out = []
    for c in w.pods.constraints:
        for n in c.negate():
            pods = Selector.of((*w.pods.without(c.key).constraints, n))
            if pods is not None:
                out.append(Workloads(w.namespaces, pods))
    for c in w.namespaces.without(NAMESPACE_NAME_LABEL).constraints:
        for n in c.negate():
            namespaces = Selector.of((*w.namespaces.without(c.key).constraints, n))
            if namespaces is not None:
                out.append(Workloads(namespaces, w.pods))
    return out


def _pods(program: Program, plan: PortPlan) -> list[Pod]:
    """Representatives of every Workloads, pairwise intersection and near miss, an 'other' pod per
    namespace seen, and one pod in a namespace nothing mentions."""
    base = program_workloads(program)
    conj = {both for i, a in enumerate(base) for b in base[i + 1:] if (both := a.conjoin(b)) is not None}
    exact = sorted(set(base) | conj)
    near = sorted({m for w in base for m in _near_misses(w)} - set(exact))
    mentioned = _values_of(program, NAMESPACE_NAME_LABEL)
    declared = {name: dict(labels) for name, labels in program.cluster.namespace_labels}
    ns_labels: dict[str, dict[str, str]] = {name: dict(labels) for name, labels in declared.items()}
    for name in program.owned_namespaces:
        ns_labels.setdefault(name, {})
    fresh_for: dict[Selector, str] = {}
    targets: list[tuple[Workloads, str]] = []
    for w in [*exact, *near]:  # pass 1: namespaces and their labels
        c = w.namespaces.get(NAMESPACE_NAME_LABEL)
        if c is not None and c.shape is Shape.IN:
            name = c.values[0]
        elif w.namespaces in fresh_for:
            name = fresh_for[w.namespaces]
        else:
            name = fresh_for[w.namespaces] = _fresh("synth-ns", set(ns_labels) | mentioned)
        labels = ns_labels.setdefault(name, {})
        rest = w.namespaces.without(NAMESPACE_NAME_LABEL)
        # declared labels are facts, never extended; near misses never extend a shared namespace
        if name in declared or (w in near and name not in fresh_for.values()):
            if rest.matches({**labels, NAMESPACE_NAME_LABEL: name}):
                targets.append((w, name))
            continue
        extended = _satisfy(rest, labels)
        if extended is not None:
            ns_labels[name] = extended
            targets.append((w, name))
    elsewhere = _fresh("synth-elsewhere", set(ns_labels) | mentioned)
    other = {OTHER_KEY: _fresh("other", _values_of(program, OTHER_KEY))}
    wanted: dict[tuple[str, tuple[tuple[str, str], ...]], None] = {}
    for w, name in targets:  # pass 2: pods, with the final namespace labels
        required = _satisfy(w.pods, {})
        assert required is not None  # a canonical selector is satisfiable from no labels
        wanted[(name, tuple(sorted(required.items())))] = None
    for name in [*sorted(ns_labels), elsewhere]:
        wanted[(name, tuple(other.items()))] = None
    all_ns_labels = {**ns_labels, elsewhere: {}}
    taken: dict[str, set[str]] = {}
    drafts = []
    for name, pairs in sorted(wanted):
        drafts.append((name, _pod_name(dict(pairs), taken.setdefault(name, set())), pairs))
    net = program.cluster.pod_cidrs[0] if program.cluster.pod_cidrs else DEFAULT_POD_CIDR
    skip = 9 if net.num_addresses > len(drafts) + 11 else 0  # start at .10 when there is room
    addresses: list[IPAddress] = list(itertools.islice(net.hosts(), skip, skip + len(drafts)))
    if len(addresses) < len(drafts):
        raise ValueError(f"pod CIDR {net} is too small for {len(drafts)} synthesized pods")
    return [
        Pod(name, pod_name, tuple(p for p in pairs if p[0] != SERVICE_ACCOUNT_KEY),
            tuple(sorted(all_ns_labels[name].items())), ip=ip, ports=plan.container_ports, node=HOST_NODE,
            service_account=dict(pairs).get(SERVICE_ACCOUNT_KEY, DEFAULT_SERVICE_ACCOUNT))
        for ip, (name, pod_name, pairs) in zip(addresses, sorted(drafts), strict=True)
    ]


def _example_name(peer: DnsName) -> str:
    if peer.exact:
        return peer.pattern
    if peer.pattern == "*":
        return "anything.example"
    labels = peer.pattern.split(".")
    if labels[0] == "**":
        labels[0] = "sub"
    return ".".join(label.replace("*", "x") for label in labels)


def representative_endpoints(program: Program) -> tuple[Endpoint, ...]:
    """A small inventory on which every distinction ``program`` makes shows up.

    Guarantees, for any program (deterministic: same program, same tuple):

    * for every :class:`Workloads` that is a rule subject, a rule peer or an isolation
      subject, and for every satisfiable intersection of two of them, a pod it selects
      (unless its namespace is a declared one whose declared labels contradict it); and
      for each of them and each pod or namespace label requirement, a *near miss*: a pod
      that breaks just that requirement (``env NotIn (prod)`` gets an ``env=prod`` pod) when
      that needs no change to a named namespace's labels.  A namespace pinned by
      ``kubernetes.io/metadata.name`` is used by name (the first one listed); other namespace
      selectors get a synthesized namespace (``synth-ns``, ``synth-ns-2``, ...) whose labels
      satisfy them.  A namespace has the same labels on every pod: the declared ones for
      declared namespaces (never extended), else what its selectors need, taken in sorted
      order (a selector contradicting labels chosen earlier gets no pod).  A selector's service
      account (the pseudo-label ``SERVICE_ACCOUNT_KEY``) is the pod's ``service_account``, never
      a label; its near miss runs as another account (``other``); pods whose selectors name no
      account run as ``default``;
    * in every namespace seen (owned, declared or used by a pod above) one pod labelled
      ``app=other`` (a value no selector names), and one such pod in a namespace nothing
      mentions (``synth-elsewhere``);
    * pods have unique IPs from the first declared pod CIDR (else 10.244.0.0/16), run on
      node ``node-1``, and expose every numeric port (both ends of ranges) any rule
      mentions plus every named port, with the numbers of :func:`port_plan`;
    * nodes ``node-1`` (every pod's host) and ``node-2`` (remote) have addresses from the
      declared node CIDRs (else 192.168.0.0/16), outside the pod and service CIDRs;
    * for every :class:`Network` peer an external address inside its CIDR and outside its
      excepts, and one inside each except; for every :class:`DnsName` an external with a
      matching name and a unique address from 203.0.113.0/24; a public internet address
      (8.8.8.8).  External addresses are never inside the pod, service or node CIDRs
      (declared, or the default pod CIDR) nor node addresses, since peers model CIDRs as
      outside the cluster (a network entirely inside them gets no address); they avoid
      reserved ranges when possible.  Two networks wanting the same address share one;
    * the API server.

    Order: pods by (namespace, name), externals by address, nodes, the API server.
    """
    plan = port_plan(program)
    pods = _pods(program, plan)
    facts = program.cluster
    pod_ranges = facts.pod_cidrs or (DEFAULT_POD_CIDR,)
    avoid: tuple[IPNetwork, ...] = (*pod_ranges, *facts.service_cidrs)
    nodes = []
    for name in (HOST_NODE, REMOTE_NODE):
        ip = next(a for r in (*facts.node_cidrs, *NODE_RANGES) if (a := _address_in(r, avoid)) is not None)
        nodes.append(Node(name, ip))
        avoid = (*avoid, _host_net(ip))
    avoid = (*avoid, *facts.node_cidrs)
    names: dict[IPAddress, list[str]] = {}
    for net in sorted({p for p in program_peers(program) if isinstance(p, Network)}):
        for inside in (_address_in(net.cidr, (*avoid, *net.excepts)), *(_address_in(e, avoid) for e in net.excepts)):
            if inside is not None:
                names.setdefault(inside, [])
    public = next((a for a in PUBLIC_ADDRESSES if _address_in(_host_net(a), avoid) is not None), None)
    if public is not None:
        names.setdefault(public, [])
    free = (h for h in DNS_ADDRESSES.hosts() if h not in names and _address_in(_host_net(h), avoid) is not None)
    for dns in sorted({p for p in program_peers(program) if isinstance(p, DnsName)}):
        name = _example_name(dns)
        assert dns.matches(name), (dns, name)
        names[next(free)] = [name]
    externals = [External(ip, tuple(n)) for ip, n in sorted(names.items(), key=lambda kv: (kv[0].version, kv[0]))]
    return (*pods, *externals, *nodes, ApiServer())


def connections(endpoints: Iterable[Endpoint], program: Program) -> tuple[Connection, ...]:
    """Every connection between two distinct endpoints of which at least one is a pod, for every probe
    (protocol, port) of :func:`port_plan`: the ports the program mentions plus one it does not (for
    ICMP and ICMPv6 the port is the type).

    A pod's traffic to itself is left out: NetworkPolicy does not govern it.  Order: by source,
    then destination (as given), then protocol and port.
    """
    items = list(endpoints)
    probes = port_plan(program).probes
    return tuple(
        Connection(src, dst, proto, port)
        for src in items
        for dst in items
        if src is not dst and src != dst and (isinstance(src, Pod) or isinstance(dst, Pod))
        for proto, port in probes
    )

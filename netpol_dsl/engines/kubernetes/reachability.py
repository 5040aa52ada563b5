"""The identity-based fast path: every pod-to-pod NetworkPolicy decision at once, over atoms and bitsets."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Any

from netpol_dsl.endpoints import IPAddress, Pod
from netpol_dsl.engines.kubernetes.model import _IpBlock, _Peer, _Policy, _PortSpec, _Rule
from netpol_dsl.engines.manifest import Network

# --------------------------------------------------------------------------------------------
# all pairs at once, over identities and bitsets


def _bits(value: int) -> list[int]:
    """The indices of the set bits of ``value``, ascending."""
    text = bin(value)[:1:-1]
    out = []
    i = text.find("1")
    while i >= 0:
        out.append(i)
        i = text.find("1", i + 1)
    return out


def _mask(indices: Iterable[int]) -> int:
    """The bitset with the given bits set (linear time, unlike repeated big-integer ORs)."""
    data = bytearray()
    for i in indices:
        byte = i >> 3
        if byte >= len(data):
            data.extend(bytes(byte + 1 - len(data)))
        data[byte] |= 1 << (i & 7)
    return int.from_bytes(data, "little")


def _block_signatures(blocks: Sequence[_IpBlock], ips: Iterable[IPAddress | None]) -> dict[IPAddress, tuple[int, ...]]:
    """For each address, the indices of the ``blocks`` that contain it (addresses in none are left out).

    Addresses are sorted once per IP version; each block then takes the slice of addresses within
    its CIDR (two bisections) minus the slices within its exceptions, so the cost is the number of
    (block, matching address) pairs, not blocks x addresses.
    """
    by_version: dict[int, list[IPAddress]] = {}
    for ip in set(ips):
        if ip is not None:
            by_version.setdefault(ip.version, []).append(ip)
    sorted_ips = {v: sorted(items) for v, items in by_version.items()}
    keys = {v: [int(ip) for ip in items] for v, items in sorted_ips.items()}
    found: dict[IPAddress, list[int]] = {}

    def span(network: Network) -> tuple[int, int]:
        ints = keys[network.version]
        return (bisect.bisect_left(ints, int(network.network_address)),
                bisect.bisect_right(ints, int(network.broadcast_address)))

    for k, block in enumerate(blocks):
        if block.cidr.version not in keys:
            continue
        lo, hi = span(block.cidr)
        holes = sorted(span(e) for e in block.excepts if e.version == block.cidr.version)
        i = lo
        for hole_lo, hole_hi in (*holes, (hi, hi)):
            for ip in sorted_ips[block.cidr.version][i:max(i, min(hole_lo, hi))]:
                found.setdefault(ip, []).append(k)
            i = max(i, hole_hi)
    return {ip: tuple(items) for ip, items in found.items()}


class _Expander:
    """Maps bitsets over atoms to bitsets over destination indices (a linear map over GF(2)).

    Dense atom sets are expanded a byte (8 atoms) at a time through a lazily filled table, so a
    row costs at most ``atoms / 8`` big-integer ORs whatever its density.
    """

    def __init__(self, atom_masks: Sequence[int]) -> None:
        self._masks = atom_masks
        self._table: dict[int, int] = {}
        self._nbytes = (len(atom_masks) + 7) // 8 or 1

    def __call__(self, atoms: int) -> int:
        masks = self._masks
        out = 0
        if atoms.bit_count() <= 16:
            for a in _bits(atoms):
                out |= masks[a]
            return out
        table = self._table
        for chunk, byte in enumerate(atoms.to_bytes(self._nbytes, "little")):
            if byte:
                key = chunk << 8 | byte
                value = table.get(key)
                if value is None:
                    value = 0
                    for bit in _bits(byte):
                        value |= masks[chunk * 8 + bit]
                    table[key] = value
                out |= value
        return out


class _Reachability:
    """All-pairs NetworkPolicy decisions over *atoms* instead of pods.

    An atom is a set of pods the policies cannot tell apart for this protocol and port: same
    namespace, same values for every pod-label key any selector mentions, same values for every
    namespace-label key any namespaceSelector mentions, same numbers for the named ports the rules
    mention (for this protocol), and same membership in every distinct ipBlock (ipBlocks match
    pod IPs, so the IP matters exactly through them).  Every peer set, every port set and every
    selecting-policy set is then a union of atoms, computed once per distinct peer, port list or
    policy set as a bitset over atoms; egress is decided row-wise (destinations a source may reach)
    and ingress column-wise (sources a destination admits), transposed through the distinct peer
    sets, and the two intersected.  Finally each atom row is expanded to destination pods and
    loopback bits are set.
    """

    def __init__(
        self,
        policies: Sequence[_Policy],
        sources: Sequence[Pod],
        destinations: Sequence[Pod],
        protocol: str,
        port: int,
    ) -> None:
        self.policies = policies
        self.sources = sources
        self.destinations = destinations
        self.protocol = protocol
        self.port = port
        self._collect()
        self._atomize()

    # -- what the policies can distinguish

    def _collect(self) -> None:
        pod_keys: set[str] = set()
        ns_keys: set[str] = set()
        names: set[str] = set()
        blocks: dict[_IpBlock, int] = {}
        for policy in self.policies:
            pod_keys |= policy.pod_selector.keys
            for rule in (*(policy.ingress or ()), *(policy.egress or ())):
                for peer in rule.peers:
                    if peer.pod_selector is not None:
                        pod_keys |= peer.pod_selector.keys
                    if peer.namespace_selector is not None:
                        ns_keys |= peer.namespace_selector.keys
                    if peer.ip_block is not None:
                        blocks.setdefault(peer.ip_block, len(blocks))
                for spec in rule.ports:
                    if isinstance(spec.port, str) and spec.protocol == self.protocol:
                        names.add(spec.port)
        self.pod_keys = tuple(sorted(pod_keys))
        self.ns_keys = tuple(sorted(ns_keys))
        self.names = tuple(sorted(names))
        self.blocks = blocks

    def _atomize(self) -> None:
        atoms: dict[tuple[Any, ...], int] = {}
        reps: list[Pod] = []
        ns_cache: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str | None, ...]] = {}
        signatures = _block_signatures(list(self.blocks), [p.ip for p in (*self.sources, *self.destinations)])

        def atom_of(pod: Pod) -> int:
            ns_key = (pod.namespace, pod.namespace_labels)
            ns_values = ns_cache.get(ns_key)
            if ns_values is None:
                ns_labels = pod.namespace_label_map
                ns_values = ns_cache[ns_key] = tuple(ns_labels.get(k) for k in self.ns_keys)
            labels = dict(pod.labels)
            named = pod.named_ports(self.protocol) if self.names else {}
            key = (
                pod.namespace,
                ns_values,
                tuple(labels.get(k) for k in self.pod_keys),
                tuple(named.get(n) for n in self.names),
                signatures.get(pod.ip, ()) if pod.ip is not None else (),
            )
            atom = atoms.get(key)
            if atom is None:
                atom = atoms[key] = len(reps)
                reps.append(pod)
            return atom

        self.src_atoms = [atom_of(p) for p in self.sources]
        self.dst_atoms = [atom_of(p) for p in self.destinations]
        self.reps = reps
        self.size = len(reps)
        self.all = (1 << self.size) - 1
        by_ns: dict[str, list[int]] = {}
        for a, rep in enumerate(reps):
            by_ns.setdefault(rep.namespace, []).append(a)
        self.by_namespace = by_ns
        in_block: list[list[int]] = [[] for _ in self.blocks]
        named: list[tuple[int | None, ...]] = []
        for a, key in enumerate(atoms):
            for k in key[4]:
                in_block[k].append(a)
            named.append(key[3])
        self.block_atoms = [_mask(items) for items in in_block]
        self.named_values = named

    # -- sets of atoms

    def _peer_set(self, peer: _Peer, policy_namespace: str, cache: dict[tuple[_Peer, str], int]) -> int:
        # only a podSelector-only peer depends on the policy's namespace
        own = peer.namespace_selector is None and peer.ip_block is None
        key = (peer, policy_namespace if own else "")
        found = cache.get(key)
        if found is not None:
            return found
        if peer.ip_block is not None:
            value = self.block_atoms[self.blocks[peer.ip_block]]
        else:
            if peer.namespace_selector is None:
                candidates = self.by_namespace.get(policy_namespace, [])
            else:
                selector = peer.namespace_selector
                candidates = [a for ns, items in self.by_namespace.items()
                              if selector.matches(self.reps[items[0]].namespace_label_map) for a in items]
            pod_selector = peer.pod_selector
            value = _mask(a for a in candidates
                          if pod_selector is None or pod_selector.matches(self.reps[a].label_map))
        cache[key] = value
        return value

    def _port_set(self, ports: tuple[_PortSpec, ...], cache: dict[tuple[_PortSpec, ...], int]) -> int:
        """Destination atoms on which one of ``ports`` matches."""
        if not ports:
            return self.all
        found = cache.get(ports)
        if found is not None:
            return found
        value = 0
        for spec in ports:
            if spec.protocol != self.protocol:
                continue
            if isinstance(spec.port, str):
                pos = self.names.index(spec.port)
                value |= _mask(a for a, values in enumerate(self.named_values) if values[pos] == self.port)
            elif spec.port is None or (
                spec.port == self.port if spec.end_port is None else spec.port <= self.port <= spec.end_port
            ):
                value = self.all
                break
        cache[ports] = value
        return value

    def _rule_sets(self) -> tuple[list[list[tuple[int, int]]], list[list[tuple[int, int]]]]:
        """Per policy and direction: (peer set, port set) of each rule, as atom bitsets."""
        peer_cache: dict[tuple[_Peer, str], int] = {}
        port_cache: dict[tuple[_PortSpec, ...], int] = {}

        def sets(policy: _Policy, rules: tuple[_Rule, ...] | None) -> list[tuple[int, int]]:
            out = []
            for rule in rules or ():
                peers = self.all if not rule.peers else 0
                for peer in rule.peers:
                    peers |= self._peer_set(peer, policy.namespace, peer_cache)
                out.append((peers, self._port_set(rule.ports, port_cache)))
            return out

        return ([sets(p, p.ingress) for p in self.policies], [sets(p, p.egress) for p in self.policies])

    def _selecting(self) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
        """Per atom: the indices of the policies that isolate it for ingress, and for egress."""
        by_ns: dict[str, list[int]] = {}
        for i, policy in enumerate(self.policies):
            by_ns.setdefault(policy.namespace, []).append(i)
        ingress: list[tuple[int, ...]] = []
        egress: list[tuple[int, ...]] = []
        for rep in self.reps:
            labels = rep.label_map
            chosen = [i for i in by_ns.get(rep.namespace, ()) if self.policies[i].pod_selector.matches(labels)]
            ingress.append(tuple(i for i in chosen if self.policies[i].ingress is not None))
            egress.append(tuple(i for i in chosen if self.policies[i].egress is not None))
        return ingress, egress

    def atom_rows(self) -> list[int]:
        """Per source atom: the destination atoms it may reach (loopback aside)."""
        ingress_sets, egress_sets = self._rule_sets()
        in_sel, eg_sel = self._selecting()
        # egress, row-wise: the destinations each source atom's egress admits
        egress_cache: dict[tuple[int, ...], int] = {(): self.all}
        egress_rows = []
        for chosen in eg_sel:
            row = egress_cache.get(chosen)
            if row is None:
                row = 0
                for i in chosen:
                    for peers, ports in egress_sets[i]:
                        row |= peers & ports
                egress_cache[chosen] = row
            egress_rows.append(row)
        # ingress, column-wise: which destinations each distinct peer set admits sources into
        open_to_all = 0  # destination atoms that admit every source
        admitted_by: dict[int, int] = {}  # source peer set -> destination atoms admitting it
        for b, chosen in enumerate(in_sel):
            bit = 1 << b
            if not chosen:
                open_to_all |= bit
                continue
            for i in chosen:
                for peers, ports in ingress_sets[i]:
                    if ports & bit and peers:
                        admitted_by[peers] = admitted_by.get(peers, 0) | bit
        open_to_all |= admitted_by.pop(self.all, 0)
        ingress_cols = [open_to_all] * self.size  # per source atom: destination atoms admitting it
        for peers, dests in admitted_by.items():
            for a in _bits(peers):
                ingress_cols[a] |= dests
        return [egress_rows[a] & ingress_cols[a] for a in range(self.size)]

    def rows(self) -> list[int]:
        atom_rows = self.atom_rows()
        dst_masks = [0] * self.size
        for j, a in enumerate(self.dst_atoms):
            dst_masks[a] |= 1 << j
        expand = _Expander(dst_masks)
        expanded: dict[int, int] = {}
        dst_index = {(p.namespace, p.name): j for j, p in enumerate(self.destinations)}
        out = []
        for i, a in enumerate(self.src_atoms):
            if a not in expanded:
                expanded[a] = expand(atom_rows[a])
            row = expanded[a]
            pod = self.sources[i]
            own = dst_index.get((pod.namespace, pod.name))
            if own is not None and self.destinations[own] == pod:
                row |= 1 << own  # loopback
            out.append(row)
        return out

"""Running network-config-analyzer (NCA) as an independent NetworkPolicy oracle, and reading its answer.

NCA (PyPI ``network-config-analyzer``, CLI ``nca``) computes the connectivity a set of
NetworkPolicies allows between the pods of a given pod list.  We run::

    nca --connectivity <policies dir> --pod_list pods.yaml --ns_list namespaces.yaml \
        --output_format txt_no_fw_rules --output_endpoints pods --print_ipv6 --file_out <out>

``txt_no_fw_rules`` lists one line per (source, destination) pair that has any allowed
connection, without the label-based minimisation of the default firewall-rule formats
(``json``/``yaml`` group pods into ``ns/*`` or label expressions and silently drop
self-loops, which cannot be mapped back to single pods reliably)::

    shop/frontend => shop/backend : {protocols:TCP,dst_ports:8080}
    shop/backend => 0.0.0.0-9.255.255.255,11.0.0.0-255.255.255.255 : All connections
    shop/x => kube-system/dns : {protocols:TCP, UDP,dst_ports:53},{protocols:SCTP}
    shop/y => shop/z : All but {protocols:TCP,dst_ports:22}

A pair without a line has no connection.  NCA models ipBlocks as addresses outside the
cluster (pod IPs play no role), which is also our model of CIDR peers.  Nodes and the API
server are not modelled.  :func:`run_nca_scheme` asks the same query for several policy sets
on one inventory in one NCA process (``nca --scheme``), which saves NCA's start-up per set.

Known NCA bugs (2.1.0), worked around in :func:`nca_compatible` by rewriting the
requirements NCA misreads into ones it reads correctly and that select the same pods of
the given inventory:

* in a peer with both ``namespaceSelector`` and ``podSelector``, an ``Exists`` or
  ``DoesNotExist`` requirement of the podSelector only considers pods of the *policy's own*
  namespace (``K8sPolicyYamlParser.parse_label_selector_requirement`` passes
  ``self.namespace`` to ``PeerContainer.get_peers_with_key``), so such a peer pointing at
  another namespace selects nothing;
* a namespaceSelector requirement with the empty value (``team: ""``, ``In [""]``,
  ``NotIn [""]``) treats a namespace without the label as having it empty
  (``PeerContainer.get_namespace_pods_with_label`` reads ``labels.get(key, '')``).

Kubernetes selects the matching pods in the selected namespaces, and an empty value only
matches a label that is present.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from netpol_dsl.endpoints import Connection, Endpoint, External, IPAddress, Pod
from netpol_dsl.ir.selectors import NAMESPACE_NAME_LABEL
from netpol_dsl.render.yaml import dump, dump_all

TIMEOUT_SECONDS = 120
_KEYS = ("protocols", "dst_ports", "src_ports", "icmp_type", "icmp_code", "methods", "paths", "hosts")
_KEY_RE = re.compile(r"(?:^|,)(" + "|".join(_KEYS) + r"):")
_CUBES_RE = re.compile(r"\{[^{}]*\}(?:,\{[^{}]*\})*")
_BENIGN = re.compile(r"Warning: Missing named port \S+ in the pod \S+\. Ignoring the pod$")


class NcaError(Exception):
    """NCA failed, or printed something this module cannot read."""


def find_nca() -> str | None:
    """The ``nca`` executable of this interpreter's environment, else the one on PATH."""
    local = Path(sys.executable).parent / "nca"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("nca")


# --------------------------------------------------------------------------------------------
# inputs


def pod_list(pods: Iterable[Pod]) -> dict[str, Any]:
    """A kubectl ``v1 List`` of Pods with labels, node, container ports and pod IP."""
    items = []
    for p in pods:
        ports = [{"containerPort": c.port, "protocol": c.protocol, **({"name": c.name} if c.name else {})}
                 for c in p.ports]
        items.append({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": p.name, "namespace": p.namespace, "labels": dict(p.labels)},
            "spec": {
                "nodeName": p.node,
                "serviceAccountName": p.service_account,
                "containers": [{"name": "main", "image": "registry.example/app:1", "ports": ports}],
            },
            "status": {"phase": "Running", **({"podIP": str(p.ip), "podIPs": [{"ip": str(p.ip)}]} if p.ip else {})},
        })
    return {"apiVersion": "v1", "kind": "List", "items": items}


def namespace_list(pods: Iterable[Pod]) -> dict[str, Any]:
    """A kubectl ``v1 List`` of the pods' Namespaces with their labels (``kubernetes.io/metadata.name`` too)."""
    labels: dict[str, dict[str, str]] = {}
    for p in pods:
        prev = labels.setdefault(p.namespace, p.namespace_label_map)
        if prev != p.namespace_label_map:
            raise ValueError(f"namespace {p.namespace} has different labels on different pods")
    items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": labels[n]}}
             for n in sorted(labels)]
    return {"apiVersion": "v1", "kind": "List", "items": items}


_NO_VALUE = "nca-workaround-no-such-value"


def _k8s_matches(req: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op = str(req["key"]), str(req["operator"])
    values = [str(v) for v in req.get("values") or ()]
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    return (key in labels) == (op == "Exists")


def _fix_pod_selector(selector: dict[str, Any], pods: Sequence[Pod]) -> None:
    for req in selector.get("matchExpressions") or ():
        if req["operator"] in ("Exists", "DoesNotExist"):
            values = sorted({dict(p.labels)[req["key"]] for p in pods if req["key"] in dict(p.labels)})
            req["operator"] = "In" if req["operator"] == "Exists" else "NotIn"
            req["values"] = values or [_NO_VALUE]


def _fix_namespace_selector(selector: dict[str, Any], namespaces: Mapping[str, Mapping[str, str]]) -> None:
    match_labels = selector.get("matchLabels") or {}
    reqs = [{"key": k, "operator": "In", "values": [""]} for k, v in match_labels.items() if v == ""]
    reqs += [r for r in selector.get("matchExpressions") or ()
             if r["operator"] in ("In", "NotIn") and "" in (r.get("values") or [])]
    if not reqs:
        return
    kept_labels = {k: v for k, v in match_labels.items() if v != ""}
    exprs = [r for r in selector.get("matchExpressions") or () if r not in reqs]
    for r in reqs:
        names = sorted(n for n, labels in namespaces.items() if _k8s_matches(r, labels))
        exprs.append({"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": names or [_NO_VALUE]})
    selector.pop("matchLabels", None)
    if kept_labels:
        selector["matchLabels"] = kept_labels
    selector["matchExpressions"] = exprs


def nca_compatible(policy: Mapping[str, Any], pods: Sequence[Pod]) -> dict[str, Any]:
    """``policy`` with the peer selectors NCA misreads (see the module docstring) rewritten to
    requirements NCA reads correctly and that select the same pods of ``pods``."""
    out: dict[str, Any] = copy.deepcopy(dict(policy))
    namespaces = {p.namespace: p.namespace_label_map for p in pods}
    spec = out.get("spec", {})
    for direction, field in (("ingress", "from"), ("egress", "to")):
        for rule in spec.get(direction) or ():
            for peer in rule.get(field) or ():
                if "namespaceSelector" not in peer:
                    continue
                _fix_namespace_selector(peer["namespaceSelector"], namespaces)
                if peer.get("podSelector"):
                    _fix_pod_selector(peer["podSelector"], pods)
    return out


# --------------------------------------------------------------------------------------------
# output


@attrs.frozen
class _Cube:
    protocols: frozenset[str] | None  # None: every protocol
    protocols_negated: bool
    ports: tuple[tuple[int, int], ...] | None  # None: every port

    def matches(self, protocol: str, port: int) -> bool:
        if self.protocols is not None and (protocol in self.protocols) == self.protocols_negated:
            return False
        return self.ports is None or any(lo <= port <= hi for lo, hi in self.ports)


@attrs.frozen
class ConnSet:
    """NCA's connection set: everything, or a union of cubes, or everything but a union of cubes."""

    everything: bool
    negated: bool = False
    cubes: tuple[_Cube, ...] = ()

    def allows(self, protocol: str, port: int) -> bool:
        if self.everything:
            return True
        return any(c.matches(protocol, port) for c in self.cubes) != self.negated


def _ranges(text: str, where: str) -> tuple[tuple[int, int], ...]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise NcaError(f"cannot read port list {text!r} in {where!r}")
        out.append((int(lo), int(hi or lo)))
    return tuple(out)


def _cube(body: str, where: str) -> _Cube:
    keys = list(_KEY_RE.finditer(body))
    if not keys or keys[0].start() != 0:
        raise NcaError(f"cannot read connection cube {{{body}}} in {where!r}")
    fields: dict[str, str] = {}
    for i, m in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(body)
        fields[m.group(1)] = body[m.end():end].strip()
    unknown = set(fields) - {"protocols", "dst_ports"}
    if unknown:
        raise NcaError(f"connection cube {{{body}}} restricts {sorted(unknown)}, which NetworkPolicy cannot: {where!r}")
    protocols: frozenset[str] | None = None
    negated = False
    if "protocols" in fields:
        text = fields["protocols"]
        if text.startswith("all but "):
            negated, text = True, text[len("all but "):]
        protocols = frozenset(p.strip().upper() for p in text.split(","))
    ports = _ranges(fields["dst_ports"], where) if "dst_ports" in fields else None
    return _Cube(protocols, negated, ports)


def parse_connections(text: str, where: str = "") -> ConnSet:
    text = text.strip()
    if text == "All connections":
        return ConnSet(True)
    negated = text.startswith("All but ")
    if negated:
        text = text[len("All but "):].strip()
    if not _CUBES_RE.fullmatch(text):
        raise NcaError(f"cannot read connections {text!r} in {where!r}")
    return ConnSet(False, negated, tuple(_cube(b, where) for b in re.findall(r"\{([^{}]*)\}", text)))


@attrs.frozen
class _Addresses:
    ranges: tuple[tuple[IPAddress, IPAddress], ...]

    def __contains__(self, ip: IPAddress) -> bool:
        return any(lo.version == ip.version and lo <= ip <= hi for lo, hi in self.ranges)  # type: ignore[operator]


def _addresses(text: str) -> _Addresses | None:
    """NCA's ip-block names: comma-separated ``first-last`` ranges, single addresses or CIDRs."""
    out: list[tuple[IPAddress, IPAddress]] = []
    try:
        for part in text.split(","):
            if "/" in part:
                net = ipaddress.ip_network(part)
                out.append((net[0], net[-1]))
            else:
                lo, _, hi = part.partition("-")
                out.append((ipaddress.ip_address(lo), ipaddress.ip_address(hi or lo)))
    except ValueError:
        return None
    return _Addresses(tuple(out))


Peer = str | _Addresses  # a pod's "namespace/name", or external addresses


@attrs.frozen
class NcaReport:
    """What NCA says is allowed, by (source, destination) line."""

    lines: tuple[tuple[Peer, Peer, ConnSet], ...]
    text: str
    # the lines by (source, destination) pod name, "" for addresses: a pod only matches its own name, an
    # address only address ranges, so only these lines can match a connection
    _by_ends: dict[tuple[str, str], list[tuple[Peer, Peer, ConnSet]]] = attrs.field(
        init=False, eq=False, repr=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        for line in self.lines:
            key = (line[0] if isinstance(line[0], str) else "", line[1] if isinstance(line[1], str) else "")
            self._by_ends.setdefault(key, []).append(line)

    def allowed(self, conn: Connection) -> bool | None:
        """NCA's verdict on ``conn``; None when NCA does not model an end (nodes, the API server)."""
        src, dst = _peer_key(conn.src), _peer_key(conn.dst)
        if src is None or dst is None:
            return None
        candidates = self._by_ends.get((src if isinstance(src, str) else "", dst if isinstance(dst, str) else ""), ())
        return any(
            _same(src, s) and _same(dst, d) and conns.allows(conn.protocol, conn.port)
            for s, d, conns in candidates
        )


def _peer_key(endpoint: Endpoint) -> str | IPAddress | None:
    if isinstance(endpoint, Pod):
        return f"{endpoint.namespace}/{endpoint.name}"
    if isinstance(endpoint, External):
        return endpoint.ip
    return None


def _same(key: str | IPAddress, peer: Peer) -> bool:
    if isinstance(key, str):
        return peer == key
    return isinstance(peer, _Addresses) and key in peer


def parse_report(text: str, pod_names: Iterable[str]) -> NcaReport:
    """Read ``txt_no_fw_rules`` output; peers must be known pods, NCA's own live-simulation pods
    (``*-livesim``, ignored) or address ranges."""
    known = set(pod_names)
    lines: list[tuple[Peer, Peer, ConnSet]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        head, sep, conns = line.partition(" : ")
        src_text, arrow, dst_text = head.partition(" => ")
        if not sep or not arrow:
            raise NcaError(f"cannot read NCA output line {raw!r}")
        peers: list[Peer] = []
        for name in (src_text.strip(), dst_text.strip()):
            if name in known:
                peers.append(name)
            elif name.endswith("-livesim"):
                break
            elif (addresses := _addresses(name)) is not None:
                peers.append(addresses)
            else:
                raise NcaError(f"NCA output names an endpoint we did not give it: {name!r} in {raw!r}")
        if len(peers) == 2:
            lines.append((peers[0], peers[1], parse_connections(conns, raw)))
    return NcaReport(tuple(lines), text)


# --------------------------------------------------------------------------------------------
# running


def run_nca(
    nca: str,
    policies: Sequence[Mapping[str, Any]],
    pods: Sequence[Pod],
    workdir: Path,
) -> NcaReport:
    """Write the inputs under ``workdir``, run NCA's connectivity query, and parse its answer."""
    policy_dir = workdir / "policies"
    policy_dir.mkdir(parents=True, exist_ok=True)
    for i, body in enumerate(policies):
        (policy_dir / f"policy-{i:03d}.yaml").write_text(dump(nca_compatible(body, pods)))
    pods_file, ns_file, out_file = workdir / "pods.yaml", workdir / "namespaces.yaml", workdir / "nca-output.txt"
    pods_file.write_text(dump_all([pod_list(pods)]))
    ns_file.write_text(dump_all([namespace_list(pods)]))
    cmd = [nca, "--connectivity", str(policy_dir), "--pod_list", str(pods_file), "--ns_list", str(ns_file),
           "--output_format", "txt_no_fw_rules", "--output_endpoints", "pods", "--print_ipv6",
           "--file_out", str(out_file)]
    _run(cmd, workdir, [out_file])
    return parse_report(out_file.read_text(), (f"{p.namespace}/{p.name}" for p in pods))


def _run(cmd: Sequence[str], workdir: Path, outputs: Sequence[Path], refuse: str | None = None) -> None:
    """Run NCA; raise NcaError unless it succeeded, wrote ``outputs`` and warned of nothing that changes its answer."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, cwd=workdir,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise NcaError(f"NCA did not finish in {TIMEOUT_SECONDS}s: {' '.join(cmd)}") from exc
    transcript = f"$ {' '.join(cmd)}\nexit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    if proc.returncode != 0 or not all(f.is_file() for f in outputs):
        raise NcaError(f"NCA failed:\n{transcript}")
    # NCA lints selectors that select nothing or everything in *this* inventory, and named ports no
    # destination defines (they match nothing, as in Kubernetes): harmless.  It also says so when it
    # over-approximates or skips what it does not support: refuse those answers
    problems = [ln for ln in (proc.stdout + proc.stderr).splitlines()
                if (re.search(r"error|exception|traceback|approximat|not (yet )?supported|ignor|skip", ln, re.I)
                    or (refuse is not None and re.search(refuse, ln)))
                and not _BENIGN.search(ln)]
    if problems:
        raise NcaError("NCA reported problems with its inputs:\n" + "\n".join(problems) + f"\n\n{transcript}")


def run_nca_scheme(
    nca: str,
    configs: Mapping[str, Sequence[Mapping[str, Any]]],
    pods: Sequence[Pod],
    workdir: Path,
    *,
    endpoints: Sequence[Mapping[str, Any]] = (),
    refuse: str | None = None,
) -> dict[str, NcaReport]:
    """Several policy sets on one inventory in one NCA process: a scheme file (``nca --scheme``) with one
    network config and one connectivity query per set, reported like :func:`run_nca`.  Policies are used as
    given (no :func:`nca_compatible`); ``endpoints`` are more items for the pod list (Calico
    ``NetworkSet``/``GlobalNetworkSet``, which NCA reads as endpoints); ``refuse`` is a regular expression of
    further NCA warnings that make the answers unusable."""
    pods_file, ns_file, scheme_file = workdir / "pods.yaml", workdir / "namespaces.yaml", workdir / "scheme.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    endpoint_list = pod_list(pods)
    endpoint_list["items"] += [dict(e) for e in endpoints]
    # JSON is YAML to NCA's loader (PyYAML), and much faster to write than our block-style YAML
    pods_file.write_text(json.dumps(endpoint_list))
    ns_file.write_text(json.dumps(namespace_list(pods)))
    network_configs, queries, outputs = [], [], {}
    for i, (name, policies) in enumerate(configs.items()):
        policy_dir = workdir / f"config-{i:03d}"
        policy_dir.mkdir()
        for j, body in enumerate(policies):
            (policy_dir / f"policy-{j:03d}.yaml").write_text(json.dumps(body))
        outputs[name] = workdir / f"nca-output-{i:03d}.txt"
        network_configs.append({"name": f"config-{i:03d}", "networkPolicyList": [str(policy_dir)]})
        queries.append({"name": f"connectivity-{i:03d}", "connectivityMap": [f"config-{i:03d}"],
                        "outputConfiguration": {"outputFormat": "txt_no_fw_rules", "outputEndpoints": "pods",
                                                "excludeIPv6Range": False, "outputPath": str(outputs[name])}})
    scheme_file.write_text(json.dumps({"namespaceList": str(ns_file), "podList": str(pods_file),
                                 "networkConfigList": network_configs, "queries": queries}))
    _run([nca, "--scheme", str(scheme_file)], workdir, list(outputs.values()), refuse)
    names = [f"{p.namespace}/{p.name}" for p in pods]
    return {name: parse_report(out.read_text(), names) for name, out in outputs.items()}

"""A static simulator of what an engine enforces: manifests + an inventory -> verdicts.

The library behind ``netpol-dsl simulate`` and ``netpol-dsl explain`` (docs/simulate.md):

* :func:`load_manifests` reads manifest files and folders (recursively, ``*.yaml``/``*.yml``,
  multi-document, ``kind: List`` expanded, kustomize ``Kustomization`` files skipped);
* :func:`make_engine` builds a :class:`SimEngine` by name from the registry (:func:`register_engine`;
  ``kubernetes`` in :mod:`netpol_dsl.simulate_kubernetes`, ``cilium`` in :mod:`netpol_dsl.simulate_cilium`,
  ``calico`` in :mod:`netpol_dsl.simulate_calico`; each also reads plain NetworkPolicy);
* :func:`load_queries` / :func:`run_queries` answer queries with ``allow``, ``drop`` or ``l7-deny``;
* :meth:`SimEngine.reachability` gives the pod-to-pod matrix, :meth:`SimEngine.explain` the
  step-by-step decision of one connection.

Every input problem raises :class:`~netpol_dsl.inventory.InputError` naming file and document.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import attrs

from netpol_dsl.endpoints import Connection, Endpoint, HttpRequest, Pod
from netpol_dsl.engines.kubernetes import Verdict
from netpol_dsl.engines.manifest import is_kustomization
from netpol_dsl.inventory import InputError, Inventory, read_documents

VerdictName = Literal["allow", "drop", "l7-deny"]
PORT_PROTOCOLS = ("TCP", "UDP", "SCTP")
ICMP_PROTOCOLS = {"ICMP": (8, 0), "ICMPv6": (128, 0)}  # default: echo request
PROTOCOLS = {p.upper(): p for p in (*PORT_PROTOCOLS, *ICMP_PROTOCOLS)}  # upper case -> canonical spelling


# --------------------------------------------------------------------------------------------
# manifests


@attrs.frozen
class Manifest:
    """One object from a manifest file; ``where`` is ``FILE: document N`` (``, item M`` in a List)."""

    where: str
    body: Mapping[str, Any] = attrs.field(eq=False)


def _manifest_files(paths: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                problems.append(f"{path}: no .yaml or .yml files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    if problems:
        raise InputError(problems)
    return files


def load_manifests(paths: Sequence[str | Path]) -> tuple[Manifest, ...]:
    """Every object of the given files and folders, in path order; raises InputError."""
    out: list[Manifest] = []
    problems: list[str] = []
    for path in _manifest_files(paths):
        try:
            documents = read_documents(path, "manifests")
        except InputError as exc:
            problems += exc.problems
            continue
        for where, doc in documents:
            if not isinstance(doc, Mapping):
                problems.append(f"{where}: expected a Kubernetes object, got {type(doc).__name__}")
            elif doc.get("kind") == "List":
                items = doc.get("items") or []
                if not isinstance(items, list):
                    problems.append(f"{where}: items: expected a list")
                    continue
                for i, item in enumerate(items, start=1):
                    if not isinstance(item, Mapping):
                        problems.append(f"{where}, item {i}: expected a Kubernetes object")
                    else:
                        out.append(Manifest(f"{where}, item {i}", item))
            elif is_kustomization(doc):
                continue  # the kustomization.yaml `netpol-dsl build` writes: known, not a policy
            else:
                out.append(Manifest(where, doc))
    if problems:
        raise InputError(problems)
    return tuple(out)


# --------------------------------------------------------------------------------------------
# queries


@attrs.frozen
class Query:
    """One question: may ``src`` open ``protocol``/``port`` to ``dst`` (and make ``http``)?

    ``src`` and ``dst`` hold every address a side resolves to (a DNS name may have several);
    ``given`` is the query exactly as written, echoed in results.
    """

    given: Any = attrs.field(eq=False)
    src: tuple[Endpoint, ...]
    dst: tuple[Endpoint, ...]
    protocol: str
    port: int  # 0 for ICMP
    icmp: tuple[int, int] | None = None
    src_port: int | None = None
    http: HttpRequest | None = None
    dns_lookup: bool = False
    lookup: str = ""  # what the client resolves: the name in `to`, or the destination as written

    def connections(self) -> list[Connection]:
        return [Connection(s, d, self.protocol, self.port, self.http)
                for s, d in itertools.product(self.src, self.dst)]


_QUERY_KEYS = frozenset({"from", "to", "port", "protocol", "icmp", "src_port", "http", "dns_lookup"})


def _endpoint(value: Any, where: str, inventory: Inventory) -> tuple[tuple[Endpoint, ...], str]:
    """An endpoint reference: ``ns/pod``, ``{ip: ...}``, ``{name: ...}`` (external) or ``{node: ...}``."""
    if isinstance(value, str):
        pod = inventory.pod(value)
        if pod is None:
            raise ValueError(f"{where}: no pod {value!r} in the inventory (write namespace/name)")
        return (pod,), value
    if not isinstance(value, Mapping) or len(value) != 1 or next(iter(value)) not in ("ip", "name", "node"):
        raise ValueError(f"{where}: expected 'namespace/pod', {{ip: ADDRESS}}, {{name: DNS_NAME}} or "
                         f"{{node: NODE}}, got {value!r}")
    key, text = next(iter(value.items()))
    if not isinstance(text, str):
        raise ValueError(f"{where}.{key}: expected a string, got {text!r}")
    if key == "ip":
        try:
            return (inventory.at_ip(ipaddress.ip_address(text)),), text
        except ValueError:
            raise ValueError(f"{where}.ip: invalid IP address {text!r}") from None
    if key == "node":
        node = inventory.node(text)
        if node is None:
            raise ValueError(f"{where}: no node {text!r} in the inventory")
        return (node,), text
    resolved = inventory.resolve(text)
    if not resolved:
        raise ValueError(f"{where}: the name {text!r} is not in the inventory's external entries")
    return resolved, text


def _port_number(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{where}: expected a port number 1-65535, got {value!r}")
    return value


def _http(value: Any, where: str) -> HttpRequest:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping with method, path, host, headers")
    unknown = sorted(str(k) for k in value if k not in ("method", "path", "host", "headers"))
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}")
    fields = {k: value.get(k, d) for k, d in (("method", "GET"), ("path", "/"), ("host", ""))}
    for k, v in fields.items():
        if not isinstance(v, str):
            raise ValueError(f"{where}.{k}: expected a string, got {v!r}")
    headers = value.get("headers") or {}
    if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError(f"{where}.headers: expected a mapping of header names to strings (quote numbers)")
    return HttpRequest(fields["method"], fields["path"], fields["host"],
                       tuple(sorted((str(k), v) for k, v in headers.items())))


def parse_query(raw: Any, where: str, inventory: Inventory) -> Query:
    """One query mapping (see docs/simulate.md); raises ValueError naming the field."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in _QUERY_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown} (known: {', '.join(sorted(_QUERY_KEYS))})")
    for key in ("from", "to"):
        if key not in raw:
            raise ValueError(f"{where}: missing {key!r}")
    src, _ = _endpoint(raw["from"], f"{where}.from", inventory)
    dst, lookup = _endpoint(raw["to"], f"{where}.to", inventory)
    protocol = raw.get("protocol", "TCP")
    if not isinstance(protocol, str) or protocol.upper() not in PROTOCOLS:
        raise ValueError(f"{where}.protocol: expected TCP, UDP, SCTP, ICMP or ICMPv6, got {protocol!r}")
    protocol = PROTOCOLS[protocol.upper()]
    icmp: tuple[int, int] | None = None
    if protocol in ICMP_PROTOCOLS:
        if "port" in raw:
            raise ValueError(f"{where}: {protocol} has no port (use icmp: {{type: T, code: C}})")
        port = 0
        icmp = ICMP_PROTOCOLS[protocol]
        if "icmp" in raw:
            spec = raw["icmp"]
            if not isinstance(spec, Mapping) or set(spec) - {"type", "code"}:
                raise ValueError(f"{where}.icmp: expected {{type: T, code: C}}")
            values = (spec.get("type", icmp[0]), spec.get("code", 0))
            if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in values):
                raise ValueError(f"{where}.icmp: type and code must be integers 0-255")
            icmp = (int(values[0]), int(values[1]))
    else:
        if "icmp" in raw:
            raise ValueError(f"{where}.icmp: only for protocol ICMP or ICMPv6")
        if "port" not in raw:
            raise ValueError(f"{where}: missing 'port' (required for {protocol})")
        port = _port_number(raw["port"], f"{where}.port")
    src_port = None if raw.get("src_port") is None else _port_number(raw["src_port"], f"{where}.src_port")
    http = None
    if raw.get("http") is not None:
        if protocol != "TCP":
            raise ValueError(f"{where}.http: HTTP needs protocol TCP")
        http = _http(raw["http"], f"{where}.http")
    dns_lookup = raw.get("dns_lookup", False)
    if not isinstance(dns_lookup, bool):
        raise ValueError(f"{where}.dns_lookup: expected true or false, got {dns_lookup!r}")
    return Query(raw, src, dst, protocol, port, icmp, src_port, http, dns_lookup, lookup)


def parse_queries(documents: Iterable[tuple[str, Any]], inventory: Inventory) -> tuple[Query, ...]:
    """The queries of ``(where, data)`` documents, in order; raises InputError listing every problem."""
    out: list[Query] = []
    problems: list[str] = []
    for where, doc in documents:
        if not isinstance(doc, Mapping) or set(doc) != {"queries"} or not isinstance(doc["queries"], list):
            problems.append(f"{where}: expected a mapping with one key, queries: [...]")
            continue
        for i, raw in enumerate(doc["queries"]):
            try:
                out.append(parse_query(raw, f"{where}: queries[{i}]", inventory))
            except ValueError as exc:
                problems.append(str(exc))
    if problems:
        raise InputError(problems)
    return tuple(out)


def load_queries(path: str | Path, inventory: Inventory) -> tuple[Query, ...]:
    return parse_queries(read_documents(Path(path), "queries"), inventory)


# --------------------------------------------------------------------------------------------
# engines


@attrs.frozen
class Decision:
    verdict: VerdictName
    explanation: tuple[str, ...]


class SimEngine(Protocol):
    """What the simulator needs from an engine (one per ``--engine`` name)."""

    name: str

    def decide(self, query: Query, conn: Connection) -> Decision:
        """The verdict on one connection of ``query`` (both ends resolved)."""
        ...

    def dns(self, client: Endpoint, lookup: str) -> Decision:
        """Whether ``client`` may resolve ``lookup`` through the cluster DNS (allow or drop)."""
        ...

    def explain(self, conn: Connection) -> list[str]:
        """The decision on ``conn``, step by step, as text lines."""
        ...

    def reachability(self, sources: Sequence[Pod], destinations: Sequence[Pod], protocol: str,
                     port: int) -> list[int]:
        """Per source, a bitset over ``destinations``: bit j set iff the connection is allowed."""
        ...


EngineFactory = Callable[[Sequence[Manifest], Inventory], SimEngine]
_ENGINES: dict[str, EngineFactory] = {}


def register_engine(name: str, factory: EngineFactory) -> None:
    """Make ``factory`` available as ``--engine name``; it raises InputError for manifests it cannot read."""
    _ENGINES[name] = factory


def engine_names() -> tuple[str, ...]:
    return tuple(sorted(_ENGINES))


def make_engine(name: str, manifests: Sequence[Manifest], inventory: Inventory) -> SimEngine:
    if name not in _ENGINES:
        raise InputError([f"unknown engine {name!r} (known: {', '.join(engine_names())})"])
    return _ENGINES[name](manifests, inventory)


# --------------------------------------------------------------------------------------------
# what the engines share


def _what(conn: Connection) -> str:
    protocol = conn.protocol.lower()
    return protocol if protocol.startswith("icmp") else f"{protocol}/{conn.port}"


def _describe(conn: Connection) -> str:
    return f"{conn.src.describe()} -> {conn.dst.describe()} {_what(conn)}"


def _provenance(source: str, where: str) -> str:
    return f"{where}; netpol-dsl source {source}" if source else where


def no_dns_pod(lookup: str) -> str:
    """The explanation of a lookup when the inventory has no cluster DNS pod."""
    return f"dns: the inventory has no cluster DNS pod (kube-system, k8s-app=kube-dns); the lookup of {lookup} fails"


def cluster_dns_lookup(evaluate: Callable[[Connection], Verdict], inventory: Inventory, client: Endpoint,
                       lookup: str) -> Decision:
    """:meth:`SimEngine.dns` of an engine without a DNS proxy: ``client`` may resolve ``lookup`` iff
    ``evaluate`` allows it to reach a cluster DNS pod on udp/53 or tcp/53."""
    servers = inventory.dns_pods()
    if not servers:
        return Decision("drop", (no_dns_pod(lookup),))
    tried = []
    for server in servers:
        for protocol in ("UDP", "TCP"):
            conn = Connection(client, server, protocol, 53)
            verdict = evaluate(conn)
            if verdict.allowed:
                return Decision("allow", (f"dns: lookup of {lookup} allowed: {_describe(conn)} is allowed",))
            tried.append(verdict.explanation[-1])
    return Decision("drop", (
        f"dns: lookup of {lookup} fails: {client.describe()} may reach no cluster DNS pod on udp/53 or tcp/53",
        *(f"dns: {line}" for line in tried),
    ))


def pairwise_reachability(sources: Sequence[Pod], destinations: Sequence[Pod], protocol: str, port: int,
                          allowed: Callable[[Connection], bool]) -> list[int]:
    """:meth:`SimEngine.reachability` by deciding every pair with ``allowed`` (ICMP: echo request unless
    a type is given as the port)."""
    if protocol in ICMP_PROTOCOLS and not port:
        port = ICMP_PROTOCOLS[protocol][0]
    rows = []
    for src in sources:
        row = 0
        for j, dst in enumerate(destinations):
            if allowed(Connection(src, dst, protocol, port)):
                row |= 1 << j
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# the registered engines, each in a module of its own (loaded on first use; they import this one)


def _kubernetes(manifests: Sequence[Manifest], inventory: Inventory) -> SimEngine:
    """``--engine kubernetes`` (netpol_dsl.simulate_kubernetes)."""
    from netpol_dsl.simulate_kubernetes import KubernetesSimulator

    return KubernetesSimulator(manifests, inventory)


register_engine("kubernetes", _kubernetes)


def _cilium(manifests: Sequence[Manifest], inventory: Inventory) -> SimEngine:
    """``--engine cilium`` (netpol_dsl.simulate_cilium, which imports this module: loaded on first use)."""
    from netpol_dsl.simulate_cilium import CiliumSimulator

    return CiliumSimulator(manifests, inventory)


register_engine("cilium", _cilium)


def _calico(manifests: Sequence[Manifest], inventory: Inventory) -> SimEngine:
    """``--engine calico`` (netpol_dsl.simulate_calico, which imports this module: loaded on first use)."""
    from netpol_dsl.simulate_calico import CalicoSimulator

    return CalicoSimulator(manifests, inventory)


register_engine("calico", _calico)


# --------------------------------------------------------------------------------------------
# answering queries


@attrs.frozen
class Result:
    query: Query
    verdict: VerdictName
    explanation: tuple[str, ...]


_SEVERITY: dict[VerdictName, int] = {"allow": 0, "l7-deny": 1, "drop": 2}


def answer(engine: SimEngine, query: Query) -> Result:
    """One query: the DNS lookup first (if asked), then every resolved connection; the worst verdict wins."""
    lines: list[str] = []
    if query.dns_lookup:
        for src in query.src:
            decision = engine.dns(src, query.lookup)
            lines += decision.explanation
            if decision.verdict != "allow":
                return Result(query, "drop", (*lines, "the connection is never attempted"))
    verdict: VerdictName = "allow"
    connections = query.connections()
    for conn in connections:
        decision = engine.decide(query, conn)
        if len(connections) > 1:
            lines.append(f"{_describe(conn)}: {decision.verdict}")
            lines += (f"  {line}" for line in decision.explanation)
        else:
            lines += decision.explanation
        if _SEVERITY[decision.verdict] > _SEVERITY[verdict]:
            verdict = decision.verdict
    return Result(query, verdict, tuple(lines))


def run_queries(engine: SimEngine, queries: Sequence[Query]) -> tuple[Result, ...]:
    return tuple(answer(engine, q) for q in queries)


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_endpoint(text: str, inventory: Inventory, where: str = "") -> tuple[Endpoint, ...]:
    """A command-line endpoint: ``ns/pod``, an IP address, ``node/NAME`` or an external DNS name."""
    if "/" in text and not text.startswith("node/"):
        value: Any = text
    elif text.startswith("node/"):
        value = {"node": text[len("node/"):]}
    else:
        value = {"ip": text} if is_ip_address(text) else {"name": text}
    try:
        return _endpoint(value, where or text, inventory)[0]
    except ValueError as exc:
        raise InputError([str(exc)]) from None


# --------------------------------------------------------------------------------------------
# reports


def results_json(engine: str, results: Sequence[Result]) -> str:
    """``{"engine": ..., "results": [{"query": <as given>, "verdict": ..., "explanation": [...]}]}``."""
    doc = {"engine": engine, "results": [
        {"query": r.query.given, "verdict": r.verdict, "explanation": list(r.explanation)} for r in results]}
    return json.dumps(doc, indent=2, default=str) + "\n"


def results_text(engine: str, results: Sequence[Result]) -> str:
    out = [f"engine: {engine}"]
    for i, r in enumerate(results, start=1):
        q = r.query
        what = f"{q.protocol.lower()}/{q.port}" if q.icmp is None else f"{q.protocol.lower()} {q.icmp[0]}/{q.icmp[1]}"
        src = ", ".join(e.describe() for e in q.src)
        dst = ", ".join(e.describe() for e in q.dst)
        out += ["", f"[{i}] {src} -> {dst} {what}: {r.verdict}", *(f"    {line}" for line in r.explanation)]
    return "\n".join(out) + "\n"


_BLOCK = 64  # destinations per cached JSON fragment
_CACHE_LIMIT = 50_000  # fragments kept; beyond that they are rendered each time (bounded memory)


def write_matrix_json(out: IO[bytes], engine: str, protocol: str, port: int | None,
                      sources: Sequence[Pod], destinations: Sequence[Pod], rows: Sequence[int]) -> None:
    """Stream ``{"engine", "port", "protocol", "matrix": {"ns/pod": {"ns/pod": "allow"|"drop"}}}``.

    One line per source.  Rows are rendered from cached 64-destination fragments, so a matrix of
    millions of cells is written without building it as Python objects.
    """
    dst_keys = [json.dumps(p.describe()).encode() for p in destinations]
    cells = [(k + b': "drop"', k + b': "allow"') for k in dst_keys]
    nblocks = (len(destinations) + _BLOCK - 1) // _BLOCK
    nbytes = nblocks * (_BLOCK // 8)
    cache: dict[tuple[int, bytes], bytes] = {}

    def fragment(block: int, bits: bytes) -> bytes:
        key = (block, bits)
        found = cache.get(key)
        if found is not None:
            return found
        value = int.from_bytes(bits, "little")
        base = block * _BLOCK
        text = b", ".join(cells[base + k][value >> k & 1] for k in range(min(_BLOCK, len(cells) - base)))
        if len(cache) < _CACHE_LIMIT:
            cache[key] = text
        return text

    head = {"engine": engine, "port": port, "protocol": protocol}
    out.write(json.dumps(head)[:-1].encode() + b', "matrix": {')
    step = _BLOCK // 8
    for i, (src, row) in enumerate(zip(sources, rows, strict=True)):
        data = row.to_bytes(nbytes, "little")
        body = b", ".join(fragment(b, data[b * step:(b + 1) * step]) for b in range(nblocks))
        out.write((b",\n  " if i else b"\n  ") + json.dumps(src.describe()).encode() + b": {" + body + b"}")
    out.write(b"\n}}\n" if sources else b"}}\n")


def matrix_text(engine: str, protocol: str, port: int | None, sources: Sequence[Pod],
                destinations: Sequence[Pod], rows: Sequence[int]) -> str:
    """A table: one row per source, one numbered column per destination (A allow, . drop)."""
    what = protocol if port is None else f"{protocol}/{port}"
    width = len(str(len(destinations)))
    out = [f"engine {engine}, {what}: may the pod of each row connect to the pod of each column? "
           "(A allow, . drop)", "", "columns:"]
    out += [f"  {j:>{width}}  {p.describe()}" for j, p in enumerate(destinations, start=1)]
    name_width = max((len(p.describe()) for p in sources), default=0)
    header = " ".join(str(j).rjust(width) for j in range(1, len(destinations) + 1))
    out += ["", f"{'':<{name_width}}  {header}".rstrip()]
    table = [" ".join(("A" if byte >> k & 1 else ".").rjust(width) for k in range(8)) for byte in range(256)]
    nbytes = (len(destinations) + 7) // 8
    length = (width + 1) * len(destinations) - 1
    for src, row in zip(sources, rows, strict=True):
        cells = " ".join(table[b] for b in row.to_bytes(nbytes, "little"))[:length]
        out.append(f"{src.describe():<{name_width}}  {cells}".rstrip())
    return "\n".join(out) + "\n"

"""network-config-analyzer (NCA) as an independent second opinion on the calico target's output.

For every example that compiles for ``calico`` and for generated intents
(:func:`tests.strategies.policies`): compile, synthesize a representative inventory
(:mod:`netpol_dsl.synth`), ask NCA which connections our manifests allow between those pods and
external addresses, and require its verdict to equal the reference semantics
(:func:`netpol_dsl.ir.intent.decide`) on every such connection.  Nodes and the API server are not
modelled by NCA and are left out (as in ``test_kubernetes_nca.py``).

NCA 2.1.0 knows Calico before tiers (see ``tests/engines/test_calico_nca.py``): one list of
policies ordered by ``order``, first matching rule decides, a ``Pass`` rule goes straight to the
profiles (allow), an endpoint that some policy selects and no rule matches is denied, an endpoint
that no policy selects is allowed everything.  Our output is tiered, so it is *translated* into an
equivalent NCA input.  Every step below is exact for the output of this target; what the
translation relies on is checked (:class:`Untranslatable` otherwise), never assumed.

**Order.**  Calico evaluates tiers by (``order``, name) and, inside a tier, policies by
(``order``, name).  The translation lists every policy of our tiers in that order, then the
policies of Calico's ``default`` tier (order 1 000 000, above every tier we may emit: NPD017), and
gives them NCA orders 1, 2, 3, ... so that NCA keeps exactly that sequence (NCA breaks ties by file
order, so no two orders are equal).  The ``tier`` field (a syntax error for NCA) is dropped, as are
the Tier objects.  Ties between policies of one tier and ``order`` are harmless and checked to
be so: all their rules have one action, and the first match among rules of one action is their
union.

**Tier ends.**  Each of our Tiers must have ``defaultAction: Pass``: a packet that no rule of the
tier matches goes on to the next tier, which in one list is simply the next policy, so nothing needs
to be written for it.  Calico's ``default`` tier (``defaultAction: Deny``) holds only our rule-less
default-deny policies (checked): an endpoint they select for a direction meets the end-of-tier deny.
Each becomes the same policy with one rule ``{action: Deny}`` (everything) per type.

**Profiles.**  Whatever passes out of the last tier that applies, and whatever no policy selects,
reaches the endpoint's profiles, which for Kubernetes pods allow everything.  NCA, however, denies a
packet to or from an endpoint that *some* policy selects when no rule of any policy matched
(``K8sCalicoNetworkLayer``: only non-captured peers get the default allow), where Calico would pass
out of our tier (``defaultAction: Pass``) and allow.  So the list ends with one GlobalNetworkPolicy
that allows everything both ways for every pod (selector ``projectcalico.org/orchestrator ==
'k8s'``, the pods' profiles); ``test_the_final_allow_is_needed`` shows the difference it makes.

**Pass rules.**  In our tiers a Pass rule means "skip the rest of this tier", which one NCA list
cannot say (NCA's Pass skips *everything* after it and allows).  Our output has a fixed shape inside
each tier, which the translation checks when there are Pass rules: deny policies, then pass policies,
then allow policies (orders 100, 200, 300; without Pass rules the list is exact whatever the order,
so a wrong order shows up as a disagreement).  So for one direction a tier *T* decides deny if a deny
rule matches; else
it passes if a pass rule matches; else it allows if an allow rule matches; else the walk goes on.
Writing ``Q`` for the set of tiers whose pass rules match a packet (whether reached or not), the
verdict equals that of the list *without any pass policy and without the allow policies of the
tiers in* ``Q``: a tier outside ``Q`` behaves the same either way, and a tier in ``Q`` either denies
first (the deny policies are kept) or does not decide, as a passed packet.  ``Q`` depends on the
direction, and NCA only reports the conjunction of both directions, so when the output has Pass
rules every NCA run covers one direction (the policies keep only that direction's type and rules;
the other direction is then unrestricted): for each tier with pass rules and each direction one run
of just those pass policies with ``Pass`` read as ``Deny`` (plus the final allow) tells which packets
they match, and then one run per direction and per ``Q`` that occurs gives the verdict.  A connection
is allowed when its ingress and its egress verdicts both allow it.  Outputs without Pass rules
need a single run with both directions.  The runs of one comparison share one NCA process (a scheme
file with one network config and one connectivity query per run; two processes with Pass rules).

**Rules.**  Rules may use ``action``, ``protocol``, ``source`` and ``destination`` with ``selector``,
``namespaceSelector``, ``nets``, ``notNets`` and ``ports`` only, which is what the target emits;
anything else is refused, so NCA's known departures from Calico (``notSelector``, ICMP types,
``notProtocol``: ``tests/engines/test_calico_nca.py``) cannot arise, and NCA warnings that it read a
rule differently (mixed nets and selectors, conflicting fields) fail the comparison.

**Selectors.**  NCA reads only single-quoted values made of ``[A-Za-z0-9_.-/]``; our selectors
double-quote every value (single quotes only for values that contain ``"``).  Every ``"value"`` is
rewritten as ``'value'``, the same string; a value NCA could not read is refused.  Calico's automatic
labels are given to the NCA endpoints instead of rewriting the selectors: every pod gets
``projectcalico.org/orchestrator: k8s``, ``projectcalico.org/namespace: <namespace>`` and
``projectcalico.org/serviceaccount: <account>``, every namespace ``projectcalico.org/name: <name>``,
which is what Calico puts on the workload endpoints and the namespace profiles.  The synthesized
inventory never uses ``projectcalico.org/`` labels itself (checked).

**Network sets.**  NCA reads ``GlobalNetworkSet`` objects as endpoints: ours go into the pod list,
unchanged, where a rule ``selector`` with ``namespaceSelector: global()`` finds them by label.  NCA
identifies an address block by its addresses (``IpBlock.__eq__``/``__hash__`` compare intervals), so
two sets with the same addresses become one endpoint with the labels of only one of them: of sets with
equal addresses only the first by name is kept, and a rule selecting another of them (``label ==
"name"``, the form we emit; others are refused) selects the kept one instead, which matches exactly
the same addresses.

**Addresses.**  NCA compares ``nets`` (and network sets) with external addresses only, while Calico
compares them with pod addresses too; the comparison is only sound if no ``nets`` (minus ``notNets``)
and no network set of the output contains a synthesized pod address, which is checked (the target
carves the declared cluster CIDRs out, and the synthesized pods use the first declared pod CIDR).

Not translated (refused): HTTP rules (``calico.alp``), staged kinds, selectors other than the
generated ones; none occurs with the default options.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import math
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

import netpol_dsl as n
from netpol_dsl.compiler import compile_program
from netpol_dsl.diagnostics import Code, CompileError
from netpol_dsl.endpoints import Connection, Pod
from netpol_dsl.ir.intent import decide
from netpol_dsl.ir.lower import lower
from netpol_dsl.ir.program import Program
from netpol_dsl.loader import load
from netpol_dsl.synth import connections, representative_endpoints
from tests.strategies import policies
from tests.support.nca import NcaReport, find_nca, run_nca_scheme

NCA = find_nca()
pytestmark = pytest.mark.skipif(NCA is None, reason="network-config-analyzer (nca) is not installed")

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(p for p in EXAMPLES_DIR.glob("*.py") if not p.name.startswith("_"))
LOADER_FAILURES = {Code.NPD101, Code.NPD102, Code.NPD103, Code.NPD104}

CALICO = "projectcalico.org/v3"
DEFAULT_TIER = "default"
DEFAULT_TIER_ORDER = 1_000_000
ORCHESTRATOR = "projectcalico.org/orchestrator"  # Calico's automatic labels (on workload endpoints)
NAMESPACE = "projectcalico.org/namespace"
SERVICE_ACCOUNT = "projectcalico.org/serviceaccount"
NAMESPACE_NAME = "projectcalico.org/name"  # on namespace profiles, for namespaceSelector
DIRECTIONS = ("Ingress", "Egress")
FIELDS = {"Ingress": "ingress", "Egress": "egress"}
# NCA warnings that mean it did not read a rule as Calico does (the runner also refuses errors,
# over-approximations and anything NCA says it ignores)
REFUSE = r"Mixing ip-based|notICMP has no effect|notProtocol field has no effect|conflicting|types is missing"
_VALUE = re.compile(r"\"([^\"']*)\"")
_NCA_VALUE = re.compile(r"[\w.\-/]+")
_SPEC_KEYS = {"tier", "order", "selector", "namespaceSelector", "types", "ingress", "egress"}
_RULE_KEYS = {"action", "protocol", "source", "destination"}
_ENTITY_KEYS = {"selector", "namespaceSelector", "nets", "notNets", "ports"}
_ACTION_RANK = {"Deny": 0, "Pass": 1, "Allow": 2}
SHOP = n.namespace("ns1")  # for the hand-written intents below
WEB, API = SHOP.pods(app="web").named("web"), SHOP.pods(app="api").named("api")


class Untranslatable(Exception):
    """The output is not of the shape the translation is exact for."""


# --------------------------------------------------------------------------------------------
# translation


def single_quotes(selector: str) -> str:
    """``selector`` with every double-quoted value single-quoted (the same string; NCA reads only these)."""
    if "'" in selector:
        raise Untranslatable(f"selector {selector!r} single-quotes a value (it has a double quote): NCA cannot read it")
    out = _VALUE.sub(lambda m: f"'{m.group(1)}'", selector)
    if '"' in out:
        raise Untranslatable(f"selector {selector!r}: unbalanced quotes")
    for value in re.findall(r"'([^']*)'", out):
        if not _NCA_VALUE.fullmatch(value):
            raise Untranslatable(f"selector {selector!r}: NCA cannot read the value {value!r}")
    return out


def _entity(entity: Mapping[str, Any]) -> dict[str, Any]:
    if set(entity) - _ENTITY_KEYS:
        raise Untranslatable(f"rule side with {sorted(set(entity) - _ENTITY_KEYS)}: {dict(entity)}")
    out = copy.deepcopy(dict(entity))
    for key in ("selector", "namespaceSelector"):
        if key in out:
            out[key] = single_quotes(out[key])
    return out


def _rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    if set(rule) - _RULE_KEYS:
        raise Untranslatable(f"rule with {sorted(set(rule) - _RULE_KEYS)} (not translated): {dict(rule)}")
    out = dict(rule)
    for side in ("source", "destination"):
        if side in out:
            out[side] = _entity(out[side])
    return out


@attrs.frozen
class Placed:
    """One of our policies, where Calico evaluates it, as an NCA document (without ``order``)."""

    tier: str
    tier_order: int
    order: float
    ident: str  # kind/namespace/name, for Calico's tie-break by name
    action: str | None  # the action of every rule; None without rules
    body: dict[str, Any] = attrs.field(eq=False)

    @property
    def key(self) -> tuple[int, str, float, str]:
        return (self.tier_order, self.tier, self.order, self.ident)


@attrs.frozen
class Translation:
    policies: tuple[Placed, ...]  # in Calico's evaluation order
    network_sets: tuple[dict[str, Any], ...] = attrs.field(eq=False)

    @property
    def pass_tiers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.tier for p in self.policies if p.action == "Pass"))


def translate(manifests: Iterable[Mapping[str, Any]]) -> Translation:
    """Our calico output, in Calico's evaluation order, as NCA documents (see the module docstring)."""
    docs = [dict(m) for m in manifests]
    tiers: dict[str, int] = {}
    for doc in docs:
        if doc.get("kind") == "Tier":
            spec = doc["spec"]
            if spec.get("defaultAction") != "Pass":
                raise Untranslatable(f"Tier {doc['metadata']['name']} has defaultAction {spec.get('defaultAction')!r}")
            tiers[doc["metadata"]["name"]] = int(spec["order"])
    if DEFAULT_TIER in tiers or any(o >= DEFAULT_TIER_ORDER for o in tiers.values()):
        raise Untranslatable(f"a tier is not before Calico's default tier: {tiers}")
    placed: list[Placed] = []
    network_sets: list[dict[str, Any]] = []
    for doc in docs:
        kind = doc.get("kind")
        if kind == "Tier":
            continue
        if kind == "GlobalNetworkSet":
            network_sets.append(copy.deepcopy(doc))
            continue
        if kind not in ("NetworkPolicy", "GlobalNetworkPolicy") or doc.get("apiVersion") != CALICO:
            raise Untranslatable(f"cannot translate {doc.get('apiVersion')} {kind}")
        placed.append(_place(doc, tiers))
    placed.sort(key=lambda p: p.key)
    _check_shape(placed)
    kept = _merge_equal_sets(placed, network_sets)
    return Translation(tuple(placed), tuple(kept))


def _addresses(network_set: Mapping[str, Any]) -> tuple[str, ...]:
    """The set's addresses, canonically (collapsed CIDRs per family)."""
    nets = [ipaddress.ip_network(c) for c in network_set["spec"].get("nets") or ()]
    v4 = ipaddress.collapse_addresses(n for n in nets if isinstance(n, ipaddress.IPv4Network))
    v6 = ipaddress.collapse_addresses(n for n in nets if isinstance(n, ipaddress.IPv6Network))
    return (*map(str, v4), *map(str, v6))


def _merge_equal_sets(placed: Sequence[Placed], network_sets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep one GlobalNetworkSet per set of addresses, and point the rules that select another one at it
    (in place): NCA identifies address blocks by their addresses and would merge them, labels and all."""
    by_addresses: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for ns in sorted(network_sets, key=lambda ns: str(ns["metadata"]["name"])):
        by_addresses.setdefault(_addresses(ns), []).append(ns)
    first = {id(ns): group[0] for group in by_addresses.values() for ns in group}
    if all(first[id(ns)] is ns for ns in network_sets):
        return list(network_sets)
    for p in placed:
        for d in DIRECTIONS:
            for rule in p.body["spec"].get(FIELDS[d]) or ():
                for side in ("source", "destination"):
                    entity = rule.get(side) or {}
                    if entity.get("namespaceSelector") == "global()":
                        entity["selector"] = _set_selector(entity["selector"], network_sets, first)
    return [group[0] for group in by_addresses.values()]


def _set_selector(selector: str, network_sets: Sequence[dict[str, Any]], first: Mapping[int, dict[str, Any]]) -> str:
    """``key == 'value'`` selecting one network set, rewritten to select the first set with its addresses."""
    match = re.fullmatch(r"([\w.\-/]+) == '([\w.\-/]+)'", selector)
    if match is None:
        raise Untranslatable(f"network sets with equal nets, selected by {selector!r} (not translated)")
    key, value = match.groups()
    chosen = [ns for ns in network_sets if ns["metadata"].get("labels", {}).get(key) == value]
    if not chosen:
        return selector
    target = first[id(chosen[0])]
    if any(first[id(ns)] is not target for ns in chosen):
        raise Untranslatable(f"{selector!r} selects network sets with different addresses: {chosen}")
    new_value = target["metadata"].get("labels", {}).get(key)
    if new_value is None or sum(ns["metadata"].get("labels", {}).get(key) == new_value for ns in network_sets) != 1:
        raise Untranslatable(f"network set {target['metadata']['name']} has no label {key} of its own")
    return f"{key} == '{new_value}'"


def _place(doc: Mapping[str, Any], tiers: Mapping[str, int]) -> Placed:
    spec = doc["spec"]
    if set(spec) - _SPEC_KEYS:
        raise Untranslatable(f"spec with {sorted(set(spec) - _SPEC_KEYS)}: {doc['metadata']['name']}")
    tier = spec.get("tier", DEFAULT_TIER)
    if tier != DEFAULT_TIER and tier not in tiers:
        raise Untranslatable(f"policy {doc['metadata']['name']} is in the undeclared tier {tier!r}")
    types = list(spec["types"])
    if not types or set(types) - set(DIRECTIONS):
        raise Untranslatable(f"policy {doc['metadata']['name']} has types {types}")
    rules = {d: [_rule(r) for r in spec.get(FIELDS[d]) or ()] for d in DIRECTIONS}
    actions = {r["action"] for rs in rules.values() for r in rs}
    if len(actions) > 1 or actions - set(_ACTION_RANK):
        raise Untranslatable(f"policy {doc['metadata']['name']} has the actions {sorted(actions)}")
    action = next(iter(actions), None)
    metadata = {k: doc["metadata"][k] for k in ("name", "namespace") if k in doc["metadata"]}
    new_spec: dict[str, Any] = {"selector": single_quotes(spec.get("selector", "all()"))}
    if "namespaceSelector" in spec:
        new_spec["namespaceSelector"] = single_quotes(spec["namespaceSelector"])
    new_spec["types"] = types
    if tier == DEFAULT_TIER:
        if action is not None:
            raise Untranslatable(f"default-tier policy {metadata['name']} has rules")
        for d in types:  # Calico's end-of-tier deny of the default tier, written out
            new_spec[FIELDS[d]] = [{"action": "Deny"}]
    else:
        for d in types:
            if rules[d]:
                new_spec[FIELDS[d]] = rules[d]
    for d in DIRECTIONS:
        if spec.get(FIELDS[d]) and d not in types:
            raise Untranslatable(f"policy {metadata['name']} has {FIELDS[d]} rules without the type")
    ident = f"{doc['kind']}/{metadata.get('namespace', '')}/{metadata['name']}"
    order = float(spec["order"]) if "order" in spec else math.inf  # Calico: no order is last in the tier
    return Placed(tier, DEFAULT_TIER_ORDER if tier == DEFAULT_TIER else tiers[tier], order, ident, action,
                  {"apiVersion": CALICO, "kind": doc["kind"], "metadata": metadata, "spec": new_spec})


def _check_shape(placed: Sequence[Placed]) -> None:
    """Ties of (tier, order) share one action; with Pass rules, a tier has deny policies first, then pass,
    then allow (only the decomposition of Pass needs that: without Pass, the order is whatever it is)."""
    by_order: dict[tuple[str, float], set[str]] = {}
    ranks: dict[str, list[int]] = {}
    for p in placed:
        if p.action is None:
            continue
        by_order.setdefault((p.tier, p.order), set()).add(p.action)
        ranks.setdefault(p.tier, []).append(_ACTION_RANK[p.action])
    mixed = {k: v for k, v in by_order.items() if len(v) > 1}
    if mixed:
        raise Untranslatable(f"policies of one tier and order with different actions: {mixed}")
    if any(p.action == "Pass" for p in placed):
        unordered = {t: [(p.action, p.order) for p in placed if p.tier == t and p.action]
                     for t, r in ranks.items() if r != sorted(r)}
        if unordered:
            raise Untranslatable(f"with Pass rules, tiers must order deny, then pass, then allow policies: {unordered}"
                                 " (orders by policy)")


def final_allow(directions: Sequence[str] = DIRECTIONS) -> dict[str, Any]:
    """The pods' profiles: allow everything to and from every pod (last in every list)."""
    spec: dict[str, Any] = {"selector": f"{ORCHESTRATOR} == 'k8s'", "types": list(directions)}
    for d in directions:
        spec[FIELDS[d]] = [{"action": "Allow"}]
    return {"apiVersion": CALICO, "kind": "GlobalNetworkPolicy", "metadata": {"name": "nca-translation.profiles"},
            "spec": spec}


def _only(body: Mapping[str, Any], direction: str | None) -> dict[str, Any] | None:
    """``body`` restricted to one direction (None when it has no such type); all of it for None."""
    out = copy.deepcopy(dict(body))
    if direction is None:
        return out
    spec = out["spec"]
    if direction not in spec["types"]:
        return None
    spec["types"] = [direction]
    for d in DIRECTIONS:
        if d != direction:
            spec.pop(FIELDS[d], None)
    return out


def _numbered(bodies: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, body in enumerate(bodies, start=1):
        body["spec"] = {"order": i, **body["spec"]}
        out.append(body)
    return out


def flat_list(tr: Translation, *, direction: str | None = None, without_pass: bool = False,
              without_allows: Iterable[str] = (), profiles: bool = True) -> list[dict[str, Any]]:
    """One NCA list: our policies in order (minus pass policies and the allow policies of some tiers, if
    asked), then the profiles' allow."""
    dropped = set(without_allows)
    bodies = [b for p in tr.policies
              if not (without_pass and p.action == "Pass") and not (p.action == "Allow" and p.tier in dropped)
              if (b := _only(p.body, direction)) is not None]
    if profiles:
        bodies.append(final_allow([direction] if direction else DIRECTIONS))
    return _numbered(bodies)


def pass_detector(tr: Translation, tier: str, direction: str) -> list[dict[str, Any]]:
    """The pass policies of ``tier`` for one direction with Pass read as Deny, then the profiles' allow:
    NCA denies exactly what those pass rules match."""
    bodies = []
    for p in tr.policies:
        if p.tier != tier or p.action != "Pass" or (body := _only(p.body, direction)) is None:
            continue
        rules = body["spec"].get(FIELDS[direction]) or []
        body["spec"][FIELDS[direction]] = [{**r, "action": "Deny"} for r in rules]
        if not rules:
            del body["spec"][FIELDS[direction]]
        bodies.append(body)
    return _numbered([*bodies, final_allow([direction])])


# --------------------------------------------------------------------------------------------
# inventory


def nca_pods(pods: Iterable[Pod]) -> list[Pod]:
    """The pods with Calico's automatic labels (see the module docstring)."""
    out = []
    for p in pods:
        taken = [k for k in (*p.label_map, *dict(p.namespace_labels)) if k.startswith("projectcalico.org/")]
        if taken:
            raise Untranslatable(f"pod {p.describe()} already has Calico's labels {taken}")
        out.append(attrs.evolve(
            p, labels={**p.label_map, ORCHESTRATOR: "k8s", NAMESPACE: p.namespace, SERVICE_ACCOUNT: p.service_account},
            namespace_labels={**dict(p.namespace_labels), NAMESPACE_NAME: p.namespace}))
    return out


def nets_matching_pods(tr: Translation, pods: Iterable[Pod]) -> list[str]:
    """Rules whose ``nets`` (minus ``notNets``), and network sets whose ``nets``, contain a pod address:
    Calico matches the pod there, NCA does not."""
    ips = [(p, p.ip) for p in pods if p.ip is not None]
    found = [f"{s['kind']} {s['metadata']['name']} contains {pod.describe()} ({ip})"
             for s in tr.network_sets for pod, ip in ips
             if any(ip in ipaddress.ip_network(c) for c in s["spec"].get("nets") or ())]
    for placed in tr.policies:
        spec = placed.body["spec"]
        for d in DIRECTIONS:
            for rule in spec.get(FIELDS[d]) or ():
                for side in ("source", "destination"):
                    entity = rule.get(side) or {}
                    nets = [ipaddress.ip_network(c) for c in entity.get("nets") or ()]
                    not_nets = [ipaddress.ip_network(c) for c in entity.get("notNets") or ()]
                    found += [f"{placed.ident} {FIELDS[d]} {side} {entity} contains {pod.describe()} ({ip})"
                              for pod, ip in ips
                              if any(ip in net for net in nets) and not any(ip in net for net in not_nets)]
    return found


# --------------------------------------------------------------------------------------------
# running NCA


@attrs.frozen
class Verdicts:
    """NCA's verdicts through the translation, and how they were obtained."""

    allowed: Callable[[Connection], bool | None]
    runs: int
    pass_tiers: tuple[str, ...]


def _run(configs: Mapping[str, list[dict[str, Any]]], tr: Translation, pods: Sequence[Pod],
         workdir: Path) -> dict[str, NcaReport]:
    assert NCA is not None
    return run_nca_scheme(NCA, configs, pods, workdir, endpoints=tr.network_sets, refuse=REFUSE)


def nca_verdicts(tr: Translation, pods: Sequence[Pod], conns: Sequence[Connection], workdir: Path, *,
                 profiles: bool = True, naive_pass: bool = False) -> Verdicts:
    """NCA's verdicts on our output ``tr`` (the module docstring says how); ``profiles=False`` leaves out
    the final allow and ``naive_pass=True`` keeps Pass rules in one list, both only to show they matter."""
    pods = nca_pods(pods)
    if not tr.pass_tiers or naive_pass:
        report = _run({"flat": flat_list(tr, profiles=profiles)}, tr, pods, workdir)["flat"]
        return Verdicts(report.allowed, 1, tr.pass_tiers)
    detected = _run({f"{t} {d}": pass_detector(tr, t, d) for t in tr.pass_tiers for d in DIRECTIONS},
                    tr, pods, workdir / "pass-rules")

    @functools.cache
    def passed(conn: Connection, direction: str) -> frozenset[str] | None:
        verdicts = {t: detected[f"{t} {direction}"].allowed(conn) for t in tr.pass_tiers}
        if None in verdicts.values():
            return None
        return frozenset(t for t, allowed in verdicts.items() if not allowed)

    patterns = {(d, q) for c in conns for d in DIRECTIONS if (q := passed(c, d)) is not None}
    names = {dq: f"{dq[0]} without the allows of {sorted(dq[1])}" for dq in patterns}
    reports = _run({names[(d, q)]: flat_list(tr, direction=d, without_pass=True, without_allows=q, profiles=profiles)
                    for d, q in patterns}, tr, pods, workdir / "verdicts")

    def allowed(conn: Connection) -> bool | None:
        verdicts = []
        for d in DIRECTIONS:
            q = passed(conn, d)
            if q is None:
                return None
            verdicts.append(reports[names[(d, q)]].allowed(conn))
        return None if None in verdicts else all(verdicts)

    return Verdicts(allowed, len(detected) + len(patterns), tr.pass_tiers)


@attrs.frozen
class Comparison:
    compared: int
    allowed: int
    mismatches: tuple[str, ...]
    runs: int
    pass_tiers: tuple[str, ...]


def compare(program: Program, manifests: Sequence[Mapping[str, Any]], workdir: Path, *, profiles: bool = True,
            naive_pass: bool = False) -> Comparison:
    """NCA (through the translation) against the intent on the synthesized inventory of ``program``."""
    endpoints = representative_endpoints(program)
    pods = [e for e in endpoints if isinstance(e, Pod)]
    conns = connections(endpoints, program)
    tr = translate(manifests)
    hits = nets_matching_pods(tr, pods)
    assert not hits, "Calico's nets match pod addresses here, NCA's do not:\n" + "\n".join(hits)
    verdicts = nca_verdicts(tr, pods, conns, workdir, profiles=profiles, naive_pass=naive_pass)
    compared = allowed = 0
    mismatches = []
    for conn in conns:
        verdict = verdicts.allowed(conn)
        if verdict is None:
            continue
        compared += 1
        allowed += verdict
        intent = decide(program, conn)
        if verdict != intent.allowed:
            mismatches.append(f"{conn.describe()}: nca={'allow' if verdict else 'deny'} "
                              f"intent={'allow' if intent.allowed else 'deny'} ({intent.reason})")
    return Comparison(compared, allowed, tuple(mismatches), verdicts.runs, verdicts.pass_tiers)


def _compile(policy: n.Policy) -> tuple[Program, list[dict[str, Any]]] | None:
    program = lower(policy)
    try:
        output = compile_program(program, "calico")
    except CompileError:
        return None
    return program, [copy.deepcopy(dict(m.body)) for m in output.manifests]


def _assert_agrees(result: Comparison, what: str, *, both_ways: bool = True) -> None:
    assert result.compared, f"vacuous comparison for {what}"
    if both_ways:  # guards against a translation that loses policies, or all of them
        assert 0 < result.allowed < result.compared, f"NCA allows all or nothing for {what}"
    assert not result.mismatches, (
        f"{len(result.mismatches)} of {result.compared} connections differ between NCA and intent for {what} "
        f"({result.runs} NCA runs, pass tiers {list(result.pass_tiers)}):\n" + "\n".join(result.mismatches[:40]))


# --------------------------------------------------------------------------------------------
# the translation itself


def test_selectors_are_single_quoted() -> None:
    assert single_quotes('projectcalico.org/orchestrator == "k8s" && app in {"a", "b"} && q != "true"') == (
        "projectcalico.org/orchestrator == 'k8s' && app in {'a', 'b'} && q != 'true'")
    assert single_quotes("has(app) && !has(q)") == "has(app) && !has(q)"
    for unreadable in ("app == 'a\"b'", 'app == "a b"', 'app == ""'):
        with pytest.raises(Untranslatable):
            single_quotes(unreadable)


def _tier(name: str, order: int, default_action: str = "Pass") -> dict[str, Any]:
    return {"apiVersion": CALICO, "kind": "Tier", "metadata": {"name": name},
            "spec": {"order": order, "defaultAction": default_action}}


def _gnp(name: str, tier: str, order: int, action: str) -> dict[str, Any]:
    return {"apiVersion": CALICO, "kind": "GlobalNetworkPolicy", "metadata": {"name": name},
            "spec": {"tier": tier, "order": order, "selector": "all()", "types": ["Ingress"],
                     "ingress": [{"action": action}]}}


def test_the_translation_refuses_what_it_is_not_exact_for() -> None:
    tier = _tier("t", 1)
    translate([tier, _gnp("t.d", "t", 100, "Deny"), _gnp("t.p", "t", 200, "Pass"), _gnp("t.a", "t", 300, "Allow")])
    with pytest.raises(Untranslatable, match="deny, then pass"):
        translate([tier, _gnp("t.a", "t", 100, "Allow"), _gnp("t.p", "t", 200, "Pass")])
    with pytest.raises(Untranslatable, match="different actions"):
        translate([tier, _gnp("t.a", "t", 100, "Allow"), _gnp("t.d", "t", 100, "Deny")])
    with pytest.raises(Untranslatable, match="defaultAction"):
        translate([_tier("t", 1, "Deny")])
    with pytest.raises(Untranslatable, match="has rules"):
        translate([_gnp("default-deny", "default", 1000, "Deny")])
    with pytest.raises(Untranslatable, match="http"):
        translate([tier, {**_gnp("t.a", "t", 300, "Allow"), "spec": {
            "tier": "t", "order": 300, "selector": "all()", "types": ["Ingress"],
            "ingress": [{"action": "Allow", "http": {"methods": ["GET"]}}]}}])


def _set(name: str, *nets: str) -> dict[str, Any]:
    return {"apiVersion": CALICO, "kind": "GlobalNetworkSet",
            "metadata": {"name": name, "labels": {"netpol-dsl.dev/network-set": name}}, "spec": {"nets": list(nets)}}


def test_network_sets_with_equal_addresses_are_merged() -> None:
    def selecting(name: str) -> dict[str, Any]:
        return {"selector": f'netpol-dsl.dev/network-set == "{name}"', "namespaceSelector": "global()"}

    policy = {**_gnp("t.a", "t", 300, "Allow"), "spec": {
        "tier": "t", "order": 300, "selector": "all()", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "source": selecting(s)} for s in ("b", "a", "c")]}}
    tr = translate([_tier("t", 1), policy, _set("b", "10.0.0.0/25", "10.0.0.128/25"), _set("a", "10.0.0.0/24"),
                    _set("c", "10.0.0.0/24", "2001:db8::/32")])
    assert [ns["metadata"]["name"] for ns in tr.network_sets] == ["a", "c"]
    assert [r["source"]["selector"] for r in tr.policies[0].body["spec"]["ingress"]] == [
        "netpol-dsl.dev/network-set == 'a'", "netpol-dsl.dev/network-set == 'a'", "netpol-dsl.dev/network-set == 'c'"]


def test_tiers_become_one_ordered_list() -> None:
    docs = [
        _tier("late", 300), _tier("early", 100),
        _gnp("late.a", "late", 300, "Allow"), _gnp("early.a", "early", 300, "Allow"),
        _gnp("early.d", "early", 100, "Deny"),
        {"apiVersion": CALICO, "kind": "NetworkPolicy", "metadata": {"name": "default-deny", "namespace": "ns1"},
         "spec": {"tier": "default", "order": 1000, "selector": "all()", "types": ["Ingress", "Egress"]}},
    ]
    docs_out = flat_list(translate(docs))
    assert [(d["metadata"]["name"], d["spec"]["order"]) for d in docs_out] == [
        ("early.d", 1), ("early.a", 2), ("late.a", 3), ("default-deny", 4), ("nca-translation.profiles", 5)]
    assert all("tier" not in d["spec"] for d in docs_out)
    assert docs_out[3]["spec"]["ingress"] == [{"action": "Deny"}] == docs_out[3]["spec"]["egress"]
    assert docs_out[-1]["spec"]["selector"] == "projectcalico.org/orchestrator == 'k8s'"


# --------------------------------------------------------------------------------------------
# examples and generated intents


def test_there_are_examples() -> None:
    assert EXAMPLES, f"no example modules in {EXAMPLES_DIR}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_nca_agrees_with_intent_on_examples(path: Path, tmp_path: Path) -> None:
    loaded, problems = load([str(path)])
    broken = [d for d in problems if d.code in LOADER_FAILURES]
    assert not broken, "\n".join(d.render() for d in broken)
    if problems:
        pytest.skip(f"{path.name} is rejected before any target")
    assert loaded, f"{path.name} defines no policy"
    for i, lp in enumerate(loaded):
        compiled = _compile(lp.policy)
        if compiled is None:
            pytest.skip(f"{path.name} does not compile for calico (by design)")
        program, manifests = compiled
        if _matches_icmp_types(manifests):
            pytest.skip(f"{path.name} matches ICMP types, which NCA reads differently (type 0 is every type there); "
                        "tests/targets/test_icmp.py checks them against our engine")
        _assert_agrees(compare(program, manifests, tmp_path / f"policy-{i}"), f"{program.name} ({path.name})")


def _matches_icmp_types(manifests: Sequence[Mapping[str, Any]]) -> bool:
    return any("icmp" in rule for m in manifests for d in ("ingress", "egress")
               for rule in (m.get("spec") or {}).get(d, ()))


GENERATED = 16  # each costs one or two NCA processes (about 1 s); the file stays under ~40 s


@settings(max_examples=GENERATED, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies())
def test_nca_agrees_with_intent_on_generated_policies(policy: n.Policy) -> None:
    compiled = _compile(policy)
    if compiled is None:  # entities, or what Calico Open Source cannot express: refused by design
        return
    program, manifests = compiled
    with tempfile.TemporaryDirectory(prefix="calico-nca-") as tmp:
        _assert_agrees(compare(program, manifests, Path(tmp)), f"generated policy\n{program}", both_ways=False)


def test_nca_agrees_with_intent_on_network_sets(tmp_path: Path) -> None:
    """CIDR peers as GlobalNetworkSets (the blocklist; zones of many CIDRs), which NCA reads as endpoints."""
    partners = n.cidr("198.51.100.0/24", except_=["198.51.100.128/25"]) | n.cidr("203.0.113.0/24") | n.cidr(
        "192.0.2.0/24") | n.cidr("2001:db8::/32")
    policy = n.Policy("sets", owns=[SHOP], cluster=n.cluster_info(pod_cidrs=["10.244.0.0/16"]),
                      baseline=n.baseline(default_deny="both", dns=None, blocked_cidrs=["203.0.113.128/25"]),
                      rules=[n.allow(WEB >> partners, n.tcp(443)), n.allow(partners >> API, n.tcp(8443))])
    compiled = _compile(policy)
    assert compiled is not None
    program, manifests = compiled
    assert any(m["kind"] == "GlobalNetworkSet" for m in manifests)
    _assert_agrees(compare(program, manifests, tmp_path), "sets")


# --------------------------------------------------------------------------------------------
# the harness can fail


def _example(name: str) -> tuple[Program, list[dict[str, Any]]]:
    loaded, problems = load([str(EXAMPLES_DIR / f"{name}.py")])
    assert not problems and len(loaded) == 1
    compiled = _compile(loaded[0].policy)
    assert compiled is not None
    return compiled


def test_a_widened_allow_is_caught(tmp_path: Path) -> None:
    """Drop the peer of the frontend's allow in namespace_tiers (any source, not just ingress-nginx)."""
    program, manifests = _example("namespace_tiers")
    widened = copy.deepcopy(manifests)
    (frontend,) = [m for m in widened if m["metadata"]["name"] == "application.frontend"]
    del frontend["spec"]["ingress"][0]["source"]
    result = compare(program, widened, tmp_path)
    assert result.mismatches
    assert all("nca=allow intent=deny" in m and "web-tier/" in m for m in result.mismatches), result.mismatches


def test_a_dropped_default_deny_is_caught(tmp_path: Path) -> None:
    program, manifests = _example("zero_trust")
    kept = [m for m in manifests if not (m["kind"] == "NetworkPolicy" and m["metadata"]["name"] == "default-deny"
                                         and m["metadata"]["namespace"] == "team-b")]
    assert len(kept) == len(manifests) - 1
    result = compare(program, kept, tmp_path)
    assert result.mismatches
    assert all("nca=allow intent=deny" in m and "team-b/" in m for m in result.mismatches), result.mismatches


def test_a_narrowed_deny_is_caught(tmp_path: Path) -> None:
    """quarantine: the security tier's egress deny of quarantined pods, gone."""
    program, manifests = _example("quarantine")
    narrowed = copy.deepcopy(manifests)
    for m in narrowed:
        if m["spec"].get("tier") == "security" and "Egress" in m["spec"]["types"]:
            m["spec"]["types"].remove("Egress")
            m["spec"].pop("egress", None)
    result = compare(program, [m for m in narrowed if m["spec"].get("types", True)], tmp_path)
    assert result.mismatches
    assert all("nca=allow intent=deny" in m for m in result.mismatches), result.mismatches


def test_an_allow_ordered_before_a_deny_is_caught(tmp_path: Path) -> None:
    """Within a tier deny policies must come first (order 100 < 300): swapped, the allow wins."""
    policy = n.Policy("ordered", owns=[SHOP], rules=[
        n.deny(WEB >> API, n.tcp(80), tier="application"),
        n.allow(WEB >> API, n.tcp(80, 443), tier="application"),
    ])
    compiled = _compile(policy)
    assert compiled is not None
    program, manifests = compiled
    _assert_agrees(compare(program, manifests, tmp_path / "as-compiled"), "ordered")
    swapped = copy.deepcopy(manifests)
    orders = {m["spec"].get("order") for m in swapped if m["spec"].get("tier") == "application"}
    assert orders == {100, 300}, orders
    for m in swapped:
        if m["spec"].get("tier") == "application":
            m["spec"]["order"] = 400 - m["spec"]["order"]
    result = compare(program, swapped, tmp_path / "swapped")
    assert result.mismatches
    assert all("tcp/80: nca=allow intent=deny" in m for m in result.mismatches), result.mismatches


def test_the_final_allow_is_needed(tmp_path: Path) -> None:
    """A pod that a tier policy selects and no rule matches: Calico passes it on and its profile allows;
    NCA without the final allow denies it."""
    policy = n.Policy("captured", owns=[SHOP], rules=[n.deny(WEB >> API, n.tcp(80), tier="security")])
    compiled = _compile(policy)
    assert compiled is not None
    program, manifests = compiled
    _assert_agrees(compare(program, manifests, tmp_path / "translated"), "captured")
    without = compare(program, manifests, tmp_path / "without", profiles=False)
    assert without.mismatches
    assert all("nca=deny intent=allow" in m for m in without.mismatches)


def test_pass_continues_with_the_next_tier(tmp_path: Path) -> None:
    """A pass in the security tier skips its allow there but not the platform tier's deny: one NCA list
    (whose Pass allows) gets that wrong, the per-direction decomposition does not."""
    policy = n.Policy("passing", owns=[SHOP], baseline=n.baseline(default_deny="both", dns=None), rules=[
        n.pass_(WEB >> API, tier="security"),
        n.allow(WEB >> API, tier="security"),
        n.deny(WEB >> API, n.tcp(80), tier="platform"),
        n.allow(WEB >> API, n.tcp(80, 443), tier="application"),
    ])
    compiled = _compile(policy)
    assert compiled is not None
    program, manifests = compiled
    result = compare(program, manifests, tmp_path / "exact")
    _assert_agrees(result, "passing")
    assert result.pass_tiers == ("security",)
    naive = compare(program, manifests, tmp_path / "naive", naive_pass=True)
    assert naive.mismatches
    assert all("nca=allow intent=deny" in m for m in naive.mismatches), naive.mismatches  # NCA's Pass allows
    assert any("tcp/80:" in m for m in naive.mismatches)  # even what the platform tier denies
    # without its pass policies the security tier's allow decides first, for every port: caught as well
    no_pass = [m for m in manifests if not any(r["action"] == "Pass" for d in ("ingress", "egress")
                                               for r in m["spec"].get(d) or ())]
    assert len(no_pass) == len(manifests) - 2
    dropped = compare(program, no_pass, tmp_path / "dropped")
    assert dropped.mismatches
    assert all("nca=allow intent=deny" in m for m in dropped.mismatches), dropped.mismatches
    assert any("tcp/80:" in m for m in dropped.mismatches) and any("tcp/12345:" in m for m in dropped.mismatches)

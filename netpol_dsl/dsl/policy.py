"""Rules, tiers, the baseline layer and the Policy that holds them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs
from typeguard import TypeCheckError, check_type, typechecked

from netpol_dsl import values
from netpol_dsl.diagnostics import Code, CompileError, Diagnostic, Location, caller_location, fail
from netpol_dsl.dsl.expect import Expectation
from netpol_dsl.dsl.http import HttpRule
from netpol_dsl.dsl.ports import PortSet
from netpol_dsl.dsl.zones import AnyOf, Flow, Namespace, Pods, Zone, cluster_dns
from netpol_dsl.ir.program import Action

DirectionName = Literal["both", "egress", "ingress"]
TierName = str


@attrs.frozen
class RuleSpec:
    """One rule as written: an action on a flow, with ports, HTTP matches and a tier."""

    action: Action
    flow: Flow
    ports: tuple[PortSet, ...]
    http: tuple[HttpRule, ...]
    tier: str
    direction: DirectionName
    location: Location = attrs.field(eq=False)
    log: bool = False  # log matching traffic where the engine can (Calico's Log action)

    def describe(self) -> str:
        ports = " ".join(p.describe() for p in self.ports) or "any"
        return f"{self.action.value} {self.flow.describe()} {ports}"


def _rule(
    action: Action,
    flow: Flow,
    ports: tuple[PortSet, ...],
    http: HttpRule | Sequence[HttpRule],
    tier: str,
    direction: DirectionName,
    log: bool,
) -> RuleSpec:
    if not isinstance(flow, Flow):
        raise fail(Code.NPD018, f"{action.value}() takes a flow 'source >> destination' first, got {flow!r}")
    rules = (http,) if isinstance(http, HttpRule) else tuple(http)
    if rules and (not ports or any(m.protocol != "TCP" for p in ports for m in p.matches)):
        raise fail(Code.NPD020, f"HTTP rules need TCP ports, e.g. {action.value}(a >> b, tcp(8080), http=...)")
    return RuleSpec(action, flow, ports, rules, values.dns_label(tier, "tier name"), direction, caller_location(), log)


@typechecked
def allow(
    flow: Flow,
    *ports: PortSet,
    http: HttpRule | Sequence[HttpRule] = (),
    tier: TierName = "application",
    direction: DirectionName = "both",
    log: bool = False,
) -> RuleSpec:
    """Allow ``flow`` on ``ports`` (none: all traffic).

    Between two in-cluster zones both halves are produced: egress at the source and
    ingress at the destination; ``direction="egress"`` or ``"ingress"`` keeps one.
    ``log=True`` also logs the matching traffic where the target can (Calico's ``Log`` action).

    Example: ``allow(frontend >> backend, tcp(8080))``.
    """
    return _rule(Action.ALLOW, flow, ports, http, tier, direction, log)


@typechecked
def deny(
    flow: Flow, *ports: PortSet, tier: TierName = "security", direction: DirectionName = "both", log: bool = False
) -> RuleSpec:
    """Deny ``flow`` on ``ports``; a deny in a tier beats every allow of that tier and of later tiers.
    ``log=True`` also logs what it denies where the target can (Calico's ``Log`` action)."""
    return _rule(Action.DENY, flow, ports, (), tier, direction, log)


@typechecked
def pass_(
    flow: Flow, *ports: PortSet, tier: TierName = "security", direction: DirectionName = "both", log: bool = False
) -> RuleSpec:
    """Let the next tier decide ``flow``: the allows of this tier do not apply to it."""
    return _rule(Action.PASS, flow, ports, (), tier, direction, log)


def _tier_name(name: str) -> str:
    return values.dns_label(name, "tier name")


@attrs.frozen(order=True)
class Tier:
    """A tier: ``Tier("compliance", order=150)``; lower orders are evaluated first."""

    name: str = attrs.field(converter=_tier_name)
    order: int = attrs.field(kw_only=True)


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("security", order=100),
    Tier("platform", order=200),
    Tier("application", order=300),
    Tier("baseline", order=400),
)


@attrs.frozen
class ClusterDNS:
    """Where pods resolve names: kube-dns/CoreDNS pods, and optionally node-local-dns."""

    namespace: str = "kube-system"
    labels: tuple[tuple[str, str], ...] = (("k8s-app", "kube-dns"),)
    node_local_ip: str | None = None
    proxy_all_names: bool = False  # DNS proxy rules for FQDN egress cover every name ("*"), not just those used

    def zone(self) -> Pods:
        return cluster_dns(self.namespace, dict(self.labels))


@typechecked
def dns(
    namespace: str = "kube-system",
    labels: dict[str, str] | None = None,
    *,
    node_local_ip: str | None = None,
    proxy_all_names: bool = False,
) -> ClusterDNS:
    """The DNS allow of the baseline (UDP and TCP 53); ``node_local_ip`` adds node-local-dns.

    ``proxy_all_names=True``: the DNS rule an FQDN flow brings (Cilium's DNS proxy) lets the proxy see
    every lookup (``matchPattern: "*"``), not only the names the pods' FQDN rules use; useful when
    pods also resolve in-cluster names and the baseline does not allow DNS on its own."""
    if node_local_ip is not None:
        values.network(node_local_ip, "node-local-dns address")
    pairs = tuple(sorted((labels or {"k8s-app": "kube-dns"}).items()))
    for k, v in pairs:
        values.label_key(k)
        values.label_value(v, k)
    return ClusterDNS(values.dns_label(namespace, "namespace name"), pairs, node_local_ip, proxy_all_names)


@attrs.frozen
class Collector:
    """A log collector pods send to (egress) or a scraper that reaches pods (ingress)."""

    zone: Zone
    ports: tuple[PortSet, ...]
    location: Location = attrs.field(eq=False, factory=caller_location)


@typechecked
def log_collector(zone: Zone, *ports: PortSet) -> Collector:
    """Egress from every owned pod to ``zone`` on ``ports`` (platform tier)."""
    return Collector(zone, ports)


@typechecked
def metrics_scraper(zone: Zone, *ports: PortSet) -> Collector:
    """Ingress to every owned pod from ``zone`` on ``ports`` (platform tier)."""
    return Collector(zone, ports)


@attrs.frozen
class Baseline:
    """The synthesized layer no team has to remember.

    Args:
        default_deny: which directions are default-deny for every owned namespace.
        dns: the cluster DNS allow (``dns()``); ``None`` disables it.
        log_collectors: ``log_collector(zone, tcp(...))`` egress allows.
        metrics_scrapers: ``metrics_scraper(zone, tcp(...))`` ingress allows.
        blocked_cidrs: CIDRs denied both ways in the security tier.
        blocked_domains: DNS names denied in the security tier (targets that can express it).
        block_metadata: deny egress to the cloud metadata address 169.254.169.254.
        log_blocked: log what the blocklists and the metadata block deny (``log=True`` on those denies).
    """

    default_deny: Literal["both", "ingress", "egress"] | None = "both"
    dns: ClusterDNS | None = attrs.field(factory=ClusterDNS)
    log_collectors: tuple[Collector, ...] = ()
    metrics_scrapers: tuple[Collector, ...] = ()
    blocked_cidrs: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    block_metadata: bool = False
    location: Location = attrs.field(eq=False, factory=caller_location)
    log_blocked: bool = False


@typechecked
def baseline(
    *,
    default_deny: Literal["both", "ingress", "egress"] | None = "both",
    dns: ClusterDNS | None = ClusterDNS(),
    log_collectors: Sequence[Collector] = (),
    metrics_scrapers: Sequence[Collector] = (),
    blocked_cidrs: Sequence[str] = (),
    blocked_domains: Sequence[str] = (),
    block_metadata: bool = False,
    log_blocked: bool = False,
) -> Baseline:
    """Declare the baseline layer for the policy's owned namespaces (see :class:`Baseline`)."""
    for c in blocked_cidrs:
        values.network(c, "blocked CIDR")
    for d in blocked_domains:
        values.dns_name(d)
    return Baseline(default_deny, dns, tuple(log_collectors), tuple(metrics_scrapers),
                    tuple(blocked_cidrs), tuple(blocked_domains), block_metadata, log_blocked=log_blocked)


@attrs.frozen
class ClusterInfo:
    """Facts about the cluster that make some targets exact (pod, service and node CIDRs)."""

    pod_cidrs: tuple[str, ...] = ()
    service_cidrs: tuple[str, ...] = ()
    node_cidrs: tuple[str, ...] = ()


@typechecked
def cluster_info(
    *, pod_cidrs: Sequence[str] = (), service_cidrs: Sequence[str] = (), node_cidrs: Sequence[str] = ()
) -> ClusterInfo:
    """Declare the cluster's address ranges, e.g. ``cluster_info(pod_cidrs=["10.244.0.0/16"],
    node_cidrs=["10.224.0.0/16"])``.  CIDR zones mean addresses outside the cluster, so targets whose
    CIDR peers also match pods or nodes carve these ranges out.  The declared ranges also define the
    cluster's IP families: a family with no declared pod (node) CIDR has no pod (node) addresses."""
    for c in (*pod_cidrs, *service_cidrs, *node_cidrs):
        values.network(c, "cluster CIDR")
    return ClusterInfo(tuple(pod_cidrs), tuple(service_cidrs), tuple(node_cidrs))


def _collect_zones(zone: Zone, out: list[Zone]) -> None:
    if isinstance(zone, AnyOf):
        for m in zone.members:
            _collect_zones(m, out)
    else:
        out.append(zone)


def _owns(v: Sequence[Namespace]) -> tuple[Namespace, ...]:
    return tuple(v)


def _rules(v: Sequence[RuleSpec]) -> tuple[RuleSpec, ...]:
    return tuple(v)


def _expectations(v: Sequence[Expectation]) -> tuple[Expectation, ...]:
    return tuple(v)


def _tiers(v: Sequence[Tier]) -> tuple[Tier, ...]:
    return tuple(v)


def _policy_name(v: str) -> str:
    return values.dns_label(v, "policy name")


@attrs.frozen
class Policy:
    """A policy module's intent: owned namespaces, rules, tiers and the baseline.

    Args:
        name: a DNS-1123 label naming the policy (output folders and messages).
        owns: the namespaces this policy governs; the baseline applies to them.
        rules: ``allow(...)``, ``deny(...)`` and ``pass_(...)`` rules.
        baseline: the synthesized baseline layer (``baseline(...)``), or None.
        tiers: the ordered tiers (default: security, platform, application, baseline).
        cluster: pod, service and node CIDRs (``cluster_info(...)``).
        expectations: ``expect(a).reaches(b, tcp(80))`` / ``.does_not_reach(...)``, checked by
            ``netpol-dsl verify`` and ``netpol_dsl.testing``.

    Every problem of the policy as a whole (unknown tiers, duplicate zone names, ...)
    is reported at once, as a :class:`~netpol_dsl.diagnostics.CompileError`.

    Example::

        policy = Policy("shop", owns=[shop], baseline=baseline(),
                        rules=[allow(frontend >> backend, tcp(8080))])
    """

    name: str = attrs.field(converter=_policy_name)
    owns: tuple[Namespace, ...] = attrs.field(default=(), converter=_owns, kw_only=True)
    rules: tuple[RuleSpec, ...] = attrs.field(default=(), converter=_rules, kw_only=True)
    baseline: Baseline | None = attrs.field(default=None, kw_only=True)
    tiers: tuple[Tier, ...] = attrs.field(default=DEFAULT_TIERS, converter=_tiers, kw_only=True)
    cluster: ClusterInfo = attrs.field(factory=ClusterInfo, kw_only=True)
    expectations: tuple[Expectation, ...] = attrs.field(default=(), converter=_expectations, kw_only=True)
    location: Location = attrs.field(eq=False, factory=caller_location, kw_only=True)

    def __attrs_post_init__(self) -> None:
        # attrs generates __init__, which @typechecked cannot instrument: check the fields explicitly
        for field, expected in _POLICY_FIELD_TYPES:
            try:
                check_type(getattr(self, field), expected)
            except TypeCheckError as exc:
                raise TypeCheckError(f'argument "{field}" of Policy: {exc}') from None
        problems = self.problems()
        if problems:
            raise CompileError(problems)

    def zones(self) -> list[Zone]:
        """Every zone the rules and expectations mention (unions flattened), in order."""
        out: list[Zone] = []
        for r in self.rules:
            for z in (*r.flow.sources, *r.flow.destinations):
                _collect_zones(z, out)
        for e in self.expectations:
            _collect_zones(e.source, out)
            _collect_zones(e.destination, out)
        return out

    def problems(self) -> list[Diagnostic]:
        """Everything wrong with the policy as a whole, all at once."""
        diags: list[Diagnostic] = []
        tier_names = [t.name for t in self.tiers]
        for name in sorted({n for n in tier_names if tier_names.count(n) > 1}):
            diags.append(Diagnostic(Code.NPD017, f"tier {name!r} is declared twice", self.location))
        orders = [t.order for t in self.tiers]
        for order in sorted({o for o in orders if orders.count(o) > 1}):
            diags.append(Diagnostic(Code.NPD017, f"two tiers share order {order}; tier orders must differ",
                                    self.location))
        for r in self.rules:
            if r.tier not in tier_names:
                diags.append(Diagnostic(Code.NPD017, f"rule '{r.describe()}' names unknown tier {r.tier!r}",
                                        r.location, hint=f"declared tiers: {', '.join(tier_names)}"))
        seen: dict[str, Zone] = {}
        for z in self.zones():
            if z.name is None:
                continue
            prev = seen.setdefault(z.name, z)
            if prev != z:
                diags.append(Diagnostic(Code.NPD013, f"zone name {z.name!r} names two different zones: "
                                        f"{prev.describe()} (at {prev.location}) and {z.describe()}", z.location))
        if self.baseline is not None and not self.owns:
            diags.append(Diagnostic(Code.NPD019, "a baseline needs the namespaces it applies to",
                                    self.baseline.location, hint="pass owns=[namespace(...)] to Policy"))
        owned = [n.namespace for n in self.owns]
        for name in sorted({n for n in owned if owned.count(n) > 1}):
            diags.append(Diagnostic(Code.NPD019, f"namespace {name!r} is listed twice in owns", self.location))
        return sorted(set(diags), key=lambda d: (d.location, d.code.name, d.message))

    def zone(self, name: str) -> Zone:
        """Look a zone up by name (raises NPD014 for an unknown one)."""
        for z in self.zones():
            if z.name == name:
                return z
        known = sorted({z.name for z in self.zones() if z.name})
        raise fail(Code.NPD014, f"unknown zone {name!r}", hint=f"known zones: {', '.join(known) or 'none'}")


_POLICY_FIELD_TYPES: tuple[tuple[str, object], ...] = (
    ("owns", tuple[Namespace, ...]),
    ("rules", tuple[RuleSpec, ...]),
    ("baseline", Baseline | None),
    ("tiers", tuple[Tier, ...]),
    ("cluster", ClusterInfo),
    ("expectations", tuple[Expectation, ...]),
)

"""A static evaluator of Calico network policy semantics.

Given manifests (plain mappings, as loaded from YAML) -- ``projectcalico.org/v3`` Tier,
GlobalNetworkPolicy (GNP), NetworkPolicy (NP), GlobalNetworkSet, NetworkSet and the staged policy
kinds, and ``networking.k8s.io/v1`` NetworkPolicy, which Calico enforces as a policy of its own
model -- and a concrete :class:`~netpol_dsl.endpoints.Connection`, decide whether Calico allows it.
Sources: ``shared/TARGETS.md`` §3, §6 (5-7), §7; calico:libcalico-go/lib/selector (grammar),
calico:libcalico-go/lib/backend/syncersv1/updateprocessors (how selectors are combined),
calico:libcalico-go/lib/backend/k8s/conversion (Kubernetes NetworkPolicy), calico:felix/calc
(named ports, notSelector, tiers), calico:libcalico-go/lib/validator/v3/validator.go (what is rejected).

Tiers and order
    Tiers are evaluated in ascending ``spec.order`` (ties by name, no order last).  Built in:
    ``kube-admin`` (1000, defaultAction Pass), ``default`` (1 000 000, Deny), ``kube-baseline``
    (10 000 000, Pass); any other tier needs a Tier object (``defaultAction`` Deny by default).  A
    policy without ``tier`` is in ``default``.  Inside a tier, policies in ascending ``order`` (ties
    by Felix's key name: ``name`` for a GNP, ``namespace/name`` for an NP, ``namespace/knp.default.name``
    for a Kubernetes NetworkPolicy; no order last), rules in order.
Evaluation per direction
    Egress at a source pod, ingress at a destination pod; both must allow.  Only policies whose
    ``types`` include the direction (omitted: Ingress if there are no egress rules, Egress if only
    egress rules, both if both) and whose selectors select the pod count; tiers without such a
    policy are skipped.  In a tier the first matching rule decides: Allow and Deny end everything,
    Pass goes to the next tier, Log logs and continues.  No match: the tier's ``defaultAction``
    (Deny: the end-of-tier deny; Pass: the next tier).  After the last tier, or when no policy
    selects the pod, the namespace's Kubernetes profile allows.  Staged policies are read and never
    enforced.  A GNP with ``doNotTrack`` or ``preDNAT`` applies to host endpoints only, so to no pod.
    External addresses, nodes and the API server impose nothing (no HostEndpoints are modelled);
    a pod's traffic to itself is always allowed.
Own node
    Ingress from the node a pod runs on is always allowed, whatever the policies: Felix does not
    police host -> local workload traffic (iptables/nftables: the filter OUTPUT chain returns
    packets bound for workload interfaces before any policy, calico:felix/rules/static.go "We don't
    currently police host -> endpoint according to the endpoint's ingress policy"; eBPF:
    calico:felix/bpf-gpl/tc.c "Host to workload traffic always allowed"; calico#2797, calico#4469).
    Exception not modelled: traffic that is part of a kube-proxy IPVS connection.
Endpoints and labels
    A pod's workload endpoint has its labels plus ``projectcalico.org/namespace``,
    ``projectcalico.org/orchestrator: k8s``, ``projectcalico.org/serviceaccount``, and, inherited,
    ``pcns.<key>`` for each label of its namespace (``pcns.projectcalico.org/name`` too) and
    ``pcsa.<key>`` for each label of its ServiceAccount (``pcsa.projectcalico.org/name`` too).  A
    network set's labels are its own (a NetworkSet also gets ``projectcalico.org/namespace`` and its
    namespace's ``pcns.*``).  Rule selectors are IP sets: an address matches when any Calico endpoint
    it belongs to matches -- its pod, or any network set whose ``nets`` contain it (so an external
    address, a node or even a pod matches through a network set).
Policy selection
    GNP: ``selector`` (default ``all()``), ``namespaceSelector`` (over the namespace's labels) and
    ``serviceAccountSelector`` (over the ServiceAccount's labels and ``projectcalico.org/name``).
    NP: only pods of its namespace, ``selector`` and ``serviceAccountSelector``.  A Kubernetes
    NetworkPolicy is in tier ``default`` at order 1000, selects ``projectcalico.org/orchestrator ==
    'k8s'`` and its podSelector, per its effective ``policyTypes``; each rule becomes Allow rules (one
    per peer and port item): podSelector peers select pods only, an empty namespaceSelector is
    ``all()``, ``ipBlock`` is ``nets``/``notNets`` (pod addresses match too).
Entity rules (``source``/``destination``)
    All given fields are ANDed.  The positive selector is ``selector`` AND ``serviceAccounts``
    (``names`` and ``selector`` over ``pcsa.*``) AND the namespace part: ``namespaceSelector`` over
    ``pcns.*`` (``all()`` = any namespaced endpoint, ``global()`` = only non-namespaced ones, such as
    GlobalNetworkSets), or, in an NP, the policy's own namespace -- the namespace part applies as soon
    as ``selector``, ``serviceAccounts``, ``notSelector`` or ``namespaceSelector`` is given.  With a
    positive selector, ``notSelector`` filters the endpoints it matches; without one, ``notSelector``
    matches every address none of whose endpoints it selects (external addresses included).  An
    empty string is an absent selector; an empty selector text (blanks) is ``all()``.  ``nets`` and
    ``notNets`` match addresses, pods' included; an end without a known address is in no CIDR (it
    never matches ``nets``, always passes ``notNets``).  ``ports``/``notPorts``: numbers, ``"min:max"``
    and named ports, resolved on the pod at that end, for the rule's protocol (TCP when the rule
    names none, as Felix does) and only if that pod matches the positive selector.  Source ports:
    the connection carries none; unknown, a source port is in no listed range.  ``services``
    cannot be decided offline (ManifestError).
Rules
    ``action``, ``protocol``/``notProtocol`` (names or 1-255), ``ipVersion`` (the family of the ends'
    addresses; IPv4 when none has one), ``icmp``/``notICMP`` ``{type, code}``: the connection's
    ``protocol`` is ``ICMP`` or ``ICMPv6`` and its ``port`` carries the ICMP type (as in the Cilium
    engine); its code is passed as ``icmp_code`` and taken as 0 when unknown (echo request and reply
    have code 0 only), so a rule with ``code: 0`` matches an echo and one with another code does not.
    ``http``: Felix never renders it; only Istio Application Layer Policy enforces it
    (calico:felix/calc/rule_scanner.go, "The iptables dataplane does not implement the match"), so the
    rule is evaluated as its L3/L4 part and the explanation says so.
Selectors
    Calico's grammar (:mod:`.selectors`): ``==``, ``!=`` (true when absent), ``in {..}``, ``not in
    {..}`` (true when absent), ``contains``, ``starts with``, ``ends with``, ``has(k)``, ``!``,
    ``all()``, ``global()``, parentheses, ``&&`` binding tighter than ``||``; values in single or
    double quotes, no escapes.

Anything Calico would reject (syntax errors, unknown fields and actions, ports without a port
protocol, ICMP fields without an ICMP protocol, mixed IPv4/IPv6 CIDRs, ``global()`` outside a rule
``namespaceSelector``, HTTP matches outside Allow ingress rules, a policy naming an undefined tier,
...) and other kinds raise :class:`ManifestError` (a :class:`ValueError`) naming the document and the
field; Kustomization documents are skipped.
"""

from netpol_dsl.engines.calico.engine import CalicoEngine, CalicoVerdict, RuleCheck, SideTrace, TierTrace, Trace
from netpol_dsl.engines.calico.parse import ManifestError, parse_documents
from netpol_dsl.engines.calico.selectors import Selector, SelectorError, parse

__all__ = [
    "CalicoEngine",
    "CalicoVerdict",
    "ManifestError",
    "RuleCheck",
    "Selector",
    "SelectorError",
    "SideTrace",
    "TierTrace",
    "Trace",
    "parse",
    "parse_documents",
]

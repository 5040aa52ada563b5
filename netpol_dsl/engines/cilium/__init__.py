"""A static evaluator of Cilium network policy semantics.

Given manifests (plain mappings, as loaded from YAML) -- ``cilium.io/v2`` CiliumNetworkPolicy (CNP),
CiliumClusterwideNetworkPolicy (CCNP) and CiliumCIDRGroup, and ``networking.k8s.io/v1``
NetworkPolicy, which Cilium enforces with the same model -- and a concrete
:class:`~netpol_dsl.endpoints.Connection`, decide what Cilium does with it: ``allow``, ``drop`` or
``l7-deny``.  Sources: ``shared/TARGETS.md`` §2, §6, §7 and the CRD schemas (Cilium docs
``Documentation/security/policy/{intro,layer3,layer4,layer7,deny,kubernetes}.rst``).

Identities and selectors
    A pod's identity is its labels (source ``k8s``) plus ``io.kubernetes.pod.namespace``,
    ``io.cilium.k8s.policy.cluster`` (the engine's ``cluster_name``),
    ``io.cilium.k8s.policy.serviceaccount`` and ``io.cilium.k8s.namespace.labels.<key>`` for each
    label of its namespace.  Selector keys may carry a source (``k8s:app``, ``any:app``; none means
    any).  Nodes, external addresses and the API server carry the reserved labels of their entity
    (``reserved:host`` for the subject's own node, ``reserved:remote-node``, ``reserved:world``,
    ``reserved:kube-apiserver``), so a peer selector matches them only through ``reserved:`` keys.
    ``endpointSelector`` selects pods (in a CNP only pods of its namespace); ``nodeSelector`` (host
    policies) never selects a pod.  Peer selectors (``fromEndpoints``/``toEndpoints``): in a CNP a
    selector without an ``io.kubernetes.pod.namespace`` requirement is restricted to the policy's
    namespace, and a selector using ``io.cilium.k8s.namespace.labels.*`` matches nothing (Cilium does
    not honour namespace labels there; the explanation says so); in a CCNP nothing is implied but the
    selector only matches pods (Cilium adds ``io.kubernetes.pod.namespace`` Exists).  ``[]`` selects
    nothing, ``[{}]`` every pod (CNP: of the namespace).

Rules
    In one rule the L3 fields given are ORed (the CRD says they are exclusive) and ANDed with L4.
    A rule with L4 and no L3 field matches every peer; a rule with neither (``{}``) matches nothing.
    Entities: ``all``; ``world`` = :class:`~netpol_dsl.endpoints.External`; ``cluster`` = pods,
    nodes and the API server; ``host`` = the node the subject pod runs on (``Node.name ==
    pod.node``); ``remote-node`` = other nodes; ``kube-apiserver`` =
    :class:`~netpol_dsl.endpoints.ApiServer`; ``health``, ``init``, ``unmanaged``, ``ingress`` and
    ``none`` match nothing here.  CIDR rules (``toCIDR``, ``toCIDRSet`` with ``except``,
    ``cidrGroupRef``/``cidrGroupSelector`` resolved against the CiliumCIDRGroups given, Kubernetes
    ``ipBlock``) match External addresses only, never pods or nodes.  ``toFQDNs`` matches an External
    destination iff one of the ``dns_names`` passed to :meth:`CiliumEngine.evaluate` matches it *and*
    some ``rules.dns`` pattern in the source's egress policy covers that name (without it the DNS
    proxy never learns the addresses, so toFQDNs allows nothing).
L4
    ``toPorts[].ports[]``: ``port`` (number, ``0``/absent = every port, or a named port resolved on
    the destination pod's containers), ``endPort``, ``protocol`` TCP/UDP/SCTP/ANY (default; ANY =
    TCP, UDP and SCTP).  An entry without ports covers every TCP/UDP/SCTP port.  ICMP:
    ``icmps[].fields[]{family, type}`` (at most 40 fields per entry; not in a rule with ``toPorts``,
    which Cilium rejects); the connection's ``protocol`` is ``ICMP`` or ``ICMPv6`` and its ``port``
    carries the ICMP **type** (our convention).  A field of type 0 matches every type of its family,
    as in Cilium (port 0 is its wildcard; cilium/cilium#41304).  A rule with L4 allows only that L4.
L7
    When an allowing rule's matching ``toPorts`` entry has ``rules.http``, the port is proxied: the
    request must fully match (``method``/``path``/``host`` extended regexes; ``headers`` ``"Name"``
    or ``"Name: value"``; ``headerMatches`` exact, entries with ``mismatch`` only log) one HTTP rule of
    the allowing rules for that subject, peer and port, else ``l7-deny`` (403).  If another allowing
    rule covers the same peer and port without L7 rules, Cilium merges it as an L7 wildcard and every
    request passes.  A connection without an HTTP request on a proxied port is ``drop`` (the proxy
    cannot parse it), wildcard or not.  L7 applies whether or not the endpoint is in default deny.
    ``rules.dns`` is decided by :meth:`CiliumEngine.dns_lookup`.

Decision per side
    Deny rules (``ingressDeny``/``egressDeny``, L3/L4 only) of selecting policies beat every allow.
    An endpoint is in default deny for a direction iff a selecting policy has a non-empty section for
    it (allow or deny) and does not set ``enableDefaultDeny.<direction>: false`` (an explicit
    ``true`` counts even without a section); a Kubernetes NetworkPolicy counts per its effective
    ``policyTypes``.  In default deny the connection needs a matching allow rule; otherwise L3/L4 is
    allowed.  A connection needs egress allowed at a source pod and ingress allowed at a destination
    pod; externals, nodes and the API server impose nothing.  Ingress from the pod's own node is
    always allowed (Cilium's default ``allow-localhost``), unless a deny rule matches it.  A pod's
    traffic to itself is always allowed.  ``authentication`` (mutual auth) is assumed to succeed.

Anything else (other kinds; fields the engine cannot decide such as ``toServices``; invalid values)
raises :class:`ManifestError` (a :class:`ValueError`); Kustomization documents are skipped.
"""

from netpol_dsl.engines.cilium.engine import CiliumEngine, CiliumVerdict, DnsLookup, Outcome
from netpol_dsl.engines.cilium.parse import ManifestError

__all__ = ["CiliumEngine", "CiliumVerdict", "DnsLookup", "ManifestError", "Outcome"]

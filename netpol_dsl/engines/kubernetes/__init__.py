"""A static evaluator of Kubernetes ``networking.k8s.io/v1`` NetworkPolicy semantics.

Given NetworkPolicy manifests (plain mappings, as loaded from YAML) and a concrete
:class:`~netpol_dsl.endpoints.Connection`, decide whether the policies allow it, following
https://kubernetes.io/docs/concepts/services-networking/network-policies/ and the API reference:

* A pod is *isolated* for ingress (egress) iff a NetworkPolicy in the pod's namespace selects it
  with ``spec.podSelector`` and that policy's effective ``policyTypes`` include ``Ingress``
  (``Egress``).  When ``policyTypes`` is absent or empty it defaults to ``["Ingress"]`` plus
  ``"Egress"`` when ``spec.egress`` has at least one rule.
* In an isolated direction the connection is allowed iff at least one rule of at least one
  selecting policy (of that policy type) matches it; policies are additive.  A non-isolated
  direction allows everything.
* A connection is allowed iff egress is allowed at the source (only checked when the source is a
  :class:`~netpol_dsl.endpoints.Pod`) and ingress is allowed at the destination (only checked when
  the destination is a Pod).  External addresses, nodes and the API server carry no policy.
* A rule matches when one of its peers matches the other end (absent or empty ``from``/``to``:
  every peer) and one of its ports matches (absent or empty ``ports``: every port and protocol).
* Peers: ``podSelector`` alone selects pods of the policy's own namespace, ``namespaceSelector``
  alone selects every pod of the matching namespaces, both in one peer is their conjunction, and
  ``ipBlock`` matches by IP address.  We take the widest reading of ``ipBlock`` (which upstream
  leaves implementation-defined for cluster-internal addresses): it matches external addresses,
  pod IPs and node IPs alike; an endpoint without an IP never matches it.
* Ports: ``protocol`` defaults to TCP; ``port`` is a number or a named container port, resolved on
  the connection's destination pod (the peer for egress rules, the selected pod for ingress
  rules) for the same protocol, and never matching a non-pod destination; ``endPort`` makes an
  inclusive range; no ``port`` means every port of the protocol.  Connections with a protocol
  other than TCP, UDP or SCTP (e.g. ICMP) match only rules without a ``ports`` restriction.
* A pod's traffic to itself (loopback) is never subject to NetworkPolicy: the docs list "the ability
  to prevent loopback" among what NetworkPolicy cannot do, and the upstream conformance suite
  (``test/e2e/network/netpol``, ``Reachability.AllowLoopback``) expects it allowed whatever the
  policies say.

Documents that are not ``networking.k8s.io/v1`` NetworkPolicies, and NetworkPolicies the API
server would reject (unknown operators, peers with no selector, ``endPort`` with a named port, ...),
raise :class:`ManifestError` (a :class:`ValueError`).

Besides :meth:`KubernetesEngine.evaluate`, the engine offers :meth:`KubernetesEngine.trace` (every
selecting policy and every rule checked, for step-by-step explanations) and
:meth:`KubernetesEngine.reachability`, which decides all pod-to-pod pairs at once over pod
*identities* (see :mod:`.reachability`).

The implementation is split by concern: :mod:`.model` (the parsed policy model, its parsing and
validation), :mod:`.engine` (per-connection evaluation, traces and explanations) and
:mod:`.reachability` (the identity-based all-pairs fast path); this package re-exports their
public names.
"""

from netpol_dsl.engines.kubernetes.engine import (
    KubernetesEngine,
    RuleCheck,
    SideReason,
    SideTrace,
    Trace,
    Verdict,
    evaluate,
)
from netpol_dsl.engines.kubernetes.model import (
    API_VERSION,
    DEFAULT_NAMESPACE,
    KIND,
    PORT_PROTOCOLS,
    Direction,
    ManifestError,
    PolicyRef,
    validate,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_NAMESPACE",
    "KIND",
    "PORT_PROTOCOLS",
    "Direction",
    "KubernetesEngine",
    "ManifestError",
    "PolicyRef",
    "RuleCheck",
    "SideReason",
    "SideTrace",
    "Trace",
    "Verdict",
    "evaluate",
    "validate",
]

"""Select workloads by the ServiceAccount they run as, not only by labels.

Anyone who can write a pod spec chooses its labels; the service account it runs as is granted
through RBAC.  Here the ledger admits only pods running as ``checkout``, whatever their labels, so a
pod that copies the checkout labels but runs as ``default`` gets nothing; Prometheus is admitted by
its account in the ``monitoring`` namespace.  Cilium selects the account by the identity label
``io.cilium.k8s.policy.serviceaccount``.  NetworkPolicy selects pods only by labels, so the
``kubernetes`` build of this module fails with NPD211.
"""

from netpol_dsl import Policy, allow, baseline, expect, metrics_scraper, namespace, service_account, tcp

payments = namespace("payments")
checkout = service_account("payments", "checkout").named("checkout")
ledger = payments.pods(app="ledger").service_account("ledger").named("ledger")
prometheus = namespace("monitoring").service_account("prometheus").named("prometheus")
lookalike = payments.pods(app="checkout").service_account("default").named("lookalike")

policy = Policy(
    "service-accounts",
    owns=[payments],
    baseline=baseline(default_deny="both", metrics_scrapers=[metrics_scraper(prometheus, tcp(9090))]),
    rules=[
        allow(checkout >> ledger, tcp(8443)),
    ],
    expectations=[
        expect(checkout).reaches(ledger, tcp(8443)),
        expect(lookalike).does_not_reach(ledger, tcp(8443)),
        expect(prometheus).reaches(ledger, tcp(9090)),
    ],
)

"""The seed three-tier web application (AKS network-policy best practices, "Securing a multi-tier web app").

| Source   | Destination              | Protocol | Port |
|----------|--------------------------|----------|------|
| Frontend | Backend                  | TCP      | 8080 |
| Backend  | Database                 | TCP      | 5432 |
| Backend  | External payment gateway | TCP      | 443  |

Baseline: default deny, DNS; platform: logs; security: block cloud metadata.
The payment gateway is an FQDN, which plain NetworkPolicy cannot express:
``--target kubernetes`` reports NPD201 for that flow; three_tier_l4.py is the part
NetworkPolicy can enforce.
"""

from netpol_dsl import (
    Policy,
    allow,
    baseline,
    cluster_info,
    fqdn,
    log_collector,
    namespace,
    tcp,
)

shop = namespace("shop")
frontend = shop.pods(app="frontend").named("frontend")
backend = shop.pods(app="backend").named("backend")
database = shop.pods(app="database").named("database")
payments = fqdn("payments.example.com").named("payments")
logging = namespace("logging").pods(app="fluent-bit").named("log-collector")

policy = Policy(
    "three-tier",
    owns=[shop],
    cluster=cluster_info(
        pod_cidrs=["10.244.0.0/16"], service_cidrs=["10.96.0.0/12"], node_cidrs=["10.224.0.0/16"]
    ),
    baseline=baseline(
        default_deny="both",
        log_collectors=[log_collector(logging, tcp(24224))],
        block_metadata=True,
    ),
    rules=[
        allow(frontend >> backend, tcp(8080)),
        allow(backend >> database, tcp(5432)),
        allow(backend >> payments, tcp(443)),
    ],
)

"""The seed three-tier application, L3/L4 part only: what plain NetworkPolicy can enforce everywhere.

Same zones as three_tier.py without the FQDN egress to the payment gateway.
"""

from netpol_dsl import Policy, allow, baseline, expect, namespace, tcp

shop = namespace("shop")
frontend = shop.pods(app="frontend").named("frontend")
backend = shop.pods(app="backend").named("backend")
database = shop.pods(app="database").named("database")

policy = Policy(
    "three-tier-l4",
    owns=[shop],
    baseline=baseline(default_deny="both"),
    rules=[
        allow(frontend >> backend, tcp(8080)),
        allow(backend >> database, tcp(5432)),
    ],
    expectations=[
        expect(frontend).reaches(backend, tcp(8080)),
        expect(backend).reaches(database, tcp(5432)),
        expect(frontend).does_not_reach(database),
        expect(database).does_not_reach(frontend),
    ],
)

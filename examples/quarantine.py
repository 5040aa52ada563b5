"""Seed 003, Scenario B: contain a compromised workload with a security-tier deny.

Any pod labelled quarantine=true in the shop namespace loses all traffic, both ways,
whatever the application tier allows.  On NetworkPolicy the deny is compiled exactly:
every allow that could select the quarantined pods is narrowed with
``quarantine NotIn (true)``, and the namespace's default deny leaves them nothing.
"""

from netpol_dsl import Policy, allow, anything, baseline, deny, expect, label, namespace, tcp

shop = namespace("shop")
frontend = shop.pods(app="frontend").named("frontend")
backend = shop.pods(app="backend").named("backend")
quarantined = shop.pods(quarantine="true").named("quarantined")
healthy = label("quarantine").not_in("true")

policy = Policy(
    "quarantine",
    owns=[shop],
    baseline=baseline(default_deny="both"),
    rules=[
        deny(quarantined >> anything(), tier="security"),
        deny(anything() >> quarantined, tier="security"),
        allow(frontend >> backend, tcp(8080)),
    ],
    expectations=[
        expect(shop.pods(healthy, app="frontend")).reaches(shop.pods(healthy, app="backend"), tcp(8080)),
        expect(quarantined).does_not_reach(backend),
        expect(frontend).does_not_reach(quarantined),
    ],
)

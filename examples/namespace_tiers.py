"""Seed 003, Scenario A: a three-tier web application, one namespace per tier, behind ingress-nginx.

1) ingress from the ingress-nginx controller to app=frontend in web-tier;
2) ingress from web-tier to app=api in api-tier on TCP 8080;
3) ingress from api-tier to app=postgres in data-tier on TCP 5432;
with a default-deny *ingress* policy in every tier namespace.  Egress is left to the
cloud firewall in that scenario, so the flows are ingress-only (direction="ingress"):
an egress half would make the sources' egress an allow list too.
"""

from netpol_dsl import Policy, allow, baseline, expect, label, namespace, tcp

web_tier = namespace("web-tier")
api_tier = namespace("api-tier")
data_tier = namespace("data-tier")
controller = namespace("ingress-nginx").pods(
    label("app.kubernetes.io/component").equals("controller")
).named("ingress-controller")

frontend = web_tier.pods(app="frontend").named("frontend")
api = api_tier.pods(app="api").named("api")
postgres = data_tier.pods(app="postgres").named("postgres")

policy = Policy(
    "namespace-tiers",
    owns=[web_tier, api_tier, data_tier],
    baseline=baseline(default_deny="ingress", dns=None),
    rules=[
        allow(controller >> frontend, direction="ingress"),
        allow(web_tier >> api, tcp(8080), direction="ingress"),
        allow(api_tier >> postgres, tcp(5432), direction="ingress"),
    ],
    expectations=[
        expect(controller).reaches(frontend, tcp(443)),
        expect(web_tier).reaches(api, tcp(8080)),
        expect(api_tier).reaches(postgres, tcp(5432)),
        expect(controller).does_not_reach(api),
        expect(web_tier).does_not_reach(postgres),
    ],
)

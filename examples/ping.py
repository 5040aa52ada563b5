"""Ping as a protocol of its own: ICMP echo requests between the tiers (cilium and calico).

The web pods reach the API on TCP 8080 and may ping it; the probers of the monitoring namespace
may ping both, over IPv4 (ICMP type 8, echo request) and IPv6 (ICMPv6 type 128).  Echo replies need
no rule: a reply belongs to the request that was allowed.  NetworkPolicy cannot match ICMP, so
this module does not build for kubernetes (NPD215).
"""

from netpol_dsl import Policy, allow, baseline, expect, icmp, icmpv6, namespace, tcp

shop = namespace("shop")
web = shop.pods(app="web").named("web")
api = shop.pods(app="api").named("api")
prober = namespace("monitoring").pods(app="prober").named("prober")

policy = Policy(
    "ping",
    owns=[shop],
    baseline=baseline(default_deny="both"),
    rules=[
        allow(web >> api, tcp(8080) | icmp(8)),
        # monitoring is not ours: only the shop pods' ingress is restricted
        allow(prober >> [web, api], icmp(8), icmpv6(128), direction="ingress"),
    ],
    expectations=[
        expect(web).reaches(api, tcp(8080), icmp(8)),
        expect(prober).reaches(api, icmp(8), icmpv6(128)),
        expect(prober).reaches(web, icmp(8)),
        expect(prober).does_not_reach(api, tcp(8080)),
        expect(api).does_not_reach(web, icmp(8)),
        expect(web).does_not_reach(api, icmp(13)),  # timestamp request: only echo requests are allowed
    ],
)

"""Seed 000, "Secure egress traffic with FQDN filtering": pods of demo-container may reach *.bing.com.

``*`` matches within one DNS label: www.bing.com, not bing.com nor a.b.bing.com.  The build adds
the DNS rule Cilium's proxy needs (lookups of *.bing.com through kube-dns) next to toFQDNs.
"""

from netpol_dsl import Policy, allow, baseline, fqdn_pattern, namespace, tcp

default = namespace("default")
demo = default.pods(app="demo-container").named("demo")
bing = fqdn_pattern("*.bing.com").named("bing")

policy = Policy(
    "allow-bing-fqdn",
    owns=[default],
    baseline=baseline(default_deny="egress", dns=None),
    rules=[
        allow(demo >> bing, tcp(443)),
    ],
)

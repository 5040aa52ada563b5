"""Checked by mypy --strict (tests/test_typing.py): the public API has precise types."""

from typing import assert_type

import netpol_dsl as n

shop = n.namespace("shop")
assert_type(shop, n.Namespace)
web = shop.pods(app="web")
assert_type(web, n.Pods)
assert_type(web.named("web"), n.Pods)
assert_type(n.namespaces(team="a").pods(n.label("tier").in_("x", "y")), n.Pods)
assert_type(web >> shop, n.Flow)
assert_type([web, shop] >> web, n.Flow)
assert_type(web | n.cidr("10.0.0.0/8"), n.AnyOf)
assert_type(n.tcp(8080) | n.udp(53), n.PortSet)
assert_type(n.port_range(8000, 8080), n.PortRange)
assert_type(n.allow(web >> shop, n.tcp(8080)), n.RuleSpec)
assert_type(n.deny(web >> shop, n.tcp(22), log=True), n.RuleSpec)
assert_type(n.deny(web >> n.anything(), tier="security"), n.RuleSpec)
assert_type(n.fqdn("a.example.com"), n.Fqdn)
assert_type(n.service_account("shop", "web"), n.Pods)
assert_type(shop.service_account("web"), n.Pods)
assert_type(web.service_account("web") | n.namespaces(team="a").service_account("api"), n.AnyOf)
assert_type(n.world(), n.Entity)
assert_type(n.get("/api"), n.HttpRule)
policy = n.Policy("shop", owns=[shop], rules=[n.allow(web >> shop)], baseline=n.baseline(default_deny="egress"))
assert_type(policy, n.Policy)
assert_type(n.compile_policy(policy, "kubernetes").manifests[0].name, str)
assert_type(n.icmp(8), n.PortSet)
assert_type(n.icmp(), n.PortSet)
assert_type(n.icmpv6(128, 129) | n.tcp(443), n.PortSet)
assert_type(n.allow(web >> shop, n.icmp(8), n.icmpv6(128)), n.RuleSpec)

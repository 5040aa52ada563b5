"""ICMP types on every target: a cross-target table of what each writes or refuses, the exact YAML
fragments, the engines against the reference semantics on synthesized inventories, the probes of
``synth`` and ``verify``, and the schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import netpol_dsl as n
from netpol_dsl.compiler import compile_program
from netpol_dsl.diagnostics import Code
from netpol_dsl.engines import EVALUATORS
from netpol_dsl.ir.intent import decide
from netpol_dsl.ir.lower import lower
from netpol_dsl.ir.ports import PortMatch
from netpol_dsl.render.yaml import dump
from netpol_dsl.synth import connections, port_plan, representative_endpoints
from netpol_dsl.verify import Verifier, probes, verify
from tests.helpers import engine_allows

SHOP = n.namespace("shop")
WEB, API = SHOP.pods(app="web").named("web"), SHOP.pods(app="api").named("api")
CLUSTER = n.cluster_info(pod_cidrs=["10.244.0.0/16"], node_cidrs=["10.224.0.0/16"])
TARGETS = ("kubernetes", "cilium", "calico")


def _policy(*rules: n.RuleSpec) -> n.Policy:
    return n.Policy("p", owns=[SHOP], baseline=n.baseline(dns=None), rules=list(rules), cluster=CLUSTER)


def _bodies(policy: n.Policy, target: str) -> list[dict[str, Any]]:
    return [dict(m.body) for m in compile_program(lower(policy), target).manifests]


def _codes(policy: n.Policy, target: str) -> set[Code]:
    with pytest.raises(n.CompileError) as exc:
        compile_program(lower(policy), target)
    return {d.code for d in exc.value.diagnostics}


def _named(bodies: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (body,) = [b for b in bodies if b["metadata"]["name"] == name]
    return body


# ---- what each target writes or refuses ----------------------------------------------------------

OK = None
CASES: dict[str, tuple[n.Policy, dict[str, Code | None]]] = {
    "ping and a port": (_policy(n.allow(WEB >> API, n.tcp(8080) | n.icmp(8))),
                        {"kubernetes": Code.NPD215, "cilium": OK, "calico": OK}),
    "every type": (_policy(n.allow(WEB >> API, n.icmp())), {"kubernetes": Code.NPD215, "cilium": OK, "calico": OK}),
    "echo reply alone": (_policy(n.allow(WEB >> API, n.icmp(0, 8))),
                         {"kubernetes": Code.NPD215, "cilium": Code.NPD215, "calico": OK}),
    "echo reply within every type": (_policy(n.allow(WEB >> API, n.icmp(0) | n.icmp())),
                                     {"kubernetes": Code.NPD215, "cilium": OK, "calico": OK}),
    "icmpv6 type 0": (_policy(n.allow(WEB >> API, n.icmpv6(0))),
                      {"kubernetes": Code.NPD215, "cilium": Code.NPD215, "calico": OK}),
    "type 255": (_policy(n.allow(WEB >> API, n.icmp(255))),
                 {"kubernetes": Code.NPD215, "cilium": OK, "calico": Code.NPD215}),
    "icmpv6 to the world": (_policy(n.allow(WEB >> n.world(), n.icmp(8), n.icmpv6(128), direction="egress")),
                            {"kubernetes": Code.NPD215, "cilium": OK, "calico": OK}),
    # a deny of ICMP removes nothing from a TCP allow: NetworkPolicy can say that
    "deny of ping beside a port": (_policy(n.allow(WEB >> API, n.tcp(80)), n.deny(WEB >> API, n.icmp(8))),
                                   {"kubernetes": OK, "cilium": OK, "calico": OK}),
    # ... but "all traffic but ping" has no NetworkPolicy form
    "all traffic minus ping": (_policy(n.allow(WEB >> API), n.deny(WEB >> API, n.icmp(8))),
                               {"kubernetes": Code.NPD206, "cilium": OK, "calico": OK}),
    "every type minus a deny of echo reply": (_policy(n.allow(WEB >> API, n.icmp()), n.deny(WEB >> API, n.icmp(0))),
                                              {"kubernetes": Code.NPD215, "cilium": Code.NPD215, "calico": OK}),
    # layering carves the pass out of the allow: types 0-7 and 9-255, type 0 without every type
    "every type minus a pass": (_policy(n.allow(WEB >> API, n.icmp(), tier="security"),
                                        n.pass_(WEB >> API, n.icmp(8), tier="security")),
                                {"kubernetes": Code.NPD215, "cilium": Code.NPD215, "calico": OK}),
    "a pass of ping in a tier of its own": (_policy(n.allow(WEB >> API, n.icmp(8), n.tcp(80)),
                                                    n.pass_(WEB >> API, n.icmp(8), tier="security"),
                                                    n.deny(WEB >> API, n.icmp(), tier="platform")),
                                            {"kubernetes": Code.NPD215, "cilium": OK, "calico": OK}),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_target_writes_exactly_the_intent_or_refuses(case: str, target: str) -> None:
    policy, expected = CASES[case]
    code = expected[target]
    if code is not None:
        assert code in _codes(policy, target)
        return
    program = lower(policy)
    engine = EVALUATORS[target](_bodies(policy, target))
    conns = connections(representative_endpoints(program), program)
    assert any(c.protocol.startswith("ICMP") for c in conns)
    wrong = [c.describe() for c in conns if engine_allows(engine, c) != decide(program, c).allowed]
    assert not wrong, "\n".join(wrong[:20])


# ---- exact fragments -----------------------------------------------------------------------------


def test_cilium_writes_icmps_in_a_rule_of_their_own() -> None:
    api = _named(_bodies(CASES["ping and a port"][0], "cilium"), "api")
    web = {"matchLabels": {"app": "web", "k8s:io.kubernetes.pod.namespace": "shop"}}
    assert api["spec"]["ingress"] == [
        {"fromEndpoints": [web], "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]},
        {"fromEndpoints": [web], "icmps": [{"fields": [{"family": "IPv4", "type": 8}]}]},
    ]


def test_cilium_lists_every_type_in_entries_of_40() -> None:
    api = _named(_bodies(CASES["every type"][0], "cilium"), "api")
    (rule,) = api["spec"]["ingress"]
    assert "toPorts" not in rule
    assert [len(e["fields"]) for e in rule["icmps"]] == [40, 40, 40, 40, 40, 40, 16]
    fields = [f for e in rule["icmps"] for f in e["fields"]]
    assert fields == [{"family": "IPv4", "type": t} for t in range(256)]


def test_cilium_writes_icmpv6_and_deny_sections() -> None:
    bodies = _bodies(_policy(n.allow(WEB >> API, n.tcp(80)), n.deny(WEB >> API, n.icmpv6(128, 129))), "cilium")
    deny = _named(bodies, "api-deny")
    (rule,) = deny["spec"]["ingressDeny"]
    assert rule["icmps"] == [{"fields": [{"family": "IPv6", "type": 128}, {"family": "IPv6", "type": 129}]}]
    assert "toPorts" not in rule


def test_cilium_type_0_error_names_the_issue_and_the_way_out() -> None:
    with pytest.raises(n.CompileError) as exc:
        compile_program(lower(CASES["echo reply alone"][0]), "cilium")
    (d,) = {d.render() for d in exc.value.diagnostics}
    assert "matches ICMP type 0 but not every ICMP type (icmp/0,icmp/8)" in d
    assert "Cilium reads 'type: 0' as every type of the family (cilium/cilium#41304)" in d
    assert "or match every type with icmp()" in d


def test_calico_writes_one_rule_per_type_and_no_icmp_field_for_every_type() -> None:
    api = _named(_bodies(_policy(n.allow(WEB >> API, n.tcp(8080) | n.icmp(0, 8), n.icmpv6())), "calico"),
                 "application.api")
    source = {"selector": 'projectcalico.org/orchestrator == "k8s" && app == "web"'}
    assert api["spec"]["ingress"] == [
        {"action": "Allow", "protocol": "TCP", "source": source, "destination": {"ports": [8080]}},
        {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 0}, "source": source},
        {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}, "source": source},
        {"action": "Allow", "protocol": "ICMPv6", "source": source},
    ]


def test_calico_egress_icmp_has_the_peer_and_no_ports() -> None:
    web = _named(_bodies(_policy(n.deny(WEB >> n.cidr("203.0.113.0/24"), n.icmp(8))), "calico"), "security.web-deny")
    assert web["spec"]["egress"] == [{"action": "Deny", "protocol": "ICMP", "icmp": {"type": 8},
                                      "destination": {"nets": ["203.0.113.0/24"]}}]


def test_kubernetes_error_names_the_rule_and_the_alternatives() -> None:
    with pytest.raises(n.CompileError) as exc:
        compile_program(lower(CASES["ping and a port"][0]), "kubernetes")
    (d,) = {d.render() for d in exc.value.diagnostics}  # one per rule, not per half
    assert "error[NPD215]: allow 'web -> api' matches ICMP (icmp/8); target 'kubernetes' cannot express it" in d
    assert "allow all traffic with no ports (wider: your decision), or build for 'cilium' or 'calico'" in d


def test_kubernetes_drops_nothing_for_a_deny_of_icmp() -> None:
    with_deny = _bodies(CASES["deny of ping beside a port"][0], "kubernetes")
    without = _bodies(_policy(n.allow(WEB >> API, n.tcp(80))), "kubernetes")
    assert [b["spec"] for b in with_deny] == [b["spec"] for b in without]


# ---- probes --------------------------------------------------------------------------------------


def test_port_plan_probes_mentioned_types_and_one_more_per_icmp_protocol() -> None:
    program = lower(_policy(n.allow(WEB >> API, n.tcp(80) | n.icmp(0, 8)),
                            n.allow(API >> WEB, n.icmpv6(), direction="egress")))
    plan = port_plan(program)
    assert plan.probes == (("TCP", 80), ("TCP", 12345), ("ICMP", 0), ("ICMP", 8), ("ICMP", 100), ("ICMPv6", 100))
    assert all(c.protocol == "TCP" for c in plan.container_ports)  # ICMP types are no container ports


def test_the_unmentioned_type_skips_mentioned_ranges() -> None:
    program = lower(_policy(n.allow(WEB >> API, n.icmp(100, 101, 102))))
    assert ("ICMP", 103) in port_plan(program).probes
    assert ("ICMP", 100) in port_plan(program).probes and ("ICMP", 102) in port_plan(program).probes


def test_verify_probes_icmp_expectations() -> None:
    plan = port_plan(lower(_policy(n.allow(WEB >> API, n.tcp(80)))))
    assert probes((PortMatch("ICMP", 8, 8),), plan) == [("ICMP", 8)]
    assert probes((PortMatch.every("ICMP"),), plan) == [("ICMP", 100)]  # no rule mentions ICMP
    assert ("ICMP", 8) not in probes(None, plan)  # nothing mentions ICMP: it is not probed


def test_verify_finds_a_widened_icmp_allow() -> None:
    """An expectation on an unmentioned type fails when the output allows every type."""
    policy = n.Policy("p", owns=[SHOP], baseline=n.baseline(dns=None), rules=[n.allow(WEB >> API, n.icmp(8))],
                      expectations=[n.expect(WEB).reaches(API, n.icmp(8)),
                                    n.expect(WEB).does_not_reach(API, n.icmp(13))])
    assert verify(policy, "cilium") == [] and verify(policy, "calico") == []
    v = Verifier.build(policy, "calico")
    widened = [dict(m) for m in _bodies(_policy(n.allow(WEB >> API, n.icmp())), "calico")]
    v = Verifier(v.program, "calico", v.endpoints, EVALUATORS["calico"](widened), v.plan)
    failures = v.check_all()
    assert failures and {f.connection.port for f in failures} == {13}


# ---- schemas -------------------------------------------------------------------------------------


def test_icmp_outputs_validate(tmp_path: Path, validator: Path) -> None:
    written = 0
    for name in ("ping and a port", "every type", "icmpv6 to the world", "deny of ping beside a port",
                 "a pass of ping in a tier of its own"):
        for target in ("cilium", "calico"):
            for body in _bodies(CASES[name][0], target):
                written += 1
                (tmp_path / f"{written:03d}.yaml").write_text(dump(body))
    result = subprocess.run([sys.executable, str(validator), "-q", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert f"{written} ok" in result.stdout

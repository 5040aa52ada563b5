"""`simulate --engine calico` and `explain --engine calico`: CLI transcripts on small Calico manifests.

Tiers and Pass, GlobalNetworkSets, ServiceAccount labels and namespace labels from the inventory, plain
NetworkPolicy in the default tier, staged policies, own-node ingress, ICMP, source ports, HTTP queries,
provenance in explanations, the matrix, and input errors naming file and document.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from netpol_dsl.cli import main
from netpol_dsl.inventory import load_inventory
from netpol_dsl.simulate import engine_names
from tests.helpers import ROOT
from tests.simulate.helpers import INVENTORY, run, write

POLICIES = """\
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: security.guard
  annotations: {netpol-dsl.dev/source: "policies/guard.py:7"}
spec:
  tier: security
  selector: projectcalico.org/namespace == 'shop'
  types: [Ingress, Egress]
  ingress:
    - action: Pass
  egress:
    - action: Deny
      destination: {selector: threat == 'bad'}
    - action: Pass
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: bad, labels: {threat: bad}}
spec: {nets: [198.51.100.0/24]}
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: lockdown}
spec: {selector: all(), types: [Ingress, Egress]}
"""

SHOP = """\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: api
  namespace: shop
  annotations: {netpol-dsl.dev/source: "policies/shop.py:20"}
spec:
  order: 100
  selector: app == 'api'
  types: [Ingress]
  ingress:
    - action: Allow
      protocol: TCP
      source: {serviceAccounts: {selector: tier == 'frontend'}}
      destination: {ports: [http]}
    - action: Allow
      protocol: TCP
      source: {namespaceSelector: team == 'money', ports: [7000]}
    - action: Allow
      protocol: ICMP
      icmp: {type: 8, code: 0}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"""

QUERIES = """\
queries:
  - {from: shop/web-1, to: shop/api-1, port: 9000}
  - {from: bank/api-1, to: shop/api-1, port: 9000}
  - {from: bank/api-1, to: shop/api-1, port: 9000, src_port: 7000}
  - {from: shop/web-1, to: {ip: 198.51.100.1}, port: 443}
  - {from: shop/web-1, to: {name: payments.example.com}, port: 443, dns_lookup: true}
  - {from: {node: node-1}, to: shop/api-1, port: 9000}
  - {from: {node: node-2}, to: shop/api-1, port: 9000}
  - {from: shop/web-1, to: shop/api-1, protocol: ICMP}
  - {from: shop/web-1, to: shop/api-1, protocol: ICMP, icmp: {type: 8, code: 1}}
  - {from: shop/web-1, to: shop/api-1, port: 9000, http: {method: DELETE, path: /admin}}
"""


def expect(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """inv.yaml, calico/policies.yaml and calico/shop.yaml in the working directory."""
    write(tmp_path, "inv.yaml", INVENTORY)
    write(tmp_path, "calico/policies.yaml", POLICIES)
    write(tmp_path, "calico/shop.yaml", SHOP)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def simulate(capsys: pytest.CaptureFixture[str], queries: str, *extra: str) -> list[dict[str, Any]]:
    write(Path.cwd(), "q.yaml", queries)
    code, out, err = run(capsys, "simulate", "--engine", "calico", "--inventory", "inv.yaml", "--queries", "q.yaml",
                         *extra, "calico")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["engine"] == "calico"
    results: list[dict[str, Any]] = doc["results"]
    return results


def test_the_engine_is_registered() -> None:
    assert "calico" in engine_names()


def test_pods_carry_their_service_account_labels(cluster: Path) -> None:
    inventory = load_inventory(["inv.yaml"])
    web, api = inventory.pod("shop/web-1"), inventory.pod("shop/api-1")
    assert web is not None and web.service_account == "web" and web.service_account_labels == (("tier", "frontend"),)
    assert api is not None and api.service_account == "default" and api.service_account_labels == ()


def test_queries(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = simulate(capsys, QUERIES)
    assert [r["verdict"] for r in results] == [
        "allow", "drop", "allow", "drop", "allow", "allow", "drop", "allow", "drop", "allow"]
    web_api, bank_api, bank_src_port, bad, lookup, own_node, other_node, echo, code_1, http = (
        r["explanation"] for r in results)
    assert web_api == [
        "egress at shop/web-1: tier security (order 100, defaultAction Deny): GlobalNetworkPolicy security.guard "
        "egress[1] (Pass): matches: passed to the next tier; no later tier has a policy for it: allowed (the "
        "namespace's Kubernetes profile allows everything)",
        "ingress at shop/api-1: tier security (order 100, defaultAction Deny): GlobalNetworkPolicy security.guard "
        "ingress[0] (Pass): matches: passed to the next tier; tier default (order 1000000, defaultAction Deny): "
        "NetworkPolicy shop/api ingress[0] (Allow): matches: allowed",
        "GlobalNetworkPolicy security.guard egress[1] comes from policies/guard.py:7",
        "GlobalNetworkPolicy security.guard ingress[0] comes from policies/guard.py:7",
        "NetworkPolicy shop/api ingress[0] comes from policies/shop.py:20",
        "shop/web-1 -> shop/api-1 tcp/9000: allowed",
    ]
    assert "no rule of NetworkPolicy shop/api, KubernetesNetworkPolicy shop/default-deny matches" in bank_api[1]
    assert "the source port is unknown, so it is in no listed port" in bank_api[1]
    assert "NetworkPolicy shop/api ingress[1] (Allow): matches: allowed" in bank_src_port[1]
    assert bad[0].endswith("GlobalNetworkPolicy security.guard egress[0] (Deny): matches (destination 198.51.100.1 "
                           "is in GlobalNetworkSet bad): denied")
    assert lookup[0] == ("dns: lookup of payments.example.com allowed: shop/web-1 -> kube-system/coredns-1 udp/53 "
                         "is allowed")
    assert "traffic from the pod's own node node/node-1 is never policed" in own_node[1]
    assert "end-of-tier deny" in other_node[1]
    assert echo[-2:] == ["ICMP type 8 code 0: matched against the rules' icmp/notICMP type and code",
                         "shop/web-1 -> shop/api-1 icmp: allowed"]
    assert "icmp type 8 code 0, the connection is type 8 code 1" in code_1[1]
    assert http[-2] == ("http: Felix does not see HTTP (only Istio Application Layer Policy does); the request is "
                        "opaque bytes, allowed iff the connection is")


def test_queries_text(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(cluster, "q.yaml", "queries:\n  - {from: shop/web-1, to: {ip: 198.51.100.1}, port: 443}\n")
    code, out, err = run(capsys, "simulate", "--engine", "calico", "--inventory", "inv.yaml", "--queries", "q.yaml",
                         "--format", "text", "calico")
    assert (code, err) == (0, "")
    assert out == expect("""
        engine: calico

        [1] shop/web-1 -> 198.51.100.1 tcp/443: drop
            egress at shop/web-1: tier security (order 100, defaultAction Deny): GlobalNetworkPolicy security.guard egress[0] (Deny): matches (destination 198.51.100.1 is in GlobalNetworkSet bad): denied
            ingress: destination 198.51.100.1 is not a pod; no policy applies
            GlobalNetworkPolicy security.guard egress[0] comes from policies/guard.py:7
            shop/web-1 -> 198.51.100.1 tcp/443: denied by egress
        """)  # noqa: E501


def test_explain(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "explain", "--engine", "calico", "--inventory", "inv.yaml", "--from", "bank/api-1",
                         "--to", "shop/api-1", "--port", "9000", "calico")
    assert (code, err) == (0, "")
    assert out == expect("""
        connection: bank/api-1 -> shop/api-1 tcp/9000
        engine: calico (projectcalico.org/v3 Tier, GlobalNetworkPolicy, NetworkPolicy, GlobalNetworkSet, NetworkSet; networking.k8s.io/v1 NetworkPolicy the Calico way)
        staged, never enforced: StagedGlobalNetworkPolicy lockdown

        1. egress at the source bank/api-1
           egress at bank/api-1: no policy with type Egress selects it: allowed (the namespace's Kubernetes profile allows everything)

        2. ingress at the destination shop/api-1
           selected by (type Ingress), in evaluation order:
             tier security (order 100, defaultAction Deny); from calico/policies.yaml: document 1
               GlobalNetworkPolicy security.guard (no order)
                 from calico/policies.yaml: document 2; netpol-dsl source policies/guard.py:7
             tier default (order 1000000, defaultAction Deny)
               NetworkPolicy shop/api (order 100)
                 from calico/shop.yaml: document 1; netpol-dsl source policies/shop.py:20
               KubernetesNetworkPolicy shop/default-deny (order 1000)
                 from calico/shop.yaml: document 2
           tier security (order 100, defaultAction Deny):
             GlobalNetworkPolicy security.guard ingress[0] (Pass): matches: passed to the next tier
           tier default (order 1000000, defaultAction Deny):
             NetworkPolicy shop/api ingress[0] (Allow): no match: source: bank/api-1 does not match namespace shop and serviceAccounts.selector "tier == 'frontend'"
             NetworkPolicy shop/api ingress[1] (Allow): no match: source: the source port is unknown, so it is in no listed port
             NetworkPolicy shop/api ingress[2] (Allow): no match: protocol ICMP, the connection is TCP
             no rule matches: end-of-tier deny (defaultAction Deny)
           => ingress denied: end-of-tier deny of tier default

        GlobalNetworkPolicy security.guard ingress[0] comes from policies/guard.py:7
        bank/api-1 -> shop/api-1 tcp/9000: denied by ingress
        verdict: drop
        """)  # noqa: E501


def test_explain_icmp_and_own_node(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "explain", "--engine", "calico", "--inventory", "inv.yaml", "--from", "shop/web-1",
                         "--to", "shop/api-1", "--protocol", "ICMP", "calico")
    assert (code, err) == (0, "")
    assert "ICMP: explained as echo request (type 8, code 0)" in out
    assert "NetworkPolicy shop/api ingress[2] (Allow): matches: allowed" in out
    assert out.endswith("shop/web-1 -> shop/api-1 icmp: allowed\nverdict: allow\n")
    code, out, err = run(capsys, "explain", "--engine", "calico", "--inventory", "inv.yaml", "--from", "node/node-1",
                         "--to", "shop/api-1", "--port", "22", "calico")
    assert (code, err) == (0, "")
    assert "2. ingress at the destination shop/api-1\n   ingress at shop/api-1: allowed, traffic from the pod's own " \
           "node node/node-1 is never policed" in out
    assert out.endswith("verdict: allow\n")


def test_matrix(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "simulate", "--engine", "calico", "--inventory", "inv.yaml", "--port", "9000",
                         "calico")
    assert (code, err) == (0, "")
    assert out == expect("""
        engine calico, TCP/9000: may the pod of each row connect to the pod of each column? (A allow, . drop)

        columns:
          1  bank/api-1
          2  kube-system/coredns-1
          3  shop/api-1
          4  shop/web-1

                               1 2 3 4
        bank/api-1             A A . .
        kube-system/coredns-1  A A . .
        shop/api-1             A A A .
        shop/web-1             A A A A
        """)


def test_namespace_labels_reach_network_sets(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(cluster, "calico/partners.yaml", """\
        apiVersion: projectcalico.org/v3
        kind: NetworkSet
        metadata: {name: partners, namespace: bank, labels: {kind: partner}}
        spec: {nets: [203.0.113.0/24]}
        ---
        apiVersion: projectcalico.org/v3
        kind: GlobalNetworkPolicy
        metadata: {name: partners}
        spec:
          tier: security
          selector: app == 'api'
          order: 1
          ingress:
            - action: Allow
              source: {selector: kind == 'partner', namespaceSelector: team == 'money'}
        """)
    results = simulate(capsys, "queries:\n  - {from: {name: payments.example.com}, to: shop/api-1, port: 9000}\n")
    assert results[0]["verdict"] == "allow"
    assert "(source payments.example.com is in NetworkSet bank/partners): allowed" in results[0]["explanation"][1]


def test_plain_network_policies_evaluate_as_with_the_kubernetes_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Calico enforces NetworkPolicy as Kubernetes defines it: the same matrix, pod to pod."""
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        assert main(["build", "examples/three_tier_l4.py", "-o", "-"]) == 0
    finally:
        os.chdir(old)
    stream, _ = capsys.readouterr()
    write(tmp_path, "three-tier.yaml", stream)
    write(tmp_path, "inv.yaml", """\
        namespaces: {shop: {}, kube-system: {}}
        pods:
          - {namespace: shop, name: frontend-1, labels: {app: frontend}, ip: 10.0.1.5}
          - {namespace: shop, name: backend-1, labels: {app: backend}, ip: 10.0.1.6, ports: [{port: 8080, name: http}]}
          - {namespace: shop, name: database-1, labels: {app: database}, ip: 10.0.1.7}
          - {namespace: kube-system, name: coredns-1, labels: {k8s-app: kube-dns}, ip: 10.0.0.10}
        """)
    monkeypatch.chdir(tmp_path)
    for protocol, port in (("TCP", "8080"), ("TCP", "5432"), ("UDP", "53")):
        matrices = []
        for engine in ("kubernetes", "calico"):
            code, out, err = run(capsys, "simulate", "--engine", engine, "--inventory", "inv.yaml", "--port", port,
                                 "--protocol", protocol, "--format", "json", "three-tier.yaml")
            assert (code, err) == (0, "")
            matrices.append(json.loads(out)["matrix"])
        assert matrices[0] == matrices[1]
        assert "allow" in str(matrices[1]) and "drop" in str(matrices[1])


def test_input_errors_name_file_and_document(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(cluster, "calico/bad.yaml", """\
        apiVersion: projectcalico.org/v3
        kind: GlobalNetworkPolicy
        metadata: {name: bad-selector}
        spec:
          selector: app = 'web'
        ---
        apiVersion: projectcalico.org/v3
        kind: NetworkPolicy
        metadata: {name: lost, namespace: shop}
        spec:
          tier: nowhere
        ---
        apiVersion: projectcalico.org/v3
        kind: NetworkPolicy
        metadata: {name: api, namespace: shop}
        spec: {selector: all()}
        ---
        apiVersion: projectcalico.org/v3
        kind: GlobalNetworkPolicy
        metadata: {name: tiered}
        spec: {tier: security, egress: [{action: Allow, destination: {services: {name: api, namespace: shop}}}]}
        """)
    code, out, err = run(capsys, "simulate", "--engine", "calico", "--inventory", "inv.yaml", "--port", "1", "calico")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "netpol-dsl: error: calico/shop.yaml: document 1: NetworkPolicy shop/api is defined twice (first at "
        "calico/bad.yaml: document 3); the API server would keep one (engine calico)",
        "netpol-dsl: error: calico/bad.yaml: document 1: GlobalNetworkPolicy bad-selector: spec.selector: invalid "
        "selector \"app = 'web'\": expected == (engine calico)",
        "netpol-dsl: error: calico/bad.yaml: document 2: NetworkPolicy shop/lost: spec.tier: no Tier 'nowhere' "
        "(define it with a projectcalico.org/v3 Tier; built in are default, kube-admin, kube-baseline) (engine calico)",
        "netpol-dsl: error: calico/bad.yaml: document 4: GlobalNetworkPolicy tiered: spec.egress[0].destination."
        "services: a service match needs the Service's endpoints, which the Calico engine cannot know offline; "
        "select the pods instead (engine calico)",
    ]


def test_unsupported_kinds_are_errors(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(cluster, "calico/hep.yaml", """\
        apiVersion: projectcalico.org/v3
        kind: HostEndpoint
        metadata: {name: eth0}
        spec: {node: node-1, interfaceName: eth0}
        """)
    code, out, err = run(capsys, "simulate", "--engine", "calico", "--inventory", "inv.yaml", "--port", "1", "calico")
    assert (code, out) == (2, "")
    assert "calico/hep.yaml: document 1: unsupported kind 'HostEndpoint'" in err

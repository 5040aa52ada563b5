"""CLI transcripts of `netpol-dsl simulate`: arguments, exit status, stdout and stderr."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.simulate.helpers import run, write

QUERIES = """\
queries:
  - {from: shop/web-1, to: shop/api-1, port: 9000, protocol: TCP}
  - {from: shop/web-1, to: {name: payments.example.com}, port: 443, protocol: TCP, dns_lookup: true}
"""
SIM = ("simulate", "--engine", "kubernetes", "--inventory", "inv.yaml")


def expect(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_queries_json(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, "q.yaml", QUERIES)
    code, out, err = run(capsys, *SIM, "--queries", "q.yaml", "policies")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"engine": "kubernetes", "results": [
        {"query": {"from": "shop/web-1", "to": "shop/api-1", "port": 9000, "protocol": "TCP"},
         "verdict": "allow",
         "explanation": [
             "egress at shop/web-1: isolated by shop/default-deny, shop/dns, shop/web; allowed by shop/web egress[0]",
             "ingress at shop/api-1: isolated by shop/default-deny, shop/api; allowed by shop/api ingress[0]",
             "shop/web-1 -> shop/api-1 tcp/9000: allowed"]},
        {"query": {"from": "shop/web-1", "to": {"name": "payments.example.com"}, "port": 443, "protocol": "TCP",
                   "dns_lookup": True},
         "verdict": "allow",
         "explanation": [
             "dns: lookup of payments.example.com allowed: shop/web-1 -> kube-system/coredns-1 udp/53 is allowed",
             "egress at shop/web-1: isolated by shop/default-deny, shop/dns, shop/web; allowed by shop/web egress[1]",
             "ingress: destination payments.example.com is not a pod; no policy applies",
             "shop/web-1 -> payments.example.com tcp/443: allowed"]},
    ]}
    assert out.startswith('{\n  "engine": "kubernetes",\n  "results": [\n    {\n      "query": {\n')


def test_queries_text(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, "q.yaml", QUERIES)
    code, out, err = run(capsys, *SIM, "--queries", "q.yaml", "--format", "text", "policies")
    assert (code, err) == (0, "")
    assert out == expect("""
        engine: kubernetes

        [1] shop/web-1 -> shop/api-1 tcp/9000: allow
            egress at shop/web-1: isolated by shop/default-deny, shop/dns, shop/web; allowed by shop/web egress[0]
            ingress at shop/api-1: isolated by shop/default-deny, shop/api; allowed by shop/api ingress[0]
            shop/web-1 -> shop/api-1 tcp/9000: allowed

        [2] shop/web-1 -> payments.example.com tcp/443: allow
            dns: lookup of payments.example.com allowed: shop/web-1 -> kube-system/coredns-1 udp/53 is allowed
            egress at shop/web-1: isolated by shop/default-deny, shop/dns, shop/web; allowed by shop/web egress[1]
            ingress: destination payments.example.com is not a pod; no policy applies
            shop/web-1 -> payments.example.com tcp/443: allowed
        """)


def test_drop_verdicts_still_exit_0(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, "q.yaml", "queries: [{from: shop/api-1, to: shop/web-1, port: 8080}]\n")
    code, out, err = run(capsys, *SIM, "--queries", "q.yaml", "policies")
    assert (code, err, json.loads(out)["results"][0]["verdict"]) == (0, "", "drop")


def test_matrix_text(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *SIM, "--port", "9000", "--protocol", "TCP", "policies")
    assert (code, err) == (0, "")
    assert out == expect("""
        engine kubernetes, TCP/9000: may the pod of each row connect to the pod of each column? (A allow, . drop)

        columns:
          1  bank/api-1
          2  kube-system/coredns-1
          3  shop/api-1
          4  shop/web-1

                               1 2 3 4
        bank/api-1             A A . .
        kube-system/coredns-1  A A . .
        shop/api-1             . . A .
        shop/web-1             . . A A
        """)


def test_matrix_json_with_filters(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *SIM, "--port", "9000", "--from", "shop", "--to", "shop/api-1", "--to", "bank",
                         "--format", "json", "policies")
    assert (code, err) == (0, "")
    assert out == expect("""
        {"engine": "kubernetes", "port": 9000, "protocol": "TCP", "matrix": {
          "shop/api-1": {"bank/api-1": "drop", "shop/api-1": "allow"},
          "shop/web-1": {"bank/api-1": "drop", "shop/api-1": "allow"}
        }}
        """)


def test_matrix_json_icmp_has_no_port(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *SIM, "--protocol", "icmp", "--from", "bank", "--format", "json", "policies")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"engine": "kubernetes", "port": None, "protocol": "ICMP", "matrix": {
        "bank/api-1": {"bank/api-1": "allow", "kube-system/coredns-1": "allow", "shop/api-1": "drop",
                       "shop/web-1": "drop"}}}


def test_matrix_json_of_many_pods_is_valid_and_ordered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """More than one 64-destination block, and rows sharing cached fragments."""
    monkeypatch.chdir(tmp_path)
    pods = "".join(f"  - {{namespace: ns{i % 3}, name: p{i:03d}, labels: {{app: a{i % 4}}}, ip: 10.0.0.{i + 1}}}\n"
                   for i in range(150))
    write(tmp_path, "inv.yaml", "namespaces: {ns0: {}, ns1: {}, ns2: {}}\npods:\n" + pods)
    write(tmp_path, "p.yaml", """\
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: a1-only, namespace: ns1}
        spec:
          podSelector: {}
          ingress:
            - from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: a1}}}, {ipBlock: {cidr: 10.0.0.0/26}}]
        """)
    code, out, err = run(capsys, *SIM, "--port", "80", "--format", "json", "p.yaml")
    assert (code, err) == (0, "")
    matrix = json.loads(out)["matrix"]
    names = sorted(f"ns{i % 3}/p{i:03d}" for i in range(150))
    assert list(matrix) == names and all(list(row) == names for row in matrix.values())
    for src, row in matrix.items():
        number = int(src[-3:])
        for dst, verdict in row.items():
            admitted = not dst.startswith("ns1/") or number % 4 == 1 or number + 1 < 64 or src == dst
            assert verdict == ("allow" if admitted else "drop"), (src, dst)


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (("--queries", "q.yaml", "--port", "80", "--from", "shop"),
         "netpol-dsl: error: --port, --from: only for the matrix, not with --queries\n"),
        (("--protocol", "TCP"), "netpol-dsl: error: --port: a port number 1-65535 is required for TCP\n"),
        (("--protocol", "GRE", "--port", "1"),
         "netpol-dsl: error: --protocol: expected TCP, UDP, SCTP, ICMP or ICMPv6, got 'GRE'\n"),
        (("--protocol", "ICMP", "--port", "1"), "netpol-dsl: error: --port: ICMP has no ports\n"),
        (("--port", "80", "--from", "nope", "--to", "shop/nope"),
         "netpol-dsl: error: no pod or namespace 'nope' in the inventory\n"),
        (("--queries", "missing.yaml"),
         "netpol-dsl: error: missing.yaml: cannot read queries: No such file or directory\n"),
    ],
)
def test_usage_errors_exit_2(shop: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                             stderr: str) -> None:
    write(shop, "q.yaml", QUERIES)
    assert run(capsys, *SIM, *args, "policies") == (2, "", stderr)


def test_unknown_engine_is_an_argparse_error(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "simulate", "--engine", "antrea", "--inventory", "inv.yaml", "--port", "1", "policies")
    assert (code, out) == (2, "")
    assert "argument --engine: invalid choice: 'antrea' (choose from" in err


def test_input_errors_of_every_file_at_once(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, "bad-inv.yaml", "namespaces: {shop: {}}\n---\npods: [{namespace: shop, name: a, ip: nope}]\n")
    write(shop, "bad/p.yaml", "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\n")
    write(shop, "bad/q.yaml", "- not a policy\n")
    code, out, err = run(capsys, "simulate", "--engine", "kubernetes", "--inventory", "bad-inv.yaml", "--port", "1",
                         "bad", "nope")
    assert (code, out) == (2, "")
    assert err == expect("""
        netpol-dsl: error: bad-inv.yaml: document 2: pods[0].ip: invalid IP address 'nope'
        netpol-dsl: error: nope: no such file or folder
        """)
    code, out, err = run(capsys, *SIM, "--port", "1", "bad")
    assert (code, out) == (2, "")
    assert err == expect("""
        netpol-dsl: error: bad/q.yaml: document 1: expected a Kubernetes object, got list
        """)
    code, out, err = run(capsys, *SIM, "--port", "1", "bad/p.yaml")
    assert (code, out) == (2, "")
    assert err == ("netpol-dsl: error: bad/p.yaml: document 1: unsupported kind 'CiliumNetworkPolicy' (apiVersion "
                   "'cilium.io/v2'); only networking.k8s.io/v1 NetworkPolicy is understood (engine kubernetes)\n")


def test_query_naming_an_unknown_host_exits_2(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, "q.yaml", "queries:\n  - {from: shop/web-1, to: {name: evil.example.com}, port: 443}\n")
    assert run(capsys, *SIM, "--queries", "q.yaml", "policies") == (2, "", (
        "netpol-dsl: error: q.yaml: document 1: queries[0].to: the name 'evil.example.com' is not in the "
        "inventory's external entries\n"))


def test_several_inventories_including_kubectl_lists(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(shop, "more.yaml", """\
        apiVersion: v1
        kind: List
        items:
          - {apiVersion: v1, kind: Namespace, metadata: {name: dev, labels: {team: web}}}
          - apiVersion: v1
            kind: Pod
            metadata: {name: tool, namespace: dev, labels: {app: web}}
            spec: {containers: [{name: c, image: x}]}
            status: {podIP: 10.0.3.1}
        """)
    code, out, err = run(capsys, *SIM, "--inventory", "more.yaml", "--port", "9000", "--from", "dev", "--to", "shop",
                         "--format", "json", "policies")
    assert (code, err) == (0, "")
    assert json.loads(out)["matrix"] == {"dev/tool": {"shop/api-1": "drop", "shop/web-1": "drop"}}

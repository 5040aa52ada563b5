"""`simulate --engine cilium` and `explain --engine cilium` on manifests `netpol-dsl build -t cilium` wrote.

DNS lookups, toFQDNs (only for names the DNS proxy saw), HTTP rules (allow / l7-deny, opaque bytes
dropped), plain NetworkPolicy the Cilium way, provenance in `explain`, the matrix, and input errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from netpol_dsl.inventory import InputError, load_inventory
from netpol_dsl.simulate import engine_names, load_manifests, make_engine
from tests.helpers import ROOT
from tests.simulate.helpers import POLICIES, run, write

EXAMPLES = ("three_tier", "l7_api", "fqdn_pattern")

INVENTORY = """\
cluster: {name: prod}
namespaces: {shop: {}, default: {}, kube-system: {}, logging: {}}
pods:
  - {namespace: kube-system, name: coredns-1, labels: {k8s-app: kube-dns}, ip: 10.0.0.10,
     ports: [{port: 53, protocol: UDP, name: dns}, {port: 53, protocol: TCP, name: dns-tcp}]}
  - {namespace: shop, name: frontend-1, labels: {app: frontend}, ip: 10.0.1.5}
  - {namespace: shop, name: backend-1, labels: {app: backend}, ip: 10.0.1.6, ports: [{port: 8080, name: http}]}
  - {namespace: shop, name: database-1, labels: {app: database}, ip: 10.0.1.7}
  - {namespace: logging, name: fluent-bit-1, labels: {app: fluent-bit}, ip: 10.0.3.5}
  - {namespace: default, name: frontend-1, labels: {app: frontend}, ip: 10.0.2.5}
  - {namespace: default, name: backend-1, labels: {app: backend}, ip: 10.0.2.6}
  - {namespace: default, name: demo-1, labels: {app: demo-container}, ip: 10.0.2.7}
external:
  - {name: payments.example.com, ips: [203.0.113.7]}
  - {name: www.bing.com, ips: [198.51.100.10]}
  - {name: bing.com, ips: [198.51.100.11]}
  - {name: a.b.bing.com, ips: [198.51.100.12]}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The YAML stream of `netpol-dsl build examples/NAME.py -t cilium -o -` per example, built at the root."""
    out = {}
    for name in EXAMPLES:
        done = subprocess.run([sys.executable, "-m", "netpol_dsl", "build", f"examples/{name}.py", "-t", "cilium",
                               "-o", "-"], cwd=ROOT, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert "error[" not in done.stderr  # warnings (NPD301 for the L7 example) are expected
        out[name] = done.stdout
    return out


@pytest.fixture
def cluster(built: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with inv.yaml and NAME.yaml for every example."""
    for name, stream in built.items():
        (tmp_path / f"{name}.yaml").write_text(stream, encoding="utf-8")
    write(tmp_path, "inv.yaml", INVENTORY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def simulate(capsys: pytest.CaptureFixture[str], manifests: str, queries: str,
             engine: str = "cilium") -> list[dict[str, Any]]:
    write(Path.cwd(), "q.yaml", queries)
    code, out, err = run(capsys, "simulate", "--engine", engine, "--inventory", "inv.yaml", "--queries", "q.yaml",
                         manifests)
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["engine"] == engine
    results: list[dict[str, Any]] = doc["results"]
    return results


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    return [r["verdict"] for r in results]


def line_of(example: str, text: str) -> int:
    lines = (ROOT / "examples" / f"{example}.py").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, start=1) if text in line)


# --------------------------------------------------------------------------------------------
# toFQDNs and DNS


def test_the_engine_is_registered() -> None:
    assert engine_names() == ("calico", "cilium", "kubernetes")


def test_fqdn_needs_a_lookup_the_dns_proxy_sees(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = simulate(capsys, "three_tier.yaml", """\
        queries:
          - {from: shop/backend-1, to: {name: payments.example.com}, port: 443, dns_lookup: true}
          - {from: shop/backend-1, to: {ip: 203.0.113.7}, port: 443}
          - {from: shop/backend-1, to: {name: payments.example.com}, port: 443}
          - {from: shop/frontend-1, to: {name: payments.example.com}, port: 443, dns_lookup: true}
          - {from: shop/backend-1, to: {name: payments.example.com}, port: 80, dns_lookup: true}
        """)
    assert verdicts(results) == ["allow", "drop", "drop", "drop", "drop"]
    allowed = results[0]["explanation"]
    assert any("the DNS proxy sees the name" in line for line in allowed)
    assert any(line.startswith("CiliumNetworkPolicy shop/backend egress[0] comes from ")
               and f"examples/three_tier.py:{line_of('three_tier', 'allow(backend >> payments')}" in line
               for line in allowed)
    assert any("no DNS name was resolved for 203.0.113.7" in line for line in results[1]["explanation"])
    # the frontend may ask kube-dns (allow-dns), but without rules.dns the proxy never learns the name
    assert any("does not learn this name" in line for line in results[3]["explanation"])
    assert results[0]["query"] == {"from": "shop/backend-1", "to": {"name": "payments.example.com"}, "port": 443,
                                   "dns_lookup": True}


def test_lookup_without_a_rules_dns_pattern_does_not_open_to_fqdns(cluster: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Without the fqdn-dns-backend policy the DNS query is still allowed (allow-dns), but toFQDNs matches nothing."""
    documents = (cluster / "three_tier.yaml").read_text(encoding="utf-8").split("\n---\n")
    kept = [d for d in documents if "name: fqdn-dns-backend" not in d]
    assert len(kept) == len(documents) - 1
    write(cluster, "no-dns-rules.yaml", "\n---\n".join(kept))
    results = simulate(capsys, "no-dns-rules.yaml", """\
        queries:
          - {from: shop/backend-1, to: {name: payments.example.com}, port: 443, dns_lookup: true}
        """)
    assert verdicts(results) == ["drop"]
    assert any("lets the DNS proxy see payments.example.com" in line for line in results[0]["explanation"])


def test_rules_dns_must_be_on_the_path_to_the_dns_pod(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rules.dns pattern on a rule toward another DNS server: the query to kube-dns passes (allow-dns),
    unproxied, so the proxy never learns the name."""
    documents = (cluster / "three_tier.yaml").read_text(encoding="utf-8").split("\n---\n")
    moved = [d.replace("k8s-app: kube-dns", "k8s-app: other-dns") if "name: fqdn-dns-backend" in d else d
             for d in documents]
    assert moved != documents
    write(cluster, "moved.yaml", "\n---\n".join(moved))
    results = simulate(capsys, "moved.yaml", """\
        queries:
          - {from: shop/backend-1, to: {name: payments.example.com}, port: 443, dns_lookup: true}
        """)
    assert verdicts(results) == ["drop"]
    assert any("does not learn this name" in line for line in results[0]["explanation"])


def test_fqdn_pattern_matches_one_label(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = simulate(capsys, "fqdn_pattern.yaml", """\
        queries:
          - {from: default/demo-1, to: {name: www.bing.com}, port: 443, dns_lookup: true}
          - {from: default/demo-1, to: {name: WWW.Bing.com.}, port: 443, dns_lookup: true}
          - {from: default/demo-1, to: {name: bing.com}, port: 443, dns_lookup: true}
          - {from: default/demo-1, to: {name: a.b.bing.com}, port: 443, dns_lookup: true}
          - {from: default/demo-1, to: {name: www.bing.com}, port: 443}
          - {from: default/demo-1, to: {name: www.bing.com}, port: 80, dns_lookup: true}
        """)
    assert verdicts(results) == ["allow", "allow", "drop", "drop", "drop", "drop"]
    refused = results[2]["explanation"]
    assert any("covers bing.com: refused" in line for line in refused)
    assert refused[-1] == "the connection is never attempted"


def test_lookup_without_a_dns_pod_fails(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(cluster, "inv.yaml", "\n".join(line for line in INVENTORY.splitlines() if "coredns" not in line
                                         and "port: 53" not in line))
    results = simulate(capsys, "fqdn_pattern.yaml", """\
        queries:
          - {from: default/demo-1, to: {name: www.bing.com}, port: 443, dns_lookup: true}
        """)
    assert verdicts(results) == ["drop"]
    assert "no cluster DNS pod" in results[0]["explanation"][0]


# --------------------------------------------------------------------------------------------
# HTTP


def test_http_rules(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = simulate(capsys, "l7_api.yaml", """\
        queries:
          - {from: default/frontend-1, to: default/backend-1, port: 8080, http: {method: GET, path: /api}}
          - {from: default/frontend-1, to: default/backend-1, port: 8080, http: {method: POST, path: /api}}
          - {from: default/frontend-1, to: default/backend-1, port: 8080, http: {method: GET, path: /api/x}}
          - {from: default/frontend-1, to: default/backend-1, port: 8080}
          - {from: default/frontend-1, to: default/backend-1, port: 9090, http: {method: GET, path: /api}}
        """)
    assert verdicts(results) == ["allow", "l7-deny", "l7-deny", "drop", "drop"]
    assert any("403" in line for line in results[1]["explanation"])
    assert any("no HTTP request" in line for line in results[3]["explanation"])
    source = f"examples/l7_api.py:{line_of('l7_api', 'http=get(')}"
    assert f"CiliumNetworkPolicy default/backend ingress[0] comes from {source}" in results[0]["explanation"]


def test_plain_networkpolicy_ipblock_never_matches_pods(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same plain NetworkPolicy: ipBlock matches pod IPs for kubernetes (our widest reading), never for Cilium."""
    write(cluster, "np.yaml", """\
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: by-cidr, namespace: shop}
        spec:
          podSelector: {matchLabels: {app: frontend}}
          policyTypes: [Egress]
          egress:
            - to: [{ipBlock: {cidr: 10.0.0.0/8}}]
        """)
    queries = """\
        queries:
          - {from: shop/frontend-1, to: shop/backend-1, port: 8080}
          - {from: shop/frontend-1, to: {ip: 10.9.9.9}, port: 8080}
        """
    assert verdicts(simulate(capsys, "np.yaml", queries, engine="kubernetes")) == ["allow", "allow"]
    assert verdicts(simulate(capsys, "np.yaml", queries)) == ["drop", "allow"]


def test_plain_networkpolicy_of_the_shared_fixture(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(cluster, "shop.yaml", POLICIES)
    write(cluster, "inv.yaml", textwrap.dedent("""\
        namespaces: {shop: {}, kube-system: {}}
        pods:
          - {namespace: shop, name: web-1, labels: {app: web}, ip: 10.0.1.5}
          - {namespace: shop, name: api-1, labels: {app: api}, ip: 10.0.1.6, ports: [{port: 9000, name: http}]}
          - {namespace: kube-system, name: coredns-1, labels: {k8s-app: kube-dns}, ip: 10.0.0.10}
        external: [{name: payments.example.com, ips: [203.0.113.7]}]
        """))
    results = simulate(capsys, "shop.yaml", """\
        queries:
          - {from: shop/web-1, to: shop/api-1, port: 9000}
          - {from: shop/web-1, to: shop/api-1, port: 8080}
          - {from: shop/web-1, to: {name: payments.example.com}, port: 443, dns_lookup: true}
          - {from: shop/api-1, to: shop/web-1, port: 9000}
          - {from: shop/web-1, to: shop/api-1, protocol: ICMP}
        """)
    assert verdicts(results) == ["allow", "drop", "allow", "drop", "drop"]


def test_icmp_type_is_matched(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(cluster, "icmp.yaml", """\
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: ping, namespace: shop}
        spec:
          endpointSelector: {matchLabels: {app: backend}}
          ingress:
            - fromEndpoints: [{matchLabels: {app: frontend}}]
              icmps: [{fields: [{family: IPv4, type: EchoRequest}]}]
        """)
    results = simulate(capsys, "icmp.yaml", """\
        queries:
          - {from: shop/frontend-1, to: shop/backend-1, protocol: ICMP}
          - {from: shop/frontend-1, to: shop/backend-1, protocol: ICMP, icmp: {type: 8, code: 3}}
          - {from: shop/frontend-1, to: shop/backend-1, protocol: ICMP, icmp: {type: 0}}
          - {from: shop/database-1, to: shop/backend-1, protocol: ICMP}
          - {from: shop/frontend-1, to: shop/backend-1, port: 8080}
        """)
    assert verdicts(results) == ["allow", "allow", "drop", "drop", "drop"]
    code, out, _ = run(capsys, "explain", "--engine", "cilium", "--inventory", "inv.yaml", "--from",
                       "shop/frontend-1", "--to", "shop/backend-1", "--protocol", "icmp", "icmp.yaml")
    assert code == 0
    assert out.splitlines()[-1] == "verdict: allow"


# --------------------------------------------------------------------------------------------
# explain, matrix, errors


def test_explain_names_module_lines(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "explain", "--engine", "cilium", "--inventory", "inv.yaml", "--from",
                         "shop/frontend-1", "--to", "shop/backend-1", "--port", "8080", "three_tier.yaml")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:2] == ["connection: shop/frontend-1 -> shop/backend-1 tcp/8080", lines[1]]
    assert lines[1].startswith("engine: cilium")
    assert "cluster: prod" in lines
    fe_be = line_of("three_tier", "allow(frontend >> backend")
    at = lines.index("     CiliumNetworkPolicy shop/frontend")
    assert lines[at + 1] == f"       from three_tier.yaml: document 8; netpol-dsl source examples/three_tier.py:{fe_be}"
    assert any(line.startswith("   egress at shop/frontend-1: default deny") and
               "allowed by CiliumNetworkPolicy shop/frontend egress[0]" in line for line in lines)
    assert lines[-1] == "verdict: allow"


def test_explain_shows_the_lookup_for_a_named_destination(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "explain", "--engine", "cilium", "--inventory", "inv.yaml", "--from",
                         "shop/backend-1", "--to", "payments.example.com", "--port", "443", "three_tier.yaml")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert "verdict: drop" in lines  # by address
    assert lines[-1] == "verdict after a lookup of payments.example.com: allow"
    source = f"examples/three_tier.py:{line_of('three_tier', 'allow(backend >> payments')}"
    assert any(line.startswith("   CiliumNetworkPolicy shop/backend egress[0] comes from") and source in line
               for line in lines)


def test_explain_l7_port_and_icmp(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("explain", "--engine", "cilium", "--inventory", "inv.yaml", "--from", "default/frontend-1",
            "--to", "default/backend-1", "l7_api.yaml")
    code, out, _ = run(capsys, *base, "--port", "8080")
    assert code == 0
    assert out.splitlines()[-1] == "verdict: drop"  # explain sends opaque bytes
    assert "the connection carries no HTTP request" in out
    code, out, _ = run(capsys, *base, "--protocol", "ICMP")
    assert code == 0
    assert "ICMP: explained as echo request (type 8)" in out
    assert out.splitlines()[-1] == "verdict: drop"


def test_matrix(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "simulate", "--engine", "cilium", "--inventory", "inv.yaml", "--port", "8080",
                         "--from", "shop", "--to", "shop", "--format", "json", "three_tier.yaml")
    assert (code, err) == (0, "")
    matrix = json.loads(out)["matrix"]
    allowed = sorted((s, d) for s, row in matrix.items() for d, v in row.items() if v == "allow")
    assert allowed == [("shop/backend-1", "shop/backend-1"), ("shop/database-1", "shop/database-1"),
                       ("shop/frontend-1", "shop/backend-1"), ("shop/frontend-1", "shop/frontend-1")]
    code, out, err = run(capsys, "simulate", "--engine", "cilium", "--inventory", "inv.yaml", "--port", "8080",
                         "--from", "default", "--to", "default", "--format", "json", "l7_api.yaml")
    assert (code, err) == (0, "")
    # the matrix sends opaque bytes: dropped by the HTTP proxy
    assert json.loads(out)["matrix"]["default/frontend-1"]["default/backend-1"] == "drop"


def test_unknown_engine_exits_2(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "simulate", "--engine", "antrea", "--inventory", "inv.yaml", "--port", "1",
                         "three_tier.yaml")
    assert (code, out) == (2, "")
    assert "argument --engine: invalid choice: 'antrea' (choose from 'calico', 'cilium', 'kubernetes')" in err
    with pytest.raises(InputError, match="unknown engine 'antrea' \\(known: calico, cilium, kubernetes\\)"):
        make_engine("antrea", load_manifests(["three_tier.yaml"]), load_inventory(["inv.yaml"]))


def test_manifest_errors_exit_2_all_at_once(cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(cluster, "bad.yaml", """\
        apiVersion: v1
        kind: Service
        metadata: {name: x}
        ---
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata: {name: y}
        spec: {endpointSelector: {}, ingress: [{toFQDNs: []}]}
        """)
    code, out, err = run(capsys, "simulate", "--engine", "cilium", "--inventory", "inv.yaml", "--port", "1",
                         "bad.yaml", "l7_api.yaml", "l7_api.yaml")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "netpol-dsl: error: l7_api.yaml: document 1: CiliumNetworkPolicy default/allow-dns is defined twice "
        "(first at l7_api.yaml: document 1); the API server would keep one (engine cilium)",
        "netpol-dsl: error: l7_api.yaml: document 2: CiliumNetworkPolicy default/backend is defined twice "
        "(first at l7_api.yaml: document 2); the API server would keep one (engine cilium)",
        "netpol-dsl: error: l7_api.yaml: document 3: CiliumNetworkPolicy default/default-deny is defined twice "
        "(first at l7_api.yaml: document 3); the API server would keep one (engine cilium)",
        "netpol-dsl: error: l7_api.yaml: document 4: CiliumNetworkPolicy default/frontend is defined twice "
        "(first at l7_api.yaml: document 4); the API server would keep one (engine cilium)",
        "netpol-dsl: error: bad.yaml: document 1: unsupported kind 'Service' (apiVersion 'v1'); the Cilium engine "
        "understands cilium.io/v2 CiliumNetworkPolicy/CiliumClusterwideNetworkPolicy/CiliumCIDRGroup and "
        "networking.k8s.io/v1 NetworkPolicy (engine cilium)",
        "netpol-dsl: error: bad.yaml: document 2: CiliumNetworkPolicy default/y ingress[0]: unknown or misplaced "
        "fields ['toFQDNs'] (engine cilium)",
    ]

"""`netpol-dsl explain`: the decision step by step, with provenance of manifests netpol-dsl generated."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from netpol_dsl.cli import main
from tests.helpers import ROOT
from tests.simulate.helpers import run, write

THREE_TIER_INVENTORY = """\
namespaces: {shop: {}, kube-system: {}}
pods:
  - {namespace: shop, name: frontend-1, labels: {app: frontend}, ip: 10.0.1.5}
  - {namespace: shop, name: backend-1, labels: {app: backend}, ip: 10.0.1.6, ports: [{port: 8080, name: http}]}
  - {namespace: shop, name: database-1, labels: {app: database}, ip: 10.0.1.7}
  - {namespace: kube-system, name: coredns-1, labels: {k8s-app: kube-dns}, ip: 10.0.0.10}
"""


def _line_of(text: str) -> int:
    """The line of examples/three_tier_l4.py that contains ``text`` (1-based)."""
    lines = (ROOT / "examples" / "three_tier_l4.py").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, start=1) if text in line)


@pytest.fixture
def three_tier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """The manifests of `netpol-dsl build examples/three_tier_l4.py -o -`, built from the repository root."""
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        assert main(["build", "examples/three_tier_l4.py", "-o", "-"]) == 0
    finally:
        os.chdir(old)
    stream, _ = capsys.readouterr()
    write(tmp_path, "three-tier.yaml", stream)
    write(tmp_path, "inv.yaml", THREE_TIER_INVENTORY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_explain_allowed_connection_names_rules_and_module_lines(three_tier: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "explain", "--engine", "kubernetes", "--inventory", "inv.yaml",
                         "--from", "shop/frontend-1", "--to", "shop/backend-1", "--port", "8080", "--protocol", "TCP",
                         "three-tier.yaml")
    assert (code, err) == (0, "")
    baseline = _line_of("baseline=")
    fe_be = _line_of("allow(frontend >> backend")
    be_db = _line_of("allow(backend >> database")
    src = "netpol-dsl source examples/three_tier_l4.py"
    dns_rule = ("shop/allow-dns egress[0]: no match: shop/backend-1 does not match to: namespaceSelector"
                "{kubernetes.io/metadata.name=kube-system} and podSelector{k8s-app=kube-dns}; and tcp/8080 does not "
                "match ports: TCP/53, UDP/53")
    assert out == textwrap.dedent(f"""\
        connection: shop/frontend-1 -> shop/backend-1 tcp/8080
        engine: kubernetes (networking.k8s.io/v1 NetworkPolicy)

        1. egress at the source shop/frontend-1
           selected by (policyType Egress):
             shop/allow-dns     podSelector {{}}  [Egress]
                                from three-tier.yaml: document 1; {src}:{baseline}
             shop/default-deny  podSelector {{}}  [Ingress, Egress]
                                from three-tier.yaml: document 4; {src}:{baseline}
             shop/frontend      podSelector {{app=frontend}}  [Egress]
                                from three-tier.yaml: document 5; {src}:{fe_be}
           isolated for egress: only what one of their egress rules allows passes
           {dns_rule}
           shop/frontend egress[0]: matches (to: podSelector{{app=backend}}; ports: TCP/8080)
           => egress allowed by shop/frontend egress[0] ({src}:{fe_be})

        2. ingress at the destination shop/backend-1
           selected by (policyType Ingress):
             shop/backend       podSelector {{app=backend}}  [Ingress, Egress]
                                from three-tier.yaml: document 2; {src}:{fe_be}, examples/three_tier_l4.py:{be_db}
             shop/default-deny  podSelector {{}}  [Ingress, Egress]
                                from three-tier.yaml: document 4; {src}:{baseline}
           isolated for ingress: only what one of their ingress rules allows passes
           shop/backend ingress[0]: matches (from: podSelector{{app=frontend}}; ports: TCP/8080)
           => ingress allowed by shop/backend ingress[0] ({src}:{fe_be}, examples/three_tier_l4.py:{be_db})

        verdict: allow
        """)


def test_explain_denied_connection_says_why_no_rule_matched(three_tier: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "explain", "--engine", "kubernetes", "--inventory", "inv.yaml",
                         "--from", "shop/frontend-1", "--to", "shop/database-1", "--port", "5432", "three-tier.yaml")
    assert (code, err) == (0, "")
    assert ("   shop/frontend egress[0]: no match: shop/database-1 does not match to: podSelector{app=backend}; "
            "and tcp/5432 does not match ports: TCP/8080\n"
            "   => egress denied: no egress rule of a selecting policy matches\n") in out
    assert ("   shop/database ingress[0]: no match: shop/frontend-1 does not match from: podSelector{app=backend}\n"
            "   => ingress denied: no ingress rule of a selecting policy matches\n") in out
    assert out.endswith("\nverdict: drop (denied by egress and ingress)\n")


def test_explain_other_endpoints(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ("explain", "--engine", "kubernetes", "--inventory", "inv.yaml")
    code, out, _ = run(capsys, *base, "--from", "shop/web-1", "--to", "shop/web-1", "--protocol", "icmp", "policies")
    assert (code, out) == (0, textwrap.dedent("""\
        connection: shop/web-1 -> shop/web-1 icmp
        engine: kubernetes (networking.k8s.io/v1 NetworkPolicy)

        shop/web-1 talks to itself: loopback traffic never passes NetworkPolicy

        verdict: allow
        """))
    code, out, _ = run(capsys, *base, "--from", "node/node-1", "--to", "10.0.1.6", "--port", "22", "policies")
    assert (code, out) == (0, textwrap.dedent("""\
        connection: node/node-1 -> shop/api-1 tcp/22
        engine: kubernetes (networking.k8s.io/v1 NetworkPolicy)

        1. egress at the source node/node-1
           node/node-1 is not a pod: no NetworkPolicy applies
           => egress allowed

        2. ingress at the destination shop/api-1
           the source is the pod's own node node/node-1: always allowed
           => ingress allowed

        verdict: allow
        """))
    code, out, _ = run(capsys, *base, "--from", "shop/api-1", "--to", "shop/web-1", "--port", "8080", "policies")
    assert code == 0 and out.endswith(textwrap.dedent("""\
        2. ingress at the destination shop/web-1
           selected by (policyType Ingress):
             shop/default-deny  podSelector {}  [Ingress, Egress]
                                from policies/shop.yaml: document 1
           isolated for ingress: only what one of their ingress rules allows passes
           they have no ingress rules (default deny)
           => ingress denied: no ingress rule of a selecting policy matches

        verdict: drop (denied by egress and ingress)
        """))
    code, out, _ = run(capsys, *base, "--from", "bank/api-1", "--to", "payments.example.com", "--port", "443",
                       "policies")
    assert code == 0 and out.startswith("connection: bank/api-1 -> payments.example.com tcp/443\n")
    assert "   no NetworkPolicy with policyType Egress selects it: not isolated for egress\n" in out
    assert "   payments.example.com is not a pod: no NetworkPolicy applies\n" in out
    assert run(capsys, *base, "--from", "shop/web-1", "--to", "nowhere.example.com", "--port", "1", "policies") == (
        2, "", "netpol-dsl: error: --to: the name 'nowhere.example.com' is not in the inventory's "
               "external entries\n")

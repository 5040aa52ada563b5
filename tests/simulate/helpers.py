"""Shared fixtures of the simulator tests: a small shop cluster, its policies, and a CLI runner."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from netpol_dsl.cli import main

INVENTORY = """\
cluster: {name: demo}
namespaces:
  shop: {team: web}
  bank: {team: money}
  kube-system: {}
pods:
  - {namespace: shop, name: web-1, labels: {app: web}, ip: 10.0.1.5, serviceAccount: web, node: node-1,
     ports: [{port: 8080, protocol: TCP, name: http}]}
  - {namespace: shop, name: api-1, labels: {app: api}, ip: 10.0.1.6, node: node-1,
     ports: [{port: 9000, protocol: TCP, name: http}]}
  - {namespace: bank, name: api-1, labels: {app: api}, ip: 10.0.2.6, node: node-2}
  - {namespace: kube-system, name: coredns-1, labels: {k8s-app: kube-dns}, ip: 10.0.0.10,
     ports: [{port: 53, protocol: UDP, name: dns}, {port: 53, protocol: TCP, name: dns-tcp}]}
nodes: [{name: node-1, ip: 192.168.0.1, labels: {}}, {name: node-2, ip: 192.168.0.2}]
external: [{name: payments.example.com, ips: [203.0.113.7]}, {ip: 198.51.100.1}]
serviceAccounts: {shop/web: {tier: frontend}}
"""

# shop: web -> api on the named port http (9000 on api-1), DNS for everyone, default deny both ways;
# bank: nothing (not isolated)
POLICIES = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dns, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to:
        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
          podSelector: {matchLabels: {k8s-app: kube-dns}}
      ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
    - to: [{podSelector: {matchLabels: {app: api}}}]
      ports: [{port: http}]
    - to: [{ipBlock: {cidr: 203.0.113.0/24}}]
      ports: [{port: 443}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: web}}}]
      ports: [{port: http}]
"""


def netpol(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with inv.yaml and policies/shop.yaml; paths in messages are relative."""
    write(tmp_path, "inv.yaml", INVENTORY)
    write(tmp_path, "policies/shop.yaml", POLICIES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit status, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err

"""Inventory parsing: our form, kubectl's v1 List form, merging, lookups and malformed input."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from netpol_dsl.endpoints import ContainerPort, External, Node, Pod
from netpol_dsl.inventory import InputError, Inventory, load_inventory
from tests.simulate.helpers import INVENTORY, write

KUBECTL_LIST = """\
apiVersion: v1
kind: List
metadata: {resourceVersion: ""}
items:
  - apiVersion: v1
    kind: Namespace
    metadata:
      name: shop
      labels: {kubernetes.io/metadata.name: shop, team: web}
  - apiVersion: v1
    kind: Pod
    metadata: {name: web-1, namespace: shop, labels: {app: web}}
    spec:
      nodeName: node-1
      serviceAccountName: web
      containers:
        - name: c
          image: nginx
          ports: [{containerPort: 8080, protocol: TCP, name: http}, {containerPort: 9090}]
    status: {phase: Running, podIP: 10.0.1.5, podIPs: [{ip: 10.0.1.5}]}
  - apiVersion: v1
    kind: Pod
    metadata: {name: job-1, namespace: shop}
    spec: {containers: [{name: c, image: x}]}
    status: {phase: Succeeded}
  - apiVersion: v1
    kind: Pod
    metadata: {name: proxy-1, namespace: shop}
    spec: {hostNetwork: true, containers: [{name: c, image: x}]}
    status: {phase: Running, podIP: 192.168.0.1}
  - apiVersion: v1
    kind: Pod
    metadata: {name: pending-1, namespace: shop}
    spec: {containers: [{name: c, image: x}]}
    status: {phase: Pending}
"""


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_our_form(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, "inv.yaml", INVENTORY)])
    assert inv.cluster == "demo"
    assert [n.name for n in inv.namespaces] == ["bank", "kube-system", "shop"]
    assert dict(inv.namespaces[2].labels) == {"kubernetes.io/metadata.name": "shop", "team": "web"}
    assert [p.describe() for p in inv.pods] == ["bank/api-1", "kube-system/coredns-1", "shop/api-1", "shop/web-1"]
    assert inv.pod("shop/web-1") == Pod(
        "shop", "web-1", {"app": "web"}, {"kubernetes.io/metadata.name": "shop", "team": "web"}, ip=ip("10.0.1.5"),
        ports=(ContainerPort(8080, "TCP", "http"),), node="node-1", service_account="web")
    assert inv.pod("bank/api-1") is not None and inv.pod("bank/api-1").service_account == "default"  # type: ignore[union-attr]
    assert [n.name for n in inv.nodes] == ["node-1", "node-2"]
    assert inv.service_accounts[0].labels == (("tier", "frontend"),)
    assert [p.describe() for p in inv.dns_pods()] == ["kube-system/coredns-1"]


def test_lookups(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, "inv.yaml", INVENTORY)])
    assert inv.resolve("Payments.Example.com.") == (External(ip("203.0.113.7"), ("payments.example.com",)),)
    assert inv.resolve("unknown.example.com") is None
    assert inv.at_ip(ip("10.0.1.5")) == inv.pod("shop/web-1")
    assert inv.at_ip(ip("192.168.0.2")) == Node("node-2", ip("192.168.0.2"))
    assert inv.at_ip(ip("203.0.113.7")) == External(ip("203.0.113.7"), ("payments.example.com",))
    assert inv.at_ip(ip("8.8.8.8")) == External(ip("8.8.8.8"))
    assert [p.describe() for p in inv.select(["shop", "bank/api-1"])] == ["bank/api-1", "shop/api-1", "shop/web-1"]
    assert inv.select([]) == inv.pods
    with pytest.raises(InputError, match="no pod or namespace 'shop/nope'"):
        inv.select(["shop/nope"])


def test_kubectl_list_form(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, "all.yaml", KUBECTL_LIST)])
    # finished and hostNetwork pods are left out; pending pods have no IP
    assert [p.describe() for p in inv.pods] == ["shop/pending-1", "shop/web-1"]
    web = inv.pod("shop/web-1")
    assert web == Pod("shop", "web-1", {"app": "web"}, {"kubernetes.io/metadata.name": "shop", "team": "web"},
                      ip=ip("10.0.1.5"), ports=(ContainerPort(8080, "TCP", "http"), ContainerPort(9090, "TCP", "")),
                      node="node-1", service_account="web")
    assert inv.pod("shop/pending-1") is not None and inv.pod("shop/pending-1").ip is None  # type: ignore[union-attr]


def test_kubectl_lists_in_several_files_equal_our_form(tmp_path: Path) -> None:
    ours = write(tmp_path, "ours.yaml", """\
        namespaces: {shop: {team: web}}
        pods: [{namespace: shop, name: web-1, labels: {app: web}, ip: 10.0.1.5, node: node-1,
                serviceAccount: web, ports: [{port: 8080, name: http}, {port: 9090}]}]
        nodes: [{name: node-1, ip: 192.168.0.1}]
        """)
    items = KUBECTL_LIST.split("  - apiVersion: v1\n")
    namespaces = write(tmp_path, "ns.yaml", items[0] + "  - apiVersion: v1\n" + items[1])
    pods = write(tmp_path, "pods.yaml", items[0] + "  - apiVersion: v1\n" + items[2])
    node = write(tmp_path, "node.json", json.dumps({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "Hostname", "address": "n1"},
                                 {"type": "InternalIP", "address": "192.168.0.1"}]}}))
    assert load_inventory([pods, node, namespaces]) == load_inventory([ours])


def test_several_documents_and_files_merge(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "namespaces: {shop: {}}\n---\npods: [{namespace: shop, name: a}]\n")
    b = write(tmp_path, "b.yaml", "namespaces: {shop: {}}\npods: [{namespace: shop, name: b}]\ncluster: {name: x}\n")
    inv = load_inventory([a, b])
    assert [p.describe() for p in inv.pods] == ["shop/a", "shop/b"]
    assert inv == Inventory(inv.cluster, inv.namespaces, inv.pods)
    assert inv.cluster == "x"


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("namespaces: {shop: {}}\npods: [{namespace: shop, name: a, ip: 10.0.0.300}]\n",
         ["inv.yaml: document 1: pods[0].ip: invalid IP address '10.0.0.300'"]),
        ("pods: [{namespace: shop, name: a}]\n",
         ["inv.yaml: document 1: pods[0]: pod shop/a: namespace 'shop' is not in the inventory "
          "(list it under namespaces:, with its labels)"]),
        ("namespaces: {shop: {tier: 1, on: yes}}\n",
         ["inv.yaml: document 1: namespaces.shop: label 'tier': 1: keys and values must be strings (quote them)",
          "inv.yaml: document 1: namespaces.shop: label True: True: keys and values must be strings (quote them)"]),
        ("namespaces: {shop: {}}\npods: [{namespace: shop, name: a, labels: {}, colour: red}]\n",
         ["inv.yaml: document 1: pods[0]: unknown fields ['colour'] (known: ['ip', 'labels', 'name', 'namespace', "
          "'node', 'ports', 'serviceAccount'])"]),
        ("namespaces: {shop: {}}\npods: [{namespace: shop, name: a, ports: [{port: 0}, {port: 80, protocol: ICMP}]}]\n",
         ["inv.yaml: document 1: pods[0].ports[0].port: expected a port number 1-65535, got 0",
          "inv.yaml: document 1: pods[0].ports[1].protocol: expected one of TCP, UDP, SCTP, got 'ICMP'"]),
        ("namespaces: {shop: {}}\n---\npods: [{namespace: shop, name: a}, {namespace: shop, name: a, ip: 10.0.0.1}]\n",
         ["inv.yaml: document 2: pods[1]: pod shop/a is defined again differently (first at inv.yaml: document 2: "
          "pods[0])"]),
        ("services: []\n",
         ["inv.yaml: document 1: unknown top-level fields ['services'] (an inventory has cluster, external, "
          "namespaces, nodes, pods, serviceAccounts, or is a kubectl v1 List)"]),
        ("external: [{name: a.example.com}]\n",
         ["inv.yaml: document 1: external[0]: an external entry needs ip or ips"]),
        ("namespaces: {shop: {}}\n---\n- a\n", ["inv.yaml: document 2: expected a mapping (an inventory or Kubernetes "
                                                 "objects), got list"]),
        ("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: s}}\n",
         ["inv.yaml: document 1, item 1: unsupported kind 'Service' (apiVersion 'v1') in an inventory; expected v1 "
          "Namespace, Pod, Node, ServiceAccount or a v1 List of them"]),
    ],
)
def test_malformed_inventory_names_file_and_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                                    problems: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "inv.yaml", text)
    with pytest.raises(InputError) as info:
        load_inventory(["inv.yaml"])
    assert list(info.value.problems) == problems


def test_missing_inventory_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"^nope.yaml: cannot read inventory: No such file or directory$"):
        load_inventory(["nope.yaml"])


def test_invalid_yaml_names_document_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "inv.yaml", "namespaces: {shop: {}}\n---\nnamespaces: {bank: {}\n")
    with pytest.raises(InputError) as info:
        load_inventory(["inv.yaml"])
    (problem,) = info.value.problems
    assert problem.startswith("inv.yaml: document 2: invalid YAML (line 4, column 1): "), problem

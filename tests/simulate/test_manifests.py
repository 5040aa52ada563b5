"""Reading manifests: folders, multi-document files, Lists, kustomization.yaml, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from netpol_dsl.inventory import InputError, load_inventory
from netpol_dsl.simulate import load_manifests, make_engine
from tests.simulate.helpers import INVENTORY, write

NP = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: shop}}\n" \
     "spec: {{podSelector: {{}}}}\n"


def test_folders_recursive_multi_document_lists_and_kustomization(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "m/a.yaml", NP.format(name="a") + "---\n" + NP.format(name="b") + "---\n")
    write(tmp_path, "m/sub/c.yml", "apiVersion: v1\nkind: List\nitems:\n"
          + "".join(f"- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {{name: {n}}}\n"
                    for n in ("c", "d")))
    write(tmp_path, "m/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
          "resources: [a.yaml]\n")
    write(tmp_path, "m/README.md", "not yaml\n")
    write(tmp_path, "extra.txt", NP.format(name="e"))
    manifests = load_manifests(["m", "extra.txt"])
    assert [(m.where, m.body["metadata"]["name"]) for m in manifests] == [
        ("m/a.yaml: document 1", "a"),
        ("m/a.yaml: document 2", "b"),
        ("m/sub/c.yml: document 1, item 1", "c"),
        ("m/sub/c.yml: document 1, item 2", "d"),
        ("extra.txt: document 1", "e"),
    ]


@pytest.mark.parametrize(
    ("files", "problems"),
    [
        ({"p.yaml": NP.format(name="a") + "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
                    "metadata: {name: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\n"},
         ["p.yaml: document 2: unsupported kind 'CiliumNetworkPolicy' (apiVersion 'cilium.io/v2'); only "
          "networking.k8s.io/v1 NetworkPolicy is understood (engine kubernetes)",
          "p.yaml: document 3: unsupported kind 'ConfigMap' (apiVersion 'v1'); only networking.k8s.io/v1 "
          "NetworkPolicy is understood (engine kubernetes)"]),
        ({"l.yaml": "apiVersion: v1\nkind: List\nitems:\n"
          "- {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: a}, spec: {podSelector: {}}}\n"
          "- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: bad, namespace: shop}\n"
          "  spec: {podSelector: {}, ingress: [{from: [{}]}]}\n"},
         ["l.yaml: document 1, item 2: shop/bad: spec.ingress[0].from[0]: a peer must set podSelector, "
          "namespaceSelector or ipBlock (engine kubernetes)"]),
        ({"a.yaml": NP.format(name="x"), "b.yaml": NP.format(name="x")},
         ["b.yaml: document 1: NetworkPolicy shop/x is defined twice (first at a.yaml: document 1); the API server "
          "would keep one"]),
        ({"s.yaml": "- just\n- a list\n"}, ["s.yaml: document 1: expected a Kubernetes object, got list"]),
        ({"k.yaml": "apiVersion: example.com/v1\nkind: Kustomization\nmetadata: {name: k}\n"},
         ["k.yaml: document 1: unsupported kind 'Kustomization' (apiVersion 'example.com/v1'); only "
          "networking.k8s.io/v1 NetworkPolicy is understood (engine kubernetes)"]),
    ],
)
def test_refused_manifests_name_file_and_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  files: dict[str, str], problems: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        write(tmp_path, name, text)
    inventory = load_inventory([write(tmp_path, "inv.yaml", INVENTORY)])
    with pytest.raises(InputError) as info:
        make_engine("kubernetes", load_manifests(sorted(files)), inventory)
    assert list(info.value.problems) == problems


def test_missing_paths_and_empty_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError) as info:
        load_manifests(["nope", "empty"])
    assert info.value.problems == ("nope: no such file or folder", "empty: no .yaml or .yml files in this folder")


def test_unknown_engine(tmp_path: Path) -> None:
    inventory = load_inventory([write(tmp_path, "inv.yaml", INVENTORY)])
    with pytest.raises(InputError, match=r"unknown engine 'antrea' \(known: calico, cilium, kubernetes\)"):
        make_engine("antrea", (), inventory)

"""The one YAML emitter: every string a YAML 1.1 or 1.2 parser could read as another type is quoted."""

from __future__ import annotations

import pytest
import yaml  # PyYAML resolves YAML 1.1 implicit types like kubectl's parser

from netpol_dsl.render.yaml import dump, needs_quotes

AMBIGUOUS = ["true", "False", "yes", "NO", "on", "off", "y", "n", "~", "null", "", "80", "0x1F", "017", "0o17",
             "1e3", "1.5", ".5", "-1", "+1", "1_000", "8:30", ".inf", "-.Inf", ".nan", " padded", "<<", "="]
PLAIN = ["frontend", "kube-dns", "10.0.0.0/8", "app.kubernetes.io/name", "v1.2.3", "1.2.3", "y-axis", "nope"]


@pytest.mark.parametrize("text", AMBIGUOUS)
def test_ambiguous_strings_are_quoted_and_read_back_as_strings(text: str) -> None:
    assert needs_quotes(text)
    out = dump({"metadata": {"labels": {"v": text}}})
    assert yaml.safe_load(out)["metadata"]["labels"]["v"] == text


@pytest.mark.parametrize("text", PLAIN)
def test_plain_strings_stay_plain(text: str) -> None:
    assert not needs_quotes(text)
    out = dump({"k": text})
    assert out == f"k: {text}\n"
    assert yaml.safe_load(out)["k"] == text


def test_numbers_stay_numbers_and_layout_is_block_style() -> None:
    assert dump({"ports": [{"protocol": "TCP", "port": 8080}], "empty": {}}) == (
        "ports:\n  - protocol: TCP\n    port: 8080\nempty: {}\n"
    )

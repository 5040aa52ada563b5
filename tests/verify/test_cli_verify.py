"""CLI transcripts of `netpol-dsl verify`."""

from __future__ import annotations

from pathlib import Path

import pytest

from netpol_dsl.cli import main
from tests.helpers import ROOT, write_module

MODULE = """
from netpol_dsl import Policy, allow, baseline, expect, namespace, tcp

shop = namespace("shop")
web, api, db = shop.pods(app="web"), shop.pods(app="api"), shop.pods(app="db")
policy = Policy("shop", owns=[shop], baseline=baseline(),
                rules=[allow(web >> api, tcp(8080))],
                expectations=[
                    expect(web).reaches(api, tcp(8080)),
                    expect(web).reaches(db, tcp(5432)),
                ])
"""


def test_verify_reports_failed_expectations_at_their_line(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    mod = write_module(tmp_path, "shop", MODULE)
    code = main(["verify", str(mod)])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == "kubernetes: 2 expectations in 1 policy, 1 failed\n"
    assert err.count("\n") == 1
    assert ("shop.py:9: error[NPD501]: expectation 'shop/app=web reaches shop/app=db on tcp/5432' fails: the "
            "'kubernetes' output drops shop/app-web -> shop/app-db tcp/5432 (the policy itself does not allow "
            "it). See docs/errors.md#npd501\n") in err


def test_verify_examples(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code = main(["verify", "examples/three_tier_l4.py", "examples/quarantine.py", "examples/namespace_tiers.py",
                 "examples/zero_trust.py"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out == "kubernetes: 19 expectations in 4 policies, 0 failed\n"


def test_verify_reports_compile_errors_too(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code = main(["verify", "examples/three_tier.py"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "error[NPD201]" in err
    assert out.endswith(", 0 failed, 1 other error\n")

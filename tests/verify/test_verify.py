"""Expectations in policy modules, `verify` and the pytest helpers of netpol_dsl.testing."""

from __future__ import annotations

import pytest

import netpol_dsl as n
from netpol_dsl.endpoints import Pod
from netpol_dsl.testing import assert_allows, assert_denies, connectivity_matrix
from netpol_dsl.verify import Verifier, verify
from tests.helpers import EXAMPLES, load_example

SHOP = n.namespace("shop")
WEB, API, DB = SHOP.pods(app="web"), SHOP.pods(app="api"), SHOP.pods(app="db")
POLICY = n.Policy("shop", owns=[SHOP], baseline=n.baseline(),
                  rules=[n.allow(WEB >> API, n.tcp(8080)), n.allow(API >> DB, n.tcp(5432))])


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_meets_its_expectations(name: str) -> None:
    lp = load_example(name)
    try:
        diags = verify(lp.policy, "kubernetes")
    except n.CompileError:
        pytest.skip(f"{name} does not compile for kubernetes (by design)")
    assert diags == []


def test_a_wrong_expectation_is_reported_at_its_line() -> None:
    policy = n.Policy("shop", owns=[SHOP], baseline=n.baseline(), rules=[n.allow(WEB >> API, n.tcp(8080))],
                      expectations=[n.expect(WEB).reaches(DB, n.tcp(5432))])
    [d] = verify(policy, "kubernetes")
    assert d.code.name == "NPD501"
    assert d.location.file.endswith("test_verify.py") and d.location.line > 0
    assert ("expectation 'shop/app=web reaches shop/app=db on tcp/5432' fails: the 'kubernetes' output drops "
            "shop/app-web -> shop/app-db tcp/5432 (the policy itself does not allow it)") in d.message


def test_output_disagreeing_with_intent_is_blamed_on_the_target() -> None:
    v = Verifier.build(n.Policy("shop", owns=[SHOP], baseline=n.baseline(), rules=[n.allow(WEB >> API, n.tcp(8080))],
                                expectations=[n.expect(WEB).reaches(API, n.tcp(8080))]))

    class Broken:  # an engine that drops everything stands in for a wrong target
        def evaluate(self, conn: object) -> object:
            return type("V", (), {"allowed": False})()

    broken = Verifier(v.program, v.target, v.endpoints, Broken(), v.plan)
    [failure, *_] = broken.check_all()
    assert "the intent allows it: the 'kubernetes' output is wrong" in failure.diagnostic("kubernetes").message


def test_assert_helpers() -> None:
    assert_allows(POLICY, WEB, API, n.tcp(8080))
    assert_denies(POLICY, WEB, DB)
    assert_denies(POLICY, WEB, API, n.tcp(9090))
    with pytest.raises(AssertionError, match="output allows shop/app-web -> shop/app-api tcp/8080"):
        assert_denies(POLICY, WEB, API)
    with pytest.raises(AssertionError, match="output drops shop/app-web -> shop/app-db tcp/5432"):
        assert_allows(POLICY, WEB, DB, n.tcp(5432))


def test_assert_helpers_cover_zones_the_policy_never_mentions() -> None:
    other = n.namespace("other").pods(app="x")
    assert_denies(POLICY, other, API)  # not in the policy: still synthesized, and isolated API refuses it


def test_connectivity_matrix_snapshot() -> None:
    matrix = connectivity_matrix(POLICY, port=8080)
    assert "shop/app-web: shop/app-api\n" in matrix
    assert "shop/app-api: -\n" in matrix
    pods = [e for e in Verifier.build(POLICY).endpoints if isinstance(e, Pod)]
    assert matrix.count("\n") == len(pods)


def test_expectations_about_service_accounts_on_cilium() -> None:
    web = SHOP.pods(app="web").service_account("web")
    policy = n.Policy("shop", owns=[SHOP], baseline=n.baseline(), rules=[n.allow(web >> API, n.tcp(8080))],
                      expectations=[n.expect(web).reaches(API, n.tcp(8080)),
                                    n.expect(WEB.service_account("batch")).does_not_reach(API, n.tcp(8080))])
    assert verify(policy, "cilium") == []
    wrong = n.Policy("shop", owns=[SHOP], baseline=n.baseline(), rules=[n.allow(web >> API, n.tcp(8080))],
                     expectations=[n.expect(WEB).reaches(API, n.tcp(8080))])
    [d] = verify(wrong, "cilium")  # app=web pods running as another account are not allowed
    assert "the 'cilium' output drops" in d.message and "(the policy itself does not allow it)" in d.message

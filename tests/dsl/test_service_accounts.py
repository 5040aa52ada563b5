"""Service-account zones: the builders, their validation at the user's line, the IR pseudo-label, the
reference semantics and the synthesized inventory."""

from __future__ import annotations

import inspect

import pytest
from typeguard import TypeCheckError

import netpol_dsl as n
from netpol_dsl.endpoints import Connection, Pod
from netpol_dsl.ir.intent import decide, intent_labels
from netpol_dsl.ir.lower import lower, zone_peers
from netpol_dsl.ir.peers import Workloads, namespace_selector
from netpol_dsl.ir.selectors import SERVICE_ACCOUNT_KEY, Constraint, Selector, Shape
from netpol_dsl.synth import representative_endpoints

SHOP = n.namespace("shop")


def _account(*names: str) -> Selector:
    return Selector((Constraint(SERVICE_ACCOUNT_KEY, Shape.IN, names),))


def _line() -> int:
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


# ---- builders ------------------------------------------------------------------------------------


def test_service_account_is_a_pods_zone_of_the_namespace() -> None:
    zone = n.service_account("shop", "web")
    assert isinstance(zone, n.Pods)
    assert zone == SHOP.service_account("web")
    assert zone_peers(zone) == (Workloads(namespace_selector("shop"), _account("web")),)
    assert zone.describe() == "shop/serviceAccount=web"


def test_narrowing_pods_is_and() -> None:
    zone = SHOP.pods(app="web").service_account("web")
    assert zone.pods == Selector((Constraint("app", Shape.IN, ("web",)),
                                  Constraint(SERVICE_ACCOUNT_KEY, Shape.IN, ("web",))))
    assert zone.describe() == "shop/app=web,serviceAccount=web"
    assert zone.service_account("web") == zone  # the same account again changes nothing


def test_namespaces_by_label_with_an_account() -> None:
    zone = n.namespaces(team="payments").service_account("api")
    assert zone_peers(zone) == (Workloads(Selector((Constraint("team", Shape.IN, ("payments",)),)),
                                          _account("api")),)


def test_narrowing_drops_the_zone_name() -> None:
    named = SHOP.pods(app="web").named("web")
    assert named.service_account("web").name is None  # another zone: the name would be NPD013


def test_two_accounts_contradict_at_the_users_line() -> None:
    with pytest.raises(n.PolicyError) as exc:
        line = _line(); n.service_account("shop", "a").service_account("b")  # noqa: E702
    d = exc.value.diagnostic
    assert d.code.name == "NPD016" and d.location.line == line and d.location.file.endswith("test_service_accounts.py")
    assert "service_account('b') contradicts the service account of shop/serviceAccount=a" in d.message


@pytest.mark.parametrize("name", ["Web", "web_1", "", "-web", "web-", "a" * 64, "a..b", "a/b"])
def test_invalid_account_names_are_npd003_at_the_users_line(name: str) -> None:
    for build in (lambda: n.service_account("shop", name), lambda: SHOP.service_account(name),
                  lambda: SHOP.pods(app="x").service_account(name), lambda: n.all_namespaces().service_account(name)):
        with pytest.raises(n.PolicyError) as exc:
            build()
        d = exc.value.diagnostic
        assert d.code.name == "NPD003", d
        assert d.location.file.endswith("test_service_accounts.py")
        assert f"service account name {name!r} is invalid; expected a DNS-1123 subdomain" in d.message


def test_an_account_name_that_is_not_a_string_is_rejected() -> None:
    with pytest.raises(n.PolicyError) as exc:
        SHOP.service_account(42)  # type: ignore[arg-type]
    assert exc.value.diagnostic.code.name == "NPD003"
    with pytest.raises(TypeCheckError):  # reported as NPD018 by the loader
        n.service_account("shop", 42)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["web", "a" * 63, "web.frontend", "0", "system-node-critical"])
def test_valid_account_names(name: str) -> None:
    assert n.service_account("shop", name).pods == _account(name)


def test_invalid_namespace_is_npd003() -> None:
    with pytest.raises(n.PolicyError) as exc:
        n.service_account("Shop", "web")
    assert exc.value.diagnostic.code.name == "NPD003"


@pytest.mark.parametrize("build", [
    lambda: SHOP.pods({SERVICE_ACCOUNT_KEY: "web"}),
    lambda: n.label(SERVICE_ACCOUNT_KEY).equals("web"),
    lambda: n.namespaces({SERVICE_ACCOUNT_KEY: "web"}),
    lambda: n.namespace("shop", labels={SERVICE_ACCOUNT_KEY: "web"}),
    lambda: n.cluster_dns(labels={SERVICE_ACCOUNT_KEY: "web"}),
])
def test_the_pseudo_label_key_is_reserved(build: object) -> None:
    assert callable(build)
    with pytest.raises(n.PolicyError) as exc:
        build()
    d = exc.value.diagnostic
    assert d.code.name == "NPD001" and d.location.file.endswith("test_service_accounts.py")
    assert f"label key '{SERVICE_ACCOUNT_KEY}' is reserved" in d.message


def test_composes_as_source_destination_union_and_expectation() -> None:
    web, api = n.service_account("shop", "web"), SHOP.pods(app="api").service_account("api")
    either = web | api
    assert isinstance(either, n.AnyOf) and either.members == (web, api)
    policy = n.Policy("p", owns=[SHOP], baseline=n.baseline(dns=None), rules=[
        n.allow(either >> api, n.tcp(8080)),
        n.deny(web.named("web") >> n.anything(), n.tcp(22)),
    ], expectations=[n.expect(web).reaches(api, n.tcp(8080))])
    program = lower(policy)
    subjects = {r.subject for r in program.rules}
    assert Workloads(namespace_selector("shop"), _account("web")) in subjects  # egress half at web
    assert Workloads(namespace_selector("shop"), api.pods) in subjects  # ingress half at api
    assert policy.zone("web") == web.named("web")
    assert program.expectations[0].sources == zone_peers(web)


# ---- reference semantics and synthesized endpoints -------------------------------------------------


def test_intent_sees_the_account_as_a_label_and_engines_do_not() -> None:
    pod = Pod("shop", "w", {"app": "web"}, service_account="web")
    assert intent_labels(pod) == {"app": "web", SERVICE_ACCOUNT_KEY: "web"}
    assert pod.label_map == {"app": "web"}
    assert intent_labels(Pod("shop", "d"))[SERVICE_ACCOUNT_KEY] == "default"


def test_decide_selects_by_account() -> None:
    policy = n.Policy("p", owns=[SHOP], baseline=n.baseline(dns=None),
                      rules=[n.allow(n.service_account("shop", "web") >> SHOP.pods(app="db"), n.tcp(5432))])
    program = lower(policy)
    ns = {"kubernetes.io/metadata.name": "shop"}
    db = Pod("shop", "db", {"app": "db"}, ns)
    as_web = Pod("shop", "a", {"app": "x"}, ns, service_account="web")
    as_other = Pod("shop", "b", {"app": "x"}, ns, service_account="other")
    assert decide(program, Connection(as_web, db, "TCP", 5432)).allowed
    assert not decide(program, Connection(as_other, db, "TCP", 5432)).allowed


def test_synthesized_pods_run_as_the_account_and_near_misses_as_another() -> None:
    policy = n.Policy("p", owns=[SHOP], baseline=n.baseline(dns=None), rules=[
        n.allow(SHOP.pods(app="web").service_account("web") >> n.service_account("shop", "default"), n.tcp(80)),
    ])
    pods = [e for e in representative_endpoints(lower(policy)) if isinstance(e, Pod) and e.namespace == "shop"]
    assert all(SERVICE_ACCOUNT_KEY not in e.label_map for e in pods)  # never a real label
    accounts = {(e.labels, e.service_account) for e in pods}
    assert ((("app", "web"),), "web") in accounts  # the zone itself
    assert ((("app", "web"),), "default") in accounts  # near miss: labels, another account
    assert ((), "web") in accounts  # near miss: the account without the label
    assert ((), "other") in accounts  # near miss of the 'default' account: another one

"""One test per diagnostic code: the message, the code and the user's file:line (marked '# <-')."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from netpol_dsl.cli import main
from netpol_dsl.diagnostics import Code

HEAD = "from netpol_dsl import *\n"
SHOP = 'shop = namespace("shop")\nweb = shop.pods(app="web")\napi = shop.pods(app="api")\n'

CASES: dict[str, tuple[str, str]] = {
    "NPD001": ('x = namespace("a").pods({"bad key!": "x"})  # <-', "label key 'bad key!' is invalid"),
    "NPD002": ('x = namespace("a").pods(app="has space")  # <-', "value of label 'app' 'has space' is invalid"),
    "NPD003": ('x = namespace("Shop")  # <-', "namespace name 'Shop' is invalid; expected a DNS-1123 label"),
    "NPD004": ("x = tcp(70000)  # <-", "port 70000 is invalid; expected an integer from 1 to 65535"),
    "NPD005": ("x = port_range(90, 80)  # <-", "port range 90-80 is empty"),
    "NPD006": ('x = tcp("HTTP_PORT")  # <-', "named port 'HTTP_PORT' is invalid"),
    "NPD007": ('x = cidr("10.0.0.1/8")  # <-', "CIDR '10.0.0.1/8' has host bits set. Did you mean '10.0.0.0/8'?"),
    "NPD008": ('x = cidr("10.0.0.0/8", except_=["192.168.0.0/16"])  # <-',
               "except CIDR '192.168.0.0/16' is not strictly inside '10.0.0.0/8'"),
    "NPD009": ('x = fqdn("*.example.com")  # <-', "DNS name '*.example.com' is invalid"),
    "NPD010": ('x = fqdn_pattern("a.**.com")  # <-', "FQDN pattern 'a.**.com' is invalid"),
    "NPD011": ('x = http("FETCH")  # <-', "HTTP method 'FETCH' is invalid"),
    "NPD012": ('x = http("GET", "/api/(")  # <-', "HTTP path '/api/(' does not compile"),
    "NPD013": (SHOP + 'policy = Policy("p", rules=[allow(web.named("w") >> api), '
               'allow(api.named("w") >> web)])  # <-', "zone name 'w' names two different zones"),
    "NPD014": (SHOP + 'policy = Policy("p", rules=[allow(web >> api)])\nx = policy.zone("db")  # <-',
               "unknown zone 'db'"),
    "NPD015": ('x = Policy("p", rules=[allow(cidr("10.0.0.0/8") >> fqdn("a.example.com"), tcp(1))])  # <-',
               "has no in-cluster workloads on either side"),
    "NPD016": ('x = label("a").in_()  # <-', "label('a').in_() needs at least one value"),
    "NPD017": (SHOP + 'x = Policy("p", rules=[allow(web >> api, tier="gold")])  # <-', "names unknown tier 'gold'"),
    "NPD018": ("x = tcp(8080.0)  # <-", "wrong argument type"),
    "NPD019": (SHOP + 'x = Policy("p", baseline=baseline())  # <-', "a baseline needs the namespaces it applies to"),
    "NPD020": (SHOP + 'x = allow(web >> api, http=get("/"))  # <-', "HTTP rules need TCP ports"),
    "NPD101": ("x = 1 / 0  # <-", "module raised ZeroDivisionError: division by zero"),
    "NPD102": ("x = 1", "module defines no Policy at top level"),
    "NPD201": (SHOP + 'policy = Policy("p", rules=[allow(web >> fqdn("a.example.com"), tcp(443))])  # <-',
               "needs FQDN egress to a.example.com; target 'kubernetes' cannot express it"),
    "NPD202": (SHOP + 'policy = Policy("p", rules=[allow(web >> api, tcp(80), http=get("/"))])  # <-',
               "needs HTTP (L7) matching"),
    "NPD203": (SHOP + 'policy = Policy("p", rules=[allow(web >> kube_apiserver(), tcp(443))])  # <-',
               "needs the entity 'kube-apiserver'"),
    "NPD204": ('policy = Policy("p", rules=[allow(all_namespaces().pods(app="x") >> cidr("1.2.3.0/24"))])  # <-',
               "applies to workloads in several namespaces"),
    "NPD205": (SHOP + 'policy = Policy("p", rules=[deny(web >> api, tcp(80))])  # <-',
               "that have no ingress allow list"),
    "NPD206": (SHOP + 'policy = Policy("p", owns=[shop], baseline=baseline(), rules=[\n'
               '    allow(web >> api, tcp("http")),  # <-\n    deny(web >> api, tcp(8080)),\n])',
               "a named port's number is only known per pod"),
    "NPD207": (SHOP + 'policy = Policy("p", rules=[allow(web >> cidr("10.1.0.0/16"), tcp(443))])  # <-',
               "overlaps private address space where pod and node IPs live"),
    "NPD209": ('shop = namespace("shop")\npolicy = Policy("p", owns=[shop], '
               'baseline=baseline(blocked_domains=["evil.example.com"]))  # <-',
               "matches traffic by the DNS name evil.example.com; target 'kubernetes' cannot express it"),
    "NPD210": (SHOP + 'policy = Policy("p", rules=[\n    allow(web >> anything(), tier="security"),  # <-\n'
               '    pass_(web >> api, tcp(80), tier="security"),\n])', "overlaps pass"),
    "NPD211": (SHOP + 'policy = Policy("p", rules=[allow(service_account("shop", "web") >> api, tcp(80))])  # <-',
               "allow 'shop/serviceAccount=web -> shop/app=api' selects pods by service account "
               "(shop/serviceAccount=web); target 'kubernetes' cannot express it"),
    "NPD212": (SHOP + 'policy = Policy("p", rules=[deny(web >> api, tcp(80), direction="ingress")])  # <-',
               "would put shop/app=api into default deny for ingress: Cilium 1.15 has no enableDefaultDeny"),
    "NPD213": (SHOP + 'policy = Policy("p", baseline=baseline(), owns=[shop], rules=[\n'
               '    allow(web >> api, tcp(port_range(8000, 8100))),  # <-\n])',
               "matches the port range tcp/8000-8100: Cilium 1.15 has no endPort"),
    "NPD214": (SHOP + 'policy = Policy("p", rules=[allow(web >> fqdn_pattern("**.example.com"), tcp(443))])  # <-',
               "matches **.example.com at any depth; Cilium 1.16 reads '**' as '*' (one label)"),
    "NPD215": (SHOP + 'policy = Policy("p", rules=[allow(web >> api, tcp(8080) | icmp(8))])  # <-',
               "allow 'shop/app=web -> shop/app=api' matches ICMP (icmp/8); target 'kubernetes' cannot express it"),
}
# codes of the cilium target's version option: built with these arguments instead of the default target
TARGET_ARGS = {code: ["-t", "cilium", "-O", "cilium.version=1.15"] for code in ("NPD212", "NPD213")}
TARGET_ARGS["NPD214"] = ["-t", "cilium"]


def _build(folder: Path, name: str, source: str, capsys: pytest.CaptureFixture[str],
           args: tuple[str, ...] = ()) -> tuple[int, str]:
    path = folder / f"{name}.py"
    path.write_text(HEAD + source + "\n", encoding="utf-8")
    code = main(["build", str(path), *args, "-o", "-"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("code", sorted(CASES))
def test_error_code(code: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, fragment = CASES[code]
    exit_code, err = _build(tmp_path, code.lower(), textwrap.dedent(source), capsys, tuple(TARGET_ARGS.get(code, ())))
    assert exit_code == 1, err
    first = err.splitlines()[0]
    assert f"error[{code}]" in first, err
    assert fragment in first, err
    lines = (HEAD + source).splitlines()
    marked = [i + 1 for i, line in enumerate(lines) if line.endswith("# <-")]
    expected_line = marked[0] if marked else 1
    assert f"{code.lower()}.py:{expected_line}: error[{code}]" in first, err
    assert first.endswith(f"See docs/errors.md#{code.lower()}")


def test_every_code_has_a_case() -> None:
    tested = {*CASES, "NPD103", "NPD104", "NPD401", "NPD501", "NPD301", "NPD302"}  # test_cli.py, tests/verify, below
    assert {c.name for c in Code} == tested


def test_policy_arguments_are_type_checked_from_untyped_code(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    source = 'policy = Policy("p", rules=[tcp(80)])  # <-'
    exit_code, err = _build(tmp_path, "untyped", source, capsys)
    assert exit_code == 1
    assert ('untyped.py:2: error[NPD018]: wrong argument type: argument "rules" of Policy: item 0 of tuple is not '
            "an instance of netpol_dsl.dsl.policy.RuleSpec") in err


def test_warning_npd301_l7_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "l7.py"
    path.write_text(HEAD + SHOP + 'policy = Policy("p", rules=[allow(web >> api, tcp(80), http=get("/"))])  # <-\n')
    assert main(["build", str(path), "-t", "cilium", "-o", "-"]) == 0
    err = capsys.readouterr().err
    assert "l7.py:5: warning[NPD301]: allow 'shop/app=web -> shop/app=api' puts HTTP rules on tcp/80" in err
    assert err.count("warning[NPD301]") == 1



@pytest.mark.parametrize("target", ["kubernetes", "cilium"])
def test_warning_npd302_log_without_logging(target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "logged.py"
    path.write_text(HEAD + SHOP + 'policy = Policy("p", rules=[allow(web >> api, tcp(80), log=True)])  # <-\n')
    assert main(["build", str(path), "-t", target, "-o", "-"]) == 0
    err = capsys.readouterr().err
    assert (f"logged.py:5: warning[NPD302]: allow 'shop/app=web -> shop/app=api' asks for log=True; target "
            f"'{target}' builds it without a log") in err
    assert err.count("warning[NPD302]") == 1

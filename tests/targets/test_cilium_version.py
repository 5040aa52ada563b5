"""The cilium target's ``version`` option: what changes below the Cilium release that introduced
``enableDefaultDeny`` and ``endPort`` (1.16) and ``endPort`` on ports with HTTP rules (1.17), the
errors NPD212/NPD213, and that the 1.15 output still means exactly the intent to the Cilium engine."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import netpol_dsl as n
from netpol_dsl.compiler import compile_policy, compile_program
from netpol_dsl.diagnostics import Code, Severity
from netpol_dsl.endpoints import Connection, External, Pod
from netpol_dsl.engines import CiliumEngine
from netpol_dsl.ir.lower import lower
from netpol_dsl.ir.program import Program
from netpol_dsl.render.yaml import dump
from netpol_dsl.synth import connections as synthesized
from netpol_dsl.synth import representative_endpoints
from netpol_dsl.targets.base import OptionInfo
from netpol_dsl.targets.cilium import CiliumTarget
from tests.helpers import EXAMPLES, load_example, output_vs_intent
from tests.strategies import connections, policies

SHOP = n.namespace("shop")
WEB = SHOP.pods(app="web").named("web")
API = SHOP.pods(app="api").named("api")
DEFAULT_DENY = n.baseline(default_deny="both", dns=None)
HERE = Path(__file__).name


def _line() -> int:
    """The caller's line: where the next rule is written."""
    return sys._getframe(1).f_lineno


def _specs(rules: Sequence[n.RuleSpec], version: str, baseline: n.Baseline | None = DEFAULT_DENY) -> dict[str, str]:
    """Each object's spec as YAML, by object name."""
    out = compile_policy(n.Policy("shop", owns=[SHOP], baseline=baseline, rules=list(rules)),
                         CiliumTarget(version=version))
    return {m.name: dump(m.body["spec"]) for m in out.manifests}


def _errors(rules: Sequence[n.RuleSpec], version: str, baseline: n.Baseline | None = DEFAULT_DENY) -> list[str]:
    with pytest.raises(n.CompileError) as info:
        _specs(rules, version, baseline)
    # the file as its name only: diagnostics show it relative to the working directory
    return [d.render().replace(d.location.file, Path(d.location.file).name, 1)
            for d in info.value.diagnostics if d.severity is Severity.ERROR]


API_HEAD = "endpointSelector:\n  matchLabels:\n    app: api\n"
FROM_WEB = ("  - fromEndpoints:\n      - matchLabels:\n          app: web\n"
            "          k8s:io.kubernetes.pod.namespace: shop\n")
TO_PORTS = "    toPorts:\n      - ports:\n"
HTTP_GET_API = "        rules:\n          http:\n            - method: GET\n              path: /api\n"
TOGGLE = "enableDefaultDeny:\n  ingress: false\n  egress: false\n"


def _ingress(*ports: str, rules: str = "") -> str:
    """The spec of the object for api with one ingress rule from web on ``ports``."""
    return API_HEAD + "ingress:\n" + FROM_WEB + TO_PORTS + "".join(ports) + rules


def _port(port: int, protocol: str = "TCP", end: int | None = None) -> str:
    """One ``toPorts[].ports[]`` item as the YAML lines of the spec."""
    end_line = f"            endPort: {end}\n" if end is not None else ""
    return f'          - port: "{port}"\n{end_line}            protocol: {protocol}\n'


# --------------------------------------------------------------------------------------------
# the option


def test_version_is_an_option_with_choices() -> None:
    [info] = [o for o in CiliumTarget.options() if o.name == "version"]
    assert info == OptionInfo("version", "1.16", info.help)
    assert info.help.startswith("Cilium version the output is for: 1.14, 1.15, 1.16, 1.17, 1.18, 1.19, 1.20; ")
    assert "enableDefaultDeny" in info.help and "endPort" in info.help and "HTTP" in info.help
    assert CiliumTarget().version == "1.16"
    target = CiliumTarget.configure({"version": "1.15"})
    assert target.version == "1.15"
    assert target.describe() == "cilium (version=1.15)"
    with pytest.raises(ValueError, match=r"cilium.version: expected one of 1.14, .*, 1.20, got '1.13'"):
        CiliumTarget.configure({"version": "1.13"})
    with pytest.raises(ValueError, match="expected one of"):
        CiliumTarget(version="1.9")


def test_version_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from netpol_dsl.cli import main

    path = tmp_path / "shop.py"
    path.write_text('from netpol_dsl import *\nshop = namespace("shop")\n'
                    'policy = Policy("shop", owns=[shop], baseline=baseline(default_deny="egress"), rules=[\n'
                    '    deny(shop >> cidr("198.51.100.0/24"), tcp()),\n])\n', encoding="utf-8")
    assert main(["build", str(path), "-t", "cilium", "-O", "cilium.version=1.15", "-o", "-"]) == 0
    out = capsys.readouterr().out
    assert 'port: "0"' in out and "enableDefaultDeny" not in out
    assert main(["build", str(path), "-t", "cilium", "-o", "-"]) == 0
    out = capsys.readouterr().out
    assert "endPort: 65535" in out and "enableDefaultDeny" in out
    assert main(["build", str(path), "-t", "cilium", "-O", "cilium.version=1.13", "-o", "-"]) != 0
    err = capsys.readouterr().err
    assert "cilium.version: expected one of 1.14, 1.15, 1.16, 1.17, 1.18, 1.19, 1.20, got '1.13'" in err


# --------------------------------------------------------------------------------------------
# enableDefaultDeny (1.16)


def test_deny_only_object_sets_enable_default_deny_from_1_16() -> None:
    deny = [n.deny(WEB >> API, n.tcp(80), direction="ingress")]
    body = API_HEAD + "ingressDeny:\n" + FROM_WEB + TO_PORTS + _port(80)
    for version in ("1.16", "1.17", "1.18"):
        assert _specs(deny, version)["api-deny"] == body + TOGGLE
    for version in ("1.14", "1.15"):
        specs = _specs(deny, version)
        assert specs["api-deny"] == body  # the namespace's default deny isolates api anyway
        assert specs["default-deny"] == "endpointSelector: {}\ningress:\n  - {}\negress:\n  - {}\n"


def test_npd212_deny_of_workloads_that_are_not_default_deny() -> None:
    line = _line() + 1
    deny = [n.deny(WEB >> API, n.tcp(80))]
    assert _specs(deny, "1.16", baseline=None)["api-deny"].endswith(TOGGLE)
    errors = _errors(deny, "1.15", baseline=None)
    assert len(errors) == 2  # one per direction: api's ingress, web's egress
    assert errors[0] == (
        f"{HERE}:{line}: error[NPD212]: deny 'web -> api' (deny shop/app=api <- shop/app=web tcp/80 (tier security)) "
        "would put shop/app=api into default deny for ingress: Cilium 1.15 has no enableDefaultDeny (1.16+), so its "
        "ingressDeny section isolates the pods it selects, and nothing else in the output makes them default-deny for "
        "ingress. Build for Cilium 1.16 or later (-O cilium.version=1.16), or add a default deny (ingress) for these "
        "workloads: baseline(default_deny=...) for their namespace, or an ingress allow list of their own. "
        "See docs/errors.md#npd212")
    assert "would put shop/app=web into default deny for egress" in errors[1]
    # a default deny in one direction covers that direction only
    [egress] = _errors(deny, "1.14", baseline=n.baseline(default_deny="ingress", dns=None))
    assert "error[NPD212]" in egress and "shop/app=web into default deny for egress: Cilium 1.14" in egress


def test_deny_covered_by_an_allow_list_of_a_wider_subject() -> None:
    rules = [n.allow(n.namespace("other") >> SHOP, n.tcp(8080), direction="ingress"),
             n.deny(WEB >> API, n.tcp(80), direction="ingress")]
    specs = _specs(rules, "1.15", baseline=None)
    assert specs["api-deny"] == API_HEAD + "ingressDeny:\n" + FROM_WEB + TO_PORTS + _port(80)
    assert specs["all-pods"].startswith("endpointSelector: {}\ningress:\n")  # isolates every pod of shop, api too
    # an allow list of fewer pods than the deny selects does not cover it
    narrower = [n.allow(n.namespace("other") >> API, n.tcp(8080), direction="ingress"),
                n.deny(WEB >> SHOP, n.tcp(80), direction="ingress")]
    [error] = _errors(narrower, "1.15", baseline=None)
    assert "error[NPD212]" in error and "would put shop/* into default deny for ingress" in error


# --------------------------------------------------------------------------------------------
# endPort (1.16), endPort with HTTP rules (1.17), port 0


def test_port_range_is_single_ports_before_1_16() -> None:
    rules = [n.allow(WEB >> API, n.tcp(n.port_range(8000, 8002)), direction="ingress")]
    assert _specs(rules, "1.16")["api"] == _ingress(_port(8000, end=8002))
    for version in ("1.14", "1.15"):
        assert _specs(rules, version)["api"] == _ingress(_port(8000), _port(8001), _port(8002))


def test_all_ports_of_a_protocol_is_port_zero_before_1_16() -> None:
    rules = [n.allow(WEB >> API, n.udp(), direction="ingress")]
    assert _specs(rules, "1.16")["api"] == _ingress(_port(1, "UDP", end=65535))
    for version in ("1.14", "1.15"):
        assert _specs(rules, version)["api"] == _ingress(_port(0, "UDP"))


def test_at_most_40_single_ports_per_range() -> None:
    fits = [n.allow(WEB >> API, n.tcp(n.port_range(8000, 8039)), direction="ingress")]
    assert _specs(fits, "1.15")["api"] == _ingress(*(_port(p) for p in range(8000, 8040)))
    line = _line() + 1
    too_many = [n.allow(WEB >> API, n.tcp(n.port_range(8000, 8040)), direction="ingress")]
    assert _errors(too_many, "1.15") == [
        f"{HERE}:{line}: error[NPD213]: allow 'web -> api' matches the port range tcp/8000-8040: Cilium 1.15 has no "
        "endPort, and as single ports it is 41 ports, more than the 40 one toPorts entry holds; target 'cilium' for "
        "Cilium 1.15 cannot express it. Build for Cilium 1.16 or later (-O cilium.version=1.16), or narrow the ports "
        "to at most 40. See docs/errors.md#npd213"]
    assert _specs(too_many, "1.16")["api"] == _ingress(_port(8000, end=8040))


def test_several_ranges_share_toports_entries_of_40() -> None:
    rules = [n.allow(WEB >> API, n.tcp(n.port_range(8000, 8029)), n.udp(n.port_range(9000, 9029)),
                     direction="ingress")]
    spec = _specs(rules, "1.15")["api"]
    assert spec == _ingress(*(_port(p) for p in range(8000, 8030)), *(_port(p, "UDP") for p in range(9000, 9010))) + \
        "      - ports:\n" + "".join(_port(p, "UDP") for p in range(9010, 9030))


def test_http_rules_on_a_port_range_need_1_17() -> None:
    rules = [n.allow(WEB >> API, n.tcp(8080, 8081), http=n.get("/api"), direction="ingress")]  # one range 8080-8081
    for version in ("1.14", "1.15", "1.16"):
        assert _specs(rules, version)["api"] == _ingress(_port(8080), _port(8081), rules=HTTP_GET_API)
    for version in ("1.17", "1.18"):
        assert _specs(rules, version)["api"] == _ingress(_port(8080, end=8081), rules=HTTP_GET_API)


def test_npd213_http_rules_on_every_port() -> None:
    line = _line() + 1
    rules = [n.allow(WEB >> API, n.tcp(), http=n.get("/api"), direction="ingress")]
    assert _errors(rules, "1.16") == [
        f"{HERE}:{line}: error[NPD213]: allow 'web -> api' matches every TCP port with HTTP rules: Cilium 1.16 takes "
        "no port range on ports with HTTP rules and refuses L7 rules on port 0 (every port), and as single ports it "
        "is 65535 ports, more than the 40 one toPorts entry holds; target 'cilium' for Cilium 1.16 cannot express it. "
        "Build for Cilium 1.17 or later (-O cilium.version=1.17), or narrow the ports to at most 40. "
        "See docs/errors.md#npd213"]
    [older] = _errors(rules, "1.15")
    assert "error[NPD213]: allow 'web -> api' matches every TCP port with HTTP rules: Cilium 1.15 takes" in older
    assert _specs(rules, "1.17")["api"] == _ingress(_port(1, end=65535), rules=HTTP_GET_API)


def test_older_output_validates_against_the_crd_schema(validator: Path, tmp_path: Path) -> None:
    rules = [n.allow(WEB >> API, n.tcp(), n.udp(n.port_range(5000, 5039)), direction="ingress"),
             n.deny(WEB >> n.cidr("198.51.100.0/24"), n.tcp(), direction="egress")]
    out = compile_policy(n.Policy("shop", owns=[SHOP], baseline=DEFAULT_DENY, rules=rules),
                         CiliumTarget(version="1.15"))
    files = []
    for m in out.manifests:
        files.append(tmp_path / m.filename)
        files[-1].write_text(dump(m.body), encoding="utf-8")
    text = "".join(f.read_text() for f in files)
    assert 'port: "0"' in text and "endPort" not in text and "enableDefaultDeny" not in text
    result = subprocess.run([sys.executable, str(validator), "-q", *map(str, files)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(files)} ok" in result.stdout


# --------------------------------------------------------------------------------------------
# the older output still means the intent (Cilium engine vs reference semantics)


def _mismatches(program: Program, version: str, conns: Sequence[Connection]) -> list[str] | None:
    """None when the version refuses the program; else every connection where output and intent differ."""
    return output_vs_intent(program, CiliumTarget(version=version), conns)


def test_port_zero_and_single_ports_mean_the_intent_to_the_engine() -> None:
    rules = [n.allow(WEB >> API, n.tcp(), n.udp(n.port_range(52, 54)), direction="ingress"),
             n.allow(WEB >> n.world(), n.tcp(), direction="egress"),
             n.deny(WEB >> n.cidr("198.51.100.0/24"), n.tcp(), direction="egress")]
    program = lower(n.Policy("shop", owns=[SHOP], baseline=n.baseline(), rules=rules))
    conns = synthesized(representative_endpoints(program), program)
    assert _mismatches(program, "1.15", conns) == []


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_for_1_15_equal_the_intent(name: str) -> None:
    program = lower(load_example(name).policy)
    wrong = _mismatches(program, "1.15", synthesized(representative_endpoints(program), program))
    if wrong is None:
        pytest.skip(f"{name} does not compile for cilium 1.15")
    assert not wrong, "\n".join(wrong[:20])


CONNECTIONS = connections(with_http=True)
VERSION_CODES = {Code.NPD212, Code.NPD213}


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(policies(l7=True))
def test_generated_policies_for_1_15_equal_the_intent(policy: n.Policy) -> None:
    program = lower(policy)
    wrong = _mismatches(program, "1.15", CONNECTIONS)
    if wrong is None:
        # what 1.16 compiles, 1.15 refuses only for the reasons the version gives
        try:
            compile_program(program, CiliumTarget())
        except n.CompileError:
            return
        with pytest.raises(n.CompileError) as info:
            compile_program(program, CiliumTarget(version="1.15"))
        assert {d.code for d in info.value.diagnostics if d.severity is Severity.ERROR} <= VERSION_CODES
        return
    assert not wrong, "\n".join(wrong[:20])


def test_multi_level_fqdn_patterns_need_cilium_1_19() -> None:
    web = n.namespace("shop").pods(app="web")
    policy = n.Policy("p", rules=[n.allow(web >> n.fqdn_pattern("**.example.com"), n.tcp(443))])
    with pytest.raises(n.CompileError) as exc:
        compile_program(lower(policy), CiliumTarget(version="1.18"))
    assert [d.code.name for d in exc.value.diagnostics] == ["NPD214"]
    bodies = [m.body for m in compile_program(lower(policy), CiliumTarget(version="1.19")).manifests]
    patterns = [p for b in bodies for r in b["spec"].get("egress", []) for p in r.get("toFQDNs", [])]
    assert patterns == [{"matchPattern": "**.example.com"}]


def test_the_blocklist_is_one_cidr_group_from_cilium_1_18(validator: Path, tmp_path: Path) -> None:
    shop = n.namespace("shop")
    policy = n.Policy("p", owns=[shop], baseline=n.baseline(default_deny="ingress", dns=None,
                                                            blocked_cidrs=["203.0.113.0/24", "2001:db8::/32"]))
    old = [m.body for m in compile_program(lower(policy), CiliumTarget(version="1.17")).manifests]
    assert not [b for b in old if b["kind"] == "CiliumCIDRGroup"]
    new = [m.body for m in compile_program(lower(policy), CiliumTarget(version="1.18")).manifests]
    [group] = [b for b in new if b["kind"] == "CiliumCIDRGroup"]
    assert (group["apiVersion"], group["metadata"]["name"]) == ("cilium.io/v2", "p-blocklist")
    assert group["spec"] == {"externalCIDRs": ["203.0.113.0/24", "2001:db8::/32"]}
    [deny] = [b for b in new if b["metadata"]["name"] == "blocklist"]
    assert deny["spec"]["egressDeny"] == [{"toCIDRSet": [{"cidrGroupRef": "p-blocklist"}]}]
    assert deny["spec"]["ingressDeny"] == [{"fromCIDRSet": [{"cidrGroupRef": "p-blocklist"}]}]
    engine = CiliumEngine(new)
    pod = Pod("shop", "a", namespace_labels={"kubernetes.io/metadata.name": "shop"})
    assert not engine.evaluate(Connection(pod, External(ipaddress.ip_address("203.0.113.9")), "TCP", 443)).allowed
    assert engine.evaluate(Connection(pod, External(ipaddress.ip_address("198.51.100.9")), "TCP", 443)).allowed
    out = tmp_path / "group.yaml"
    out.write_text(dump(group), encoding="utf-8")
    assert subprocess.run([sys.executable, str(validator), str(out)], capture_output=True).returncode == 0

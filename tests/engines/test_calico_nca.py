"""network-config-analyzer (NCA) as an independent second opinion on the Calico engine.

NCA 2.1.0 reads Calico ``projectcalico.org/v3`` NetworkPolicy, GlobalNetworkPolicy and Profile, and
GlobalNetworkSet/NetworkSet given as endpoints (in the pod list), next to Kubernetes NetworkPolicy.
Its model is Calico before tiers: one ordered list of policies (``order``, absent = last; Kubernetes
NetworkPolicies at 1000), first matching rule wins, ``Pass`` goes to the profiles (which allow), a
selected endpoint with no matching rule is denied.  So on manifests without tiers it must agree with
our engine, where everything is in the ``default`` tier and passing out of it reaches the profiles.

What NCA does not handle, so the scenarios below avoid it (each is a syntax error, or a warning that
our runner refuses): the ``tier`` field and Tier objects (a Tier document is silently ignored, a
``tier`` field is "not a valid entry"), ``serviceAccountSelector``, rule ``serviceAccounts`` and
``http`` ("not yet supported"), ``doNotTrack``/``preDNAT``/``applyOnForward`` (ignored, with an
over-approximation warning), staged kinds (ignored), selector values in double quotes or with
characters other than ``[A-Za-z0-9_.-/]``, and the ``projectcalico.org/*``, ``pcns.*``/``pcsa.*``
labels (NCA's endpoints have only their own labels).  Known differences, pinned by
``test_known_differences``:

* NCA compares ``nets`` with external addresses only; Calico (and our engine) also with pod addresses;
* a NetworkPolicy rule with ``notSelector`` alone: Calico restricts it to the policy's namespace
  (calico:libcalico-go/lib/backend/syncersv1/updateprocessors/rules.go); NCA matches every other
  endpoint and every address;
* ICMP ``type: 0`` (echo reply): NCA drops it (it tests ``if icmp_type:``) and matches every type;
  likewise ``code: 0`` matches every code (both agree on the code-0 probes used here);
* ``protocol`` together with ``notProtocol``: NCA warns that notProtocol "has no effect" and then
  matches nothing; Calico matches the protocol.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from pathlib import Path
from typing import Any

import attrs
import pytest

from netpol_dsl.endpoints import Connection, ContainerPort, Endpoint, External, IPAddress, Pod
from netpol_dsl.engines.calico import CalicoEngine
from netpol_dsl.render.yaml import dump, dump_all
from tests.support.nca import TIMEOUT_SECONDS, find_nca, namespace_list, pod_list

_BENIGN = re.compile(r"Warning: Missing named port \S+ in the pod \S+\. Ignoring the pod$")

NCA = find_nca()
pytestmark = pytest.mark.skipif(NCA is None, reason="network-config-analyzer (nca) is not installed")

CALICO = "projectcalico.org/v3"
SHOP = {"team": "web", "env": "prod"}
BANK = {"team": "money", "env": "prod"}


def _ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


PODS = (
    Pod("shop", "web", {"app": "web", "tier": "front-end"}, SHOP, ip=_ip("10.0.1.10"), node="n1",
        ports=(ContainerPort(8080, "TCP", "http"),)),
    Pod("shop", "api", {"app": "api", "tier": "back-end"}, SHOP, ip=_ip("10.0.1.20"), node="n1",
        ports=(ContainerPort(9090, "TCP", "http"), ContainerPort(5353, "UDP", "dns"))),
    Pod("shop", "cache", {"app": "cache"}, SHOP, ip=_ip("10.0.1.30"), node="n2"),
    Pod("bank", "db", {"app": "db", "tier": "back-end"}, BANK, ip=_ip("10.0.2.10"), node="n2",
        ports=(ContainerPort(5432, "TCP", "pg"),)),
    Pod("bank", "web", {"app": "web"}, BANK, ip=_ip("10.0.2.20"), node="n1"),
)
EXTERNALS = (External(_ip("198.51.100.9")), External(_ip("203.0.113.7")), External(_ip("192.0.2.1")))
NETWORK_SETS = [
    {"apiVersion": CALICO, "kind": "GlobalNetworkSet", "metadata": {"name": "bad", "labels": {"threat": "bad"}},
     "spec": {"nets": ["198.51.100.0/24"]}},
    {"apiVersion": CALICO, "kind": "NetworkSet",
     "metadata": {"name": "partners", "namespace": "shop", "labels": {"kind": "partner"}},
     "spec": {"nets": ["203.0.113.0/24"]}},
]
PROBES = (("TCP", 80), ("TCP", 9090), ("TCP", 8443), ("TCP", 5432), ("UDP", 53), ("UDP", 5353), ("SCTP", 7),
          ("ICMP", 8), ("ICMP", 0))


def gnp(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": CALICO, "kind": "GlobalNetworkPolicy", "metadata": {"name": name}, "spec": spec}


def cnp(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": CALICO, "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


def knp(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


SCENARIOS: dict[str, list[dict[str, Any]]] = {
    "order-and-actions": [
        gnp("api-in", order=10, selector="app == 'api'", types=["Ingress"], ingress=[
            {"action": "Deny", "protocol": "TCP", "source": {"selector": "app == 'web'"},
             "destination": {"ports": [8443]}},
            {"action": "Log"},
            {"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http", 80]}},
            {"action": "Pass", "protocol": "UDP"},
        ]),
        gnp("api-in-late", order=20, selector="app == 'api'", types=["Ingress"], ingress=[
            {"action": "Allow", "protocol": "TCP", "source": {"selector": "app == 'web'"}},
        ]),
        cnp("web-out", "shop", order=5, selector="app == 'web'", types=["Egress"], egress=[
            {"action": "Allow", "protocol": "UDP", "destination": {"ports": [53, "5000:6000"]}},
            {"action": "Deny", "protocol": "TCP", "destination": {"ports": [9090]}},
            {"action": "Pass", "destination": {"selector": "app == 'api'"}},
            {"action": "Allow", "destination": {"nets": ["192.0.2.0/24"]}},
        ]),
        cnp("log-only", "bank", selector="app == 'db'", types=["Ingress"], ingress=[{"action": "Log"}]),
    ],
    "kubernetes-and-calico": [
        knp("api", "shop", podSelector={"matchLabels": {"app": "api"}}, policyTypes=["Ingress"], ingress=[
            {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": "http"}]},
            {"from": [{"namespaceSelector": {"matchLabels": {"team": "money"}}}],
             "ports": [{"protocol": "UDP", "port": 5000, "endPort": 6000}]},
        ]),
        cnp("deny-first", "shop", order=500, selector="app == 'api'", types=["Ingress"], ingress=[
            {"action": "Deny", "protocol": "UDP", "source": {"namespaceSelector": "all()", "selector": "app == 'db'"}},
        ]),
        gnp("allow-later", order=2000, selector="tier == 'back-end'", types=["Ingress"], ingress=[
            {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}},
            {"action": "Allow", "protocol": "TCP", "destination": {"notPorts": ["1:1024", "http"]}},
        ]),
        knp("db-out", "bank", podSelector={"matchLabels": {"app": "db"}}, policyTypes=["Egress"], egress=[
            {"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}, {"ipBlock": {"cidr": "198.51.100.0/24",
                                                                        "except": ["198.51.100.0/28"]}}]},
        ]),
    ],
    "network-sets": [
        gnp("block-bad", order=1, selector="all()", types=["Egress", "Ingress"],
            egress=[{"action": "Deny", "destination": {"selector": "threat == 'bad'"}}, {"action": "Pass"}],
            ingress=[{"action": "Deny", "source": {"selector": "threat == 'bad'"}}, {"action": "Pass"}]),
        cnp("partners-in", "shop", order=10, selector="app == 'web'", types=["Ingress"], ingress=[
            {"action": "Allow", "source": {"selector": "kind == 'partner'"}},
            {"action": "Allow", "protocol": "TCP", "source": {"namespaceSelector": "global()"}},
        ]),
        cnp("partners-out", "bank", order=10, selector="all()", types=["Egress"], egress=[
            {"action": "Allow", "destination": {"selector": "kind == 'partner'"}},
            {"action": "Allow", "destination": {"notSelector": "threat == 'bad'", "selector": "has(app)"}},
        ]),
    ],
    "selectors": [
        gnp("money", order=1, selector="has(tier) && !has(missing)", namespaceSelector="team == 'money'",
            types=["Ingress"], ingress=[
                {"action": "Allow", "source": {"selector": "tier starts with 'front' || app in {'cache', 'api'}"}},
                {"action": "Deny", "source": {"namespaceSelector": "team != 'money'"}},
                {"action": "Allow", "source": {"selector": "(app == 'web' || app ends with 'b') && !has(tier)"}},
            ]),
        cnp("shop-in", "shop", order=1, selector="app not in {'web'}", types=["Ingress"], ingress=[
            {"action": "Allow", "source": {"selector": "tier contains 'end'", "notSelector": "app == 'web'"}},
            {"action": "Allow", "source": {"namespaceSelector": "env == 'prod' && team == 'money'",
                                           "selector": "app == 'web'"}},
        ]),
    ],
    "protocols-and-types": [
        gnp("icmp", order=1, selector="app == 'cache'", ingress=[
            {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8, "code": 0}},
            {"action": "Deny", "protocol": "ICMP"},
            {"action": "Allow", "protocol": 132},
            {"action": "Allow", "notProtocol": "TCP"},
        ]),
        gnp("egress-only", order=2, selector="app == 'db'", egress=[
            {"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http"], "namespaceSelector": "all()"}},
        ]),
        cnp("both", "shop", order=3, selector="app == 'web'",
            ingress=[{"action": "Allow", "protocol": "UDP"}],
            egress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}},
                    {"action": "Allow", "protocol": "ICMP", "notICMP": {"type": 8}}]),
    ],
}

# Known differences (see the module docstring): name -> (policies, the verdicts on which they disagree)
KNOWN_DIFFERENCES: dict[str, tuple[list[dict[str, Any]], str]] = {
    "nets-match-pod-addresses": ([
        gnp("pods-by-address", selector="app == 'api'", types=["Ingress"], ingress=[
            {"action": "Allow", "source": {"nets": ["10.0.1.0/24"]}}]),
    ], "calico engine allow, NCA deny"),
    "np-not-selector-alone": ([
        cnp("not-web", "shop", selector="app == 'api'", types=["Ingress"], ingress=[
            {"action": "Allow", "source": {"notSelector": "app == 'web'"}}]),
    ], "calico engine deny, NCA allow"),
    "icmp-type-0": ([
        gnp("echo-reply", selector="app == 'api'", types=["Ingress"], ingress=[
            {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 0}}]),
    ], "icmp/8: calico engine deny, NCA allow"),
    "protocol-with-not-protocol": ([
        gnp("tcp-not-udp", selector="app == 'api'", types=["Ingress"], ingress=[
            {"action": "Allow", "protocol": "TCP", "notProtocol": "UDP"}]),
    ], "calico engine allow, NCA deny"),
}


# --------------------------------------------------------------------------------------------
# running NCA and reading its txt_no_fw_rules report (with ICMP type/code dimensions)


@attrs.frozen
class _Cube:
    fields: tuple[tuple[str, str], ...]

    def allows(self, protocol: str, port: int) -> bool:
        for key, value in self.fields:
            if key == "protocols":
                negated = value.startswith("all but ")
                names = {p.strip().upper() for p in value.removeprefix("all but ").split(",")}
                if (protocol.upper() in names) == negated:
                    return False
            elif key in ("dst_ports", "icmp_type"):
                if protocol.upper().startswith("ICMP") != (key == "icmp_type") or not _in_ranges(port, value):
                    return False
            elif key == "icmp_code":
                if not _in_ranges(0, value):  # our probes are code 0
                    return False
            else:
                raise AssertionError(f"unexpected NCA dimension {key} in {self}")
        return True


def _in_ranges(number: int, text: str) -> bool:
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if int(lo) <= number <= int(hi or lo):
            return True
    return False


def _connections(text: str) -> tuple[bool, bool, tuple[_Cube, ...]]:
    """(everything, negated, cubes) of one line's connection set."""
    text = text.strip()
    if text == "All connections":
        return True, False, ()
    negated = text.startswith("All but ")
    cubes = []
    for body in re.findall(r"\{([^{}]*)\}", text.removeprefix("All but ")):
        keys = list(re.finditer(r"(?:^|,)(protocols|dst_ports|src_ports|icmp_type|icmp_code):", body))
        cubes.append(_Cube(tuple((m.group(1), body[m.end():keys[i + 1].start() if i + 1 < len(keys) else len(body)])
                                 for i, m in enumerate(keys))))
    return False, negated, tuple(cubes)


def _addresses(text: str) -> list[tuple[IPAddress, IPAddress]] | None:
    try:
        return [(_ip(lo), _ip(hi or lo)) for lo, _, hi in (p.partition("-") for p in text.split(","))]
    except ValueError:
        return None


@attrs.frozen
class _Report:
    lines: tuple[tuple[str, str, tuple[bool, bool, tuple[_Cube, ...]]], ...]

    def allowed(self, conn: Connection) -> bool:
        return any(
            _is(conn.src, src) and _is(conn.dst, dst)
            and (everything or any(c.allows(conn.protocol, conn.port) for c in cubes) != negated)
            for src, dst, (everything, negated, cubes) in self.lines)


def _is(endpoint: Endpoint, name: str) -> bool:
    if isinstance(endpoint, Pod):
        return name == endpoint.describe()
    assert isinstance(endpoint, External)
    ranges = _addresses(name)
    return ranges is not None and any(lo.version == endpoint.ip.version and lo <= endpoint.ip <= hi  # type: ignore[operator]
                                      for lo, hi in ranges)


def run_nca(policies: list[dict[str, Any]], workdir: Path) -> _Report:
    assert NCA is not None
    (workdir / "policies").mkdir()
    for i, body in enumerate(policies):
        (workdir / "policies" / f"policy-{i:03d}.yaml").write_text(dump(body))
    endpoints = pod_list(PODS)
    endpoints["items"] += NETWORK_SETS
    (workdir / "pods.yaml").write_text(dump_all([endpoints]))
    (workdir / "namespaces.yaml").write_text(dump_all([namespace_list(PODS)]))
    cmd = [NCA, "--connectivity", "policies", "--pod_list", "pods.yaml", "--ns_list", "namespaces.yaml",
           "--output_format", "txt_no_fw_rules", "--output_endpoints", "pods", "--print_ipv6", "--file_out", "out.txt"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, cwd=workdir, check=False)
    transcript = f"$ {' '.join(cmd)}\nexit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    assert proc.returncode == 0, transcript
    # a named port a pod does not define matches nothing there (NCA says it ignores the pod): harmless
    refused = [ln for ln in (proc.stdout + proc.stderr).splitlines()
               if re.search(r"error|exception|approximat|not (yet )?supported|ignor", ln, re.I)
               and not _BENIGN.search(ln)]
    assert not refused, transcript
    lines = []
    for raw in (workdir / "out.txt").read_text().splitlines():
        head, _, conns = raw.partition(" : ")
        src, _, dst = head.partition(" => ")
        lines.append((src.strip(), dst.strip(), _connections(conns)))
    return _Report(tuple(lines))


def connections() -> list[Connection]:
    ends: list[Endpoint] = [*PODS, *EXTERNALS]
    return [Connection(src, dst, protocol, port)
            for src in ends for dst in ends if src != dst and (isinstance(src, Pod) or isinstance(dst, Pod))
            for protocol, port in PROBES]


def disagreements(policies: list[dict[str, Any]], workdir: Path) -> list[str]:
    report = run_nca(policies, workdir)
    namespaces = {p.namespace: dict(p.namespace_labels) for p in PODS}
    engine = CalicoEngine([*NETWORK_SETS, *policies], namespaces)
    wrong = []
    for conn in connections():
        ours, theirs = engine.evaluate(conn).allowed, report.allowed(conn)
        if ours != theirs:
            wrong.append(f"{conn.describe()}: calico engine {'allow' if ours else 'deny'}, NCA "
                         f"{'allow' if theirs else 'deny'}")
    return wrong


# --------------------------------------------------------------------------------------------


def test_the_cube_reader() -> None:
    everything, negated, cubes = _connections("{protocols:ICMP,icmp_type:8},{protocols:TCP, UDP,dst_ports:53,80-90}")
    assert (everything, negated) == (False, False)
    assert [c.allows(*probe) for c in cubes for probe in (("ICMP", 8), ("ICMP", 0), ("UDP", 85), ("TCP", 91))] == [
        True, False, False, False, False, False, True, False]
    _, negated, cubes = _connections("All but {protocols:all but TCP}")
    assert negated and cubes[0].allows("UDP", 1) and not cubes[0].allows("TCP", 1)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_engine_agrees_with_nca(name: str, tmp_path: Path) -> None:
    wrong = disagreements(SCENARIOS[name], tmp_path)
    assert not wrong, "\n".join(wrong[:30])


@pytest.mark.parametrize("name", sorted(KNOWN_DIFFERENCES))
def test_known_differences(name: str, tmp_path: Path) -> None:
    """NCA departs from Calico here (see the module docstring); if NCA changes, this says so."""
    policies, how = KNOWN_DIFFERENCES[name]
    wrong = disagreements(policies, tmp_path)
    assert wrong
    assert all(how in line for line in wrong), "\n".join(wrong)


def test_every_scenario_decides_something_both_ways(tmp_path: Path) -> None:
    """Guard against vacuous agreement: across the scenarios, many connections are allowed and many denied."""
    namespaces = {p.namespace: dict(p.namespace_labels) for p in PODS}
    for name, policies in SCENARIOS.items():
        engine = CalicoEngine([*NETWORK_SETS, *policies], namespaces)
        verdicts = [engine.evaluate(c).allowed for c in connections()]
        assert 10 < sum(verdicts) < len(verdicts) - 10, name

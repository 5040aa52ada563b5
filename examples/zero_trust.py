"""A zero-trust baseline for two team namespaces: everything the platform and security teams own.

- default deny both ways in every team namespace, with DNS to CoreDNS and node-local-dns;
- logs to the fluent-bit collectors, metrics scraped by Prometheus;
- a CIDR blocklist and the cloud metadata endpoint denied in the security tier;
- pods talk freely inside their own namespace (seed 000, "namespace and multi-tenancy");
- HTTPS to the internet, with the blocklist carved out of it.
"""

from netpol_dsl import (
    Policy,
    allow,
    baseline,
    cidr,
    cluster_info,
    dns,
    expect,
    log_collector,
    metrics_scraper,
    namespace,
    tcp,
    world,
)

team_a = namespace("team-a", labels={"team": "a"})
team_b = namespace("team-b", labels={"team": "b"})
fluent_bit = namespace("logging").pods(app="fluent-bit").named("fluent-bit")
prometheus = namespace("monitoring").pods({"app.kubernetes.io/name": "prometheus"}).named("prometheus")

policy = Policy(
    "zero-trust",
    owns=[team_a, team_b],
    cluster=cluster_info(
        pod_cidrs=["10.244.0.0/16"], service_cidrs=["10.96.0.0/12"], node_cidrs=["10.224.0.0/16"]
    ),
    baseline=baseline(
        default_deny="both",
        dns=dns(node_local_ip="169.254.20.10"),
        log_collectors=[log_collector(fluent_bit, tcp(24224))],
        metrics_scrapers=[metrics_scraper(prometheus, tcp(9090))],
        blocked_cidrs=["198.51.100.0/24", "203.0.113.128/25"],
        block_metadata=True,
    ),
    rules=[
        allow(team_a >> team_a),
        allow(team_b >> team_b),
        allow(team_a >> world(), tcp(443), direction="egress"),
        allow(team_b >> world(), tcp(443), direction="egress"),
    ],
    expectations=[
        expect(team_a).reaches(team_a),
        expect(team_a).does_not_reach(team_b),
        expect(team_a).reaches(cidr("203.0.113.0/25"), tcp(443)),
        expect(team_a).does_not_reach(cidr("198.51.100.0/24")),
        expect(team_b).does_not_reach(cidr("169.254.169.254/32")),
        expect(prometheus).reaches(team_b, tcp(9090)),
        expect(prometheus).does_not_reach(team_b, tcp(8080)),
    ],
)

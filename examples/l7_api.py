"""Seed 000, "Layered security": only GET requests to /api from the frontend to the backend on port 8080.

An HTTP rule turns the whole port into an L7 port on Cilium: every other request to backend:8080
(POST, DELETE, another path, a websocket upgrade) is answered 403 by the proxy.  NetworkPolicy
cannot express it (NPD202).
"""

from netpol_dsl import Policy, allow, baseline, expect, get, namespace, tcp

default = namespace("default")
frontend = default.pods(app="frontend").named("frontend")
backend = default.pods(app="backend").named("backend")

policy = Policy(
    "frontend-l7",
    owns=[default],
    baseline=baseline(default_deny="both"),
    rules=[
        allow(frontend >> backend, tcp(8080), http=get("/api")),
    ],
    expectations=[
        expect(frontend).does_not_reach(backend, tcp(9090)),
    ],
)

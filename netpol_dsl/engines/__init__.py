"""Static evaluators that decide what a set of rendered manifests allows for a concrete connection.

``EVALUATORS`` maps an engine name to its evaluator class (built from manifest bodies, with
``evaluate(conn) -> Verdict``); `verify`, `netpol_dsl.testing` and the simulator use it.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from netpol_dsl.endpoints import Connection
from netpol_dsl.engines.calico import CalicoEngine
from netpol_dsl.engines.cilium import CiliumEngine
from netpol_dsl.engines.kubernetes import KubernetesEngine, Verdict, evaluate


class Evaluator(Protocol):
    def evaluate(self, conn: Connection) -> Verdict: ...


EVALUATORS: Mapping[str, Callable[[Sequence[Mapping[str, Any]]], Evaluator]] = {
    "calico": CalicoEngine,
    "cilium": CiliumEngine,
    "kubernetes": KubernetesEngine,
}

__all__ = ["EVALUATORS", "CalicoEngine", "CiliumEngine", "Evaluator", "KubernetesEngine", "Verdict", "evaluate"]

"""Static evaluators that decide what a set of rendered manifests allows for a concrete connection."""

from netpol_dsl.engines.kubernetes import KubernetesEngine, Verdict, evaluate

__all__ = ["KubernetesEngine", "Verdict", "evaluate"]

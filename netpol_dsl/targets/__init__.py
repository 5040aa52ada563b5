"""One module per engine; each holds everything that engine needs and declares what it cannot do."""

from __future__ import annotations

from netpol_dsl.targets.base import Target
from netpol_dsl.targets.kubernetes import KubernetesTarget

TARGETS: dict[str, type[Target]] = {
    KubernetesTarget.name: KubernetesTarget,
}

__all__ = ["TARGETS", "Target"]

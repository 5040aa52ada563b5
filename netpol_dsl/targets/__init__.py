"""One module per engine; each holds everything that engine needs and declares what it cannot do."""

from __future__ import annotations

from netpol_dsl.targets.base import Target
from netpol_dsl.targets.calico import CalicoTarget
from netpol_dsl.targets.cilium import CiliumTarget
from netpol_dsl.targets.kubernetes import KubernetesTarget

TARGETS: dict[str, type[Target]] = {
    CalicoTarget.name: CalicoTarget,
    CiliumTarget.name: CiliumTarget,
    KubernetesTarget.name: KubernetesTarget,
}

__all__ = ["TARGETS", "Target"]

"""Our own metadata on every generated object: who manages it, which policy, which module lines.

The simulator reads the same annotation back, so that a verdict maps to the Python line it came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from netpol_dsl.diagnostics import Location

MANAGED_BY = {"app.kubernetes.io/managed-by": "netpol-dsl"}
POLICY_LABEL = "netpol-dsl.dev/policy"
SOURCE_ANNOTATION = "netpol-dsl.dev/source"


def object_metadata(name: str, namespace: str | None, policy: str, origins: Iterable[Location]) -> dict[str, Any]:
    """``metadata`` of a generated object: name, namespace (None: cluster-scoped), labels, provenance."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = {**MANAGED_BY, POLICY_LABEL: policy}
    metadata["annotations"] = {SOURCE_ANNOTATION: ", ".join(str(loc) for loc in sorted(set(origins)))}
    return metadata

"""The Kubernetes LabelSelector form (matchLabels + matchExpressions), shared by the targets that use it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netpol_dsl.ir.peers import Workloads
from netpol_dsl.ir.selectors import Selector, Shape


def label_selector(selector: Selector, key: Callable[[str], str] = str) -> dict[str, Any]:
    """matchLabels for single values, matchExpressions for the rest; ``key`` renames label keys."""
    match_labels: dict[str, str] = {}
    exprs: list[dict[str, Any]] = []
    for c in selector.constraints:
        k = key(c.key)
        if c.shape is Shape.IN and len(c.values) == 1:
            match_labels[k] = c.values[0]
        elif c.shape is Shape.IN:
            exprs.append({"key": k, "operator": "In", "values": list(c.values)})
        elif c.shape is Shape.ABSENT:
            exprs.append({"key": k, "operator": "DoesNotExist"})
        else:
            if c.exists:
                exprs.append({"key": k, "operator": "Exists"})
            if c.values:
                exprs.append({"key": k, "operator": "NotIn", "values": list(c.values)})
    body: dict[str, Any] = {}
    if match_labels:
        body["matchLabels"] = match_labels
    if exprs:
        body["matchExpressions"] = exprs
    return body


_FLAGS = frozenset({"true", "yes", "on", "1", "enabled"})


def slug(selector: Selector) -> str:
    """A readable name fragment from a selector: its values, 'no-key', 'not-key-values'."""
    if selector.is_all:
        return "all-pods"
    parts = []
    for c in selector.constraints:
        short = c.key.rsplit("/", 1)[-1]
        if c.shape is Shape.IN and len(c.values) == 1 and c.values[0].lower() in _FLAGS:
            parts.append(short)  # quarantine=true -> "quarantine", not "true"
        elif c.shape is Shape.IN:
            parts.append("-".join(c.values))
        elif c.shape is Shape.ABSENT:
            parts.append(f"no-{short}")
        else:
            parts.append(f"not-{short}-{'-'.join(c.values)}" if c.values else f"has-{short}")
    return "-".join(parts)


def workloads_slug(w: Workloads) -> str:
    """A name fragment for workloads that may span namespaces: ``<namespace or its labels>-<pods>``."""
    ns = w.namespace or ("all-namespaces" if w.namespaces.is_all else slug(w.namespaces))
    return f"{ns}-{slug(w.pods)}"

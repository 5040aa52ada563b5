"""Calico selector expressions, generated from the IR's canonical selectors (never concatenated by hand).

Calico's grammar (``label == "v"``, ``!=``, ``in {...}``, ``not in {...}``, ``has()``, ``!``, ``&&``,
``all()``, ``global()``) has no escapes in quoted values: a value is quoted with ``"`` unless it
contains one, then with ``'``; a value with both cannot be written (:class:`Unquotable`).
"""

from __future__ import annotations

from collections.abc import Callable

from netpol_dsl.ir.selectors import NAMESPACE_NAME_LABEL, SERVICE_ACCOUNT_KEY, Constraint, Selector, Shape

ALL = "all()"
GLOBAL = "global()"
NAMESPACE_NAME = "projectcalico.org/name"  # on namespaces, for namespaceSelector
ORCHESTRATOR = "projectcalico.org/orchestrator"  # "k8s" on every pod's workload endpoint
SERVICE_ACCOUNT = "projectcalico.org/serviceaccount"  # the pod's service account, on its workload endpoint


class Unquotable(ValueError):
    """A label value with both quote characters: Calico's tokenizer has no escapes for it."""


def quote(value: str) -> str:
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise Unquotable(f"the value {value!r} contains both ' and \", which a Calico selector cannot quote")


def _values(values: tuple[str, ...]) -> str:
    return "{" + ", ".join(quote(v) for v in values) + "}"


def constraint(c: Constraint, key: str) -> list[str]:
    """The terms (ANDed) that say what ``c`` says, for label ``key``."""
    if c.shape is Shape.IN:
        return [f"{key} == {quote(c.values[0])}" if len(c.values) == 1 else f"{key} in {_values(c.values)}"]
    if c.shape is Shape.ABSENT:
        return [f"!has({key})"]
    terms = [f"has({key})"] if c.exists else []
    if len(c.values) == 1:
        terms.append(f"{key} != {quote(c.values[0])}")  # true when absent, like NotIn
    elif c.values:
        terms.append(f"{key} not in {_values(c.values)}")
    return terms


def expression(selector: Selector, key: Callable[[str], str] = str, extra: tuple[str, ...] = ()) -> str:
    """``selector`` as one Calico expression (``all()`` when it selects everything); ``extra`` terms first."""
    terms = [*extra, *(t for c in selector.constraints for t in constraint(c, key(c.key)))]
    return " && ".join(terms) if terms else ALL


def pod_key(k: str) -> str:
    """Pod labels as a workload endpoint carries them (the IR's service-account key is Calico's own label)."""
    return SERVICE_ACCOUNT if k == SERVICE_ACCOUNT_KEY else k


def namespace_key(k: str) -> str:
    """Namespace labels as namespaceSelector sees them: the name is ``projectcalico.org/name``."""
    return NAMESPACE_NAME if k == NAMESPACE_NAME_LABEL else k

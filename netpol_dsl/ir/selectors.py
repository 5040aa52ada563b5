"""Label selectors in canonical form, with exact set algebra.

A selector is a conjunction of per-key constraints.  Each key's constraint is
one of three canonical shapes, so that conjunction, negation and subset tests
are exact:

* ``IN(S)``: the label is present with a value in S (``matchLabels`` when |S| = 1);
* ``ABSENT``: the label is not present (``DoesNotExist``);
* ``NOT_IN(S, exists)``: the value is not in S, and (if ``exists``) the label is present.

``NOT_IN(∅, False)`` is no constraint and is dropped.  An unsatisfiable
conjunction is represented by ``None`` wherever an operation can produce one.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import attrs

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# A reserved pseudo-label of pod selectors: the pod's ServiceAccount.  Keeping it a label key lets the
# selector algebra (conjunction, subtraction, negation) handle it unchanged; the reference semantics
# gives every pod this key (its service account), users cannot write it as a label (NPD001), and each
# target maps it to its engine's own identity label or refuses it (NPD211).
SERVICE_ACCOUNT_KEY = "netpol-dsl.dev/service-account"
_DISPLAY_KEYS = {SERVICE_ACCOUNT_KEY: "serviceAccount"}  # for messages only


class Shape(enum.Enum):
    IN = "In"
    ABSENT = "DoesNotExist"
    NOT_IN = "NotIn"


@attrs.frozen(order=True)
class Constraint:
    """What one label key must satisfy."""

    key: str
    shape: Shape = attrs.field(order=lambda s: s.value)
    values: tuple[str, ...] = ()
    exists: bool = False  # only for NOT_IN

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.shape is Shape.IN:
            return value is not None and value in self.values
        if self.shape is Shape.ABSENT:
            return value is None
        if value is None:
            return not self.exists
        return value not in self.values

    def negate(self) -> tuple[Constraint, ...]:
        """The complement as a disjunction of constraints (empty tuple: complement is empty)."""
        if self.shape is Shape.IN:
            return (Constraint(self.key, Shape.NOT_IN, self.values, False),)
        if self.shape is Shape.ABSENT:
            return (Constraint(self.key, Shape.NOT_IN, (), True),)
        parts: list[Constraint] = []
        if self.values:
            parts.append(Constraint(self.key, Shape.IN, self.values))
        if self.exists:
            parts.append(Constraint(self.key, Shape.ABSENT))
        return tuple(parts)


def _meet(a: Constraint, b: Constraint) -> Constraint | None:
    """Conjunction of two constraints on the same key; None when unsatisfiable."""
    key = a.key
    if a.shape is Shape.IN and b.shape is Shape.IN:
        common = tuple(sorted(set(a.values) & set(b.values)))
        return Constraint(key, Shape.IN, common) if common else None
    if a.shape is Shape.ABSENT and b.shape is Shape.ABSENT:
        return a
    if Shape.ABSENT in (a.shape, b.shape):
        other = b if a.shape is Shape.ABSENT else a
        if other.shape is Shape.IN or (other.shape is Shape.NOT_IN and other.exists):
            return None
        return Constraint(key, Shape.ABSENT)
    if a.shape is Shape.IN or b.shape is Shape.IN:
        inc, exc = (a, b) if a.shape is Shape.IN else (b, a)
        left = tuple(sorted(set(inc.values) - set(exc.values)))
        return Constraint(key, Shape.IN, left) if left else None
    values = tuple(sorted(set(a.values) | set(b.values)))
    return Constraint(key, Shape.NOT_IN, values, a.exists or b.exists)


@attrs.frozen(order=True)
class Selector:
    """A conjunction of constraints, at most one per key, sorted by key.  ``Selector()`` selects all."""

    constraints: tuple[Constraint, ...] = ()

    @classmethod
    def of(cls, constraints: Iterable[Constraint]) -> Selector | None:
        """Build the canonical conjunction; None when unsatisfiable."""
        by_key: dict[str, Constraint] = {}
        for c in constraints:
            if c.shape is Shape.NOT_IN and not c.values and not c.exists:
                continue
            if c.shape is Shape.IN:
                c = Constraint(c.key, Shape.IN, tuple(sorted(set(c.values))))
            elif c.shape is Shape.NOT_IN:
                c = Constraint(c.key, Shape.NOT_IN, tuple(sorted(set(c.values))), c.exists)
            prev = by_key.get(c.key)
            merged = c if prev is None else _meet(prev, c)
            if merged is None:
                return None
            by_key[c.key] = merged
        return cls(tuple(by_key[k] for k in sorted(by_key)))

    @classmethod
    def equal(cls, labels: Mapping[str, str]) -> Selector:
        return cls(tuple(Constraint(k, Shape.IN, (v,)) for k, v in sorted(labels.items())))

    @property
    def is_all(self) -> bool:
        return not self.constraints

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(c.matches(labels) for c in self.constraints)

    def conjoin(self, other: Selector) -> Selector | None:
        return Selector.of(self.constraints + other.constraints)

    def negate(self) -> tuple[Selector, ...]:
        """The complement as a union of selectors (De Morgan); ``Selector().negate() == ()`` (empty)."""
        return tuple(Selector((n,)) for c in self.constraints for n in c.negate())

    def minus(self, other: Selector) -> tuple[Selector, ...]:
        """``self − other`` as a union of selectors, each a subset of self."""
        out: list[Selector] = []
        for piece in other.negate():
            s = self.conjoin(piece)
            if s is not None:
                out.append(s)
        return tuple(minimal_union(out))

    def issubset(self, other: Selector) -> bool:
        return self.conjoin(other) == self

    def disjoint(self, other: Selector) -> bool:
        return self.conjoin(other) is None

    def get(self, key: str) -> Constraint | None:
        for c in self.constraints:
            if c.key == key:
                return c
        return None

    def without(self, key: str) -> Selector:
        return Selector(tuple(c for c in self.constraints if c.key != key))

    def describe(self) -> str:
        if not self.constraints:
            return "*"
        parts = []
        for c in self.constraints:
            key = _DISPLAY_KEYS.get(c.key, c.key)
            if c.shape is Shape.IN:
                parts.append(f"{key}={c.values[0]}" if len(c.values) == 1 else f"{key} in ({','.join(c.values)})")
            elif c.shape is Shape.ABSENT:
                parts.append(f"!{key}")
            else:
                text = f"{key} notin ({','.join(c.values)})" if c.values else ""
                if c.exists:
                    text = f"{key}" + (f",{text}" if text else "")
                parts.append(text)
        return ",".join(parts)


def minimal_union(selectors: Iterable[Selector]) -> list[Selector]:
    """Sorted, deduplicated union with every member that is a subset of another removed."""
    items = sorted(set(selectors))
    keep: list[Selector] = []
    for i, s in enumerate(items):
        if any(j != i and s.issubset(o) and not (o.issubset(s) and j > i) for j, o in enumerate(items)):
            continue
        keep.append(s)
    return keep

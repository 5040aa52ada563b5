"""Label expressions: equality and set requirements on pod or namespace labels."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from typeguard import typechecked

from netpol_dsl import values
from netpol_dsl.diagnostics import Code, Location, caller_location, fail
from netpol_dsl.ir.selectors import Constraint, Selector, Shape


@attrs.frozen
class LabelExpr:
    """One requirement on one label key, e.g. ``label("tier").in_("web", "api")``."""

    constraint: Constraint
    location: Location = attrs.field(eq=False, factory=caller_location)


@attrs.frozen
class Label:
    """A label key, from which requirements are built."""

    key: str = attrs.field(converter=values.label_key)

    def equals(self, value: str) -> LabelExpr:
        """Require ``key == value``."""
        return LabelExpr(Constraint(self.key, Shape.IN, (values.label_value(value, self.key),)))

    def in_(self, *choices: str) -> LabelExpr:
        """Require the label to be present with one of ``choices`` (``In``)."""
        if not choices:
            raise fail(Code.NPD016, f"label({self.key!r}).in_() needs at least one value")
        vals = tuple(sorted({values.label_value(v, self.key) for v in choices}))
        return LabelExpr(Constraint(self.key, Shape.IN, vals))

    def not_in(self, *choices: str) -> LabelExpr:
        """Require the label to be absent or have none of ``choices`` (``NotIn``)."""
        if not choices:
            raise fail(Code.NPD016, f"label({self.key!r}).not_in() needs at least one value")
        vals = tuple(sorted({values.label_value(v, self.key) for v in choices}))
        return LabelExpr(Constraint(self.key, Shape.NOT_IN, vals))

    def exists(self) -> LabelExpr:
        """Require the label to be present with any value (``Exists``)."""
        return LabelExpr(Constraint(self.key, Shape.NOT_IN, (), True))

    def absent(self) -> LabelExpr:
        """Require the label not to be present (``DoesNotExist``)."""
        return LabelExpr(Constraint(self.key, Shape.ABSENT))


@typechecked
def label(key: str) -> Label:
    """Start a label requirement: ``label("app.kubernetes.io/name").equals("api")``."""
    return Label(key)


def build_selector(exprs: tuple[LabelExpr | Mapping[str, str], ...], labels: Mapping[str, str], what: str) -> Selector:
    """Combine positional expressions/mappings and keyword labels into one selector (AND)."""
    constraints: list[Constraint] = []
    for item in exprs:
        if isinstance(item, LabelExpr):
            constraints.append(item.constraint)
        elif isinstance(item, Mapping):
            for k, v in item.items():
                constraints.append(Constraint(values.label_key(k), Shape.IN, (values.label_value(v, k),)))
        else:
            raise fail(Code.NPD018, f"{what} takes label(...) expressions or a mapping of labels, got {item!r}")
    for k, v in labels.items():
        constraints.append(Constraint(values.label_key(k), Shape.IN, (values.label_value(v, k),)))
    selector = Selector.of(constraints)
    if selector is None:
        raise fail(Code.NPD016, f"{what} requirements contradict each other and select nothing")
    return selector

"""Flattening: compile tiers, denies and passes into allow-only rules by exact subtraction.

For targets without deny or ordering (Kubernetes NetworkPolicy; Cilium where an
allow must beat a lower deny), the reference semantics for one direction is

    allowed(pod) = ∪_t ( A_t − P_t − D_≤t )      if the pod is isolated,
                   everything − denied             otherwise,

where A_t, P_t, D_t are the allows, passes and denies of tier t.  Subtraction
carves the subject (which pods), the peer (selectors by De Morgan, CIDRs into
``except``) and the ports (ranges split); where one of them has no exact form a
diagnostic names both rules.  Nothing here ever widens a rule.
"""

from __future__ import annotations

import attrs

from netpol_dsl.diagnostics import Code, Diagnostic
from netpol_dsl.ir.peers import Anything, NotExact, Workloads, subtract_peer
from netpol_dsl.ir.ports import ports_overlap, subtract_ports
from netpol_dsl.ir.program import Action, Direction, Isolation, Program, Rule


@attrs.frozen
class Flat:
    """Allow-only rules plus the workloads that must be isolated (default-deny) per direction."""

    allows: tuple[Rule, ...]
    isolations: tuple[Isolation, ...]
    diagnostics: tuple[Diagnostic, ...]


def _minus(rule: Rule, other: Rule) -> list[Rule]:
    """``rule − other`` over (subject × peer × ports); HTTP matches are carried unchanged."""
    both = rule.subject.conjoin(other.subject)
    if both is None or not ports_overlap(rule.ports, other.ports):
        return [rule]
    peers = subtract_peer(rule.peer, other.peer)
    if peers == (rule.peer,):
        return [rule]
    ports = subtract_ports(rule.ports, other.ports)
    origins = tuple(sorted({*rule.origins, *other.origins}))  # the carved rule cites both
    out = [attrs.evolve(rule, subject=s, origins=origins) for s in rule.subject.minus(other.subject)]
    out += [attrs.evolve(rule, subject=both, peer=p, origins=origins) for p in peers]
    if ports != ():
        out.append(attrs.evolve(rule, subject=both, ports=ports, origins=origins))
    return out


def _cover(subject: Workloads, covers: list[Workloads]) -> list[Workloads]:
    """The parts of ``subject`` not inside any of ``covers``."""
    rest = [subject]
    for c in covers:
        rest = [piece for r in rest for piece in r.minus(c)]
        if not rest:
            break
    return rest


def flatten(program: Program) -> Flat:
    allows: list[Rule] = []
    isolations: set[Isolation] = set(program.isolations)
    diags: list[Diagnostic] = []
    for direction in (Direction.INGRESS, Direction.EGRESS):
        rules = [r for r in program.rules if r.direction is direction]
        # denies and passes are few: collect them once, not once per allow
        denies = [r for r in rules if r.action is Action.DENY]
        passes = [r for r in rules if r.action is Action.PASS]
        for a in (r for r in rules if r.action is Action.ALLOW):
            removers = [x for x in denies if x.tier.order <= a.tier.order]
            removers += [x for x in passes if x.tier == a.tier]
            pieces = [a]
            try:
                for x in removers:
                    pieces = [p for piece in pieces for p in _minus(piece, x)]
            except NotExact as exc:
                diags.append(_not_exact(a, x, str(exc)))
                continue
            allows += pieces
            isolations.add(Isolation(a.subject, direction, a.origins))
        isolated = [i.subject for i in isolations if i.direction is direction]
        for x in denies:
            uncovered = _cover(x.subject, isolated)
            if not uncovered:
                continue
            if isinstance(x.peer, Anything) and x.ports is None:
                for piece in uncovered:
                    isolations.add(Isolation(piece, direction, x.origins))
                continue
            diags.append(Diagnostic(
                Code.NPD205,
                f"deny '{x.flow}' ({x.describe()}) applies to workloads {uncovered[0].describe()} that have no "
                f"{direction.value} allow list, and this target can only deny by omitting traffic from one",
                x.location,
                hint=f"make their namespace default-deny ({direction.value}) in the baseline, deny all their "
                "traffic (deny(zone >> anything())), or restrict the deny with direction=; native deny needs "
                "Cilium or Calico policies",
            ))
    unique = {(r, r.sort_key()): r for r in allows}
    return Flat(
        allows=tuple(sorted(unique.values(), key=Rule.sort_key)),
        isolations=tuple(sorted(isolations, key=lambda i: (i.direction.value, i.subject))),
        diagnostics=tuple(diags),
    )


def _not_exact(a: Rule, x: Rule, why: str) -> Diagnostic:
    code = Code.NPD210 if x.action is Action.PASS else Code.NPD205
    if "port" in why:
        code = Code.NPD206
    return Diagnostic(
        code,
        f"allow '{a.flow}' ({a.describe()}) overlaps {x.action.value} '{x.flow}' (at {x.location}) and the "
        f"difference cannot be written exactly: {why}",
        a.location,
        hint="narrow the allow so it no longer overlaps; native deny and ordering need Cilium or Calico policies",
    )


@attrs.frozen
class Layered:
    """Allow rules and native deny rules for engines where deny beats every allow (Cilium)."""

    allows: tuple[Rule, ...]
    denies: tuple[Rule, ...]
    isolations: tuple[Isolation, ...]  # every allow's subject, even when carving left it nothing
    diagnostics: tuple[Diagnostic, ...]


def layer(program: Program) -> Layered:
    """Compile tiers for an engine with native deny and no order beyond "deny beats allow".

    Allows lose what a pass of their own tier covers (``A_t − P_t``); a deny loses what an
    allow of an earlier tier already decided (``D_t − (A_t' − P_t')`` for ``t' < t``), because
    there the intent allows.  What an earlier deny covers stays denied natively.
    """
    allows: list[Rule] = []
    denies: list[Rule] = []
    isolations: set[Isolation] = set(program.isolations)
    diags: list[Diagnostic] = []
    for direction in (Direction.INGRESS, Direction.EGRESS):
        rules = [r for r in program.rules if r.direction is direction]
        passes = [r for r in rules if r.action is Action.PASS]
        isolations.update(Isolation(r.subject, direction, r.origins) for r in rules if r.action is Action.ALLOW)
        carved_allows: list[Rule] = []
        for a in (r for r in rules if r.action is Action.ALLOW):
            pieces = [a]
            try:
                for x in (p for p in passes if p.tier == a.tier):
                    pieces = [p for piece in pieces for p in _minus(piece, x)]
            except NotExact as exc:
                diags.append(_not_exact(a, x, str(exc)))
                continue
            carved_allows += pieces
        for d in (r for r in rules if r.action is Action.DENY):
            pieces = [d]
            for a in (r for r in carved_allows if r.tier.order < d.tier.order):
                try:
                    if a.http and any(_minus(p, a) != [p] for p in pieces):
                        raise NotExact("an HTTP allow decides per request, a deny per connection")
                    pieces = [p for piece in pieces for p in _minus(piece, a)]
                except NotExact as exc:
                    diags.append(Diagnostic(
                        Code.NPD205,
                        f"deny '{d.flow}' ({d.describe()}) is overridden in part by allow '{a.flow}' of an earlier "
                        f"tier (at {a.location}), and the difference cannot be written exactly: {exc}",
                        d.location, hint="narrow one of the two rules so that they no longer overlap"))
                    break
            denies += pieces
        allows += carved_allows
    return Layered(
        allows=tuple(sorted({r.sort_key(): r for r in allows}.values(), key=Rule.sort_key)),
        denies=tuple(sorted({r.sort_key(): r for r in denies}.values(), key=Rule.sort_key)),
        isolations=tuple(sorted(isolations, key=lambda i: (i.direction.value, i.subject))),
        diagnostics=tuple(diags),
    )

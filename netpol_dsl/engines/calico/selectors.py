"""Calico's selector language: a tokenizer, a recursive-descent parser and the evaluation of the tree.

Grammar (calico:libcalico-go/lib/selector/tokenizer/tokenizer.go and parser/parser.go), lowest
precedence first::

    or        := and ( "||" and )*
    and       := operation ( "&&" operation )*
    operation := "!"* ( "has(" LABEL ")" | "all()" | "global()" | "(" or ")"
                      | LABEL ( "==" | "!=" | "contains" | "starts with" | "ends with" ) STRING
                      | LABEL ( "in" | "not in" ) "{" [ STRING ( "," STRING )* [","] ] "}" )

Labels are ``[A-Za-z0-9_./-]+`` (at most 512 characters); strings are quoted with ``"`` or ``'`` and
have no escapes; whitespace is spaces and tabs only; ``notin``, ``startswith`` and ``endswith``
are accepted as one word too.  An empty selector means ``all()``.  ``==``, ``contains``, ``starts
with``, ``ends with`` and ``in`` need the label; ``!=`` and ``not in`` are true when it is absent.
``all()`` and ``global()`` are true, except in a rule's ``namespaceSelector``, where Calico rewrites
them to "the endpoint is namespaced" and "the endpoint is not namespaced" (:class:`Scope`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

import attrs

MAX_LABEL_LENGTH = 512
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-")


class SelectorError(ValueError):
    """A selector that does not parse; the message says what was expected."""


# --------------------------------------------------------------------------------------------
# evaluation scope


@attrs.frozen
class Scope:
    """What a selector is evaluated against: ``labels`` looked up as ``prefix + key``, and the value of
    ``all()``/``global()`` (both true, except in a rule ``namespaceSelector``)."""

    labels: Mapping[str, str]
    prefix: str = ""
    all_value: bool = True
    global_value: bool = True

    def get(self, key: str) -> str | None:
        return self.labels.get(self.prefix + key)


# --------------------------------------------------------------------------------------------
# the tree


class Node(Protocol):
    def holds(self, scope: Scope) -> bool: ...


@attrs.frozen
class AllNode:
    def holds(self, scope: Scope) -> bool:
        return scope.all_value


@attrs.frozen
class GlobalNode:
    def holds(self, scope: Scope) -> bool:
        return scope.global_value


@attrs.frozen
class HasNode:
    key: str

    def holds(self, scope: Scope) -> bool:
        return scope.get(self.key) is not None


Comparison = Literal["==", "!=", "contains", "starts with", "ends with"]


@attrs.frozen
class CompareNode:
    """``key OP "value"``; every operator but ``!=`` needs the label to be present."""

    key: str
    op: Comparison
    value: str

    def holds(self, scope: Scope) -> bool:
        found = scope.get(self.key)
        if found is None:
            return self.op == "!="
        if self.op == "==":
            return found == self.value
        if self.op == "!=":
            return found != self.value
        if self.op == "contains":
            return self.value in found
        if self.op == "starts with":
            return found.startswith(self.value)
        return found.endswith(self.value)


@attrs.frozen
class InNode:
    """``key in {...}`` (label present and in the set) or ``key not in {...}`` (absent, or not in it)."""

    key: str
    values: frozenset[str]
    negated: bool = False

    def holds(self, scope: Scope) -> bool:
        found = scope.get(self.key)
        if found is None:
            return self.negated
        return (found in self.values) != self.negated


@attrs.frozen
class NotNode:
    operand: Node

    def holds(self, scope: Scope) -> bool:
        return not self.operand.holds(scope)


@attrs.frozen
class AndNode:
    operands: tuple[Node, ...]

    def holds(self, scope: Scope) -> bool:
        return all(o.holds(scope) for o in self.operands)


@attrs.frozen
class OrNode:
    operands: tuple[Node, ...]

    def holds(self, scope: Scope) -> bool:
        return any(o.holds(scope) for o in self.operands)


@attrs.frozen
class Selector:
    """A parsed selector and the text it was parsed from (explanations quote the text)."""

    root: Node
    text: str

    def matches(self, labels: Mapping[str, str], prefix: str = "", *, all_value: bool = True,
                global_value: bool = True) -> bool:
        return self.root.holds(Scope(labels, prefix, all_value, global_value))

    def describe(self) -> str:
        return self.text.strip() or "all()"


ALL = Selector(AllNode(), "all()")


def conjunction(nodes: list[Node], text: str) -> Selector:
    """The AND of ``nodes`` (``all()`` when empty), for selectors built rather than parsed."""
    if not nodes:
        return Selector(AllNode(), text)
    return Selector(nodes[0] if len(nodes) == 1 else AndNode(tuple(nodes)), text)


# --------------------------------------------------------------------------------------------
# tokenizer

TokenKind = Literal["label", "string", "{", "}", ",", "==", "!=", "in", "not in", "!", "contains",
                    "starts with", "ends with", "all", "global", "has", "(", ")", "&&", "||", "eof"]


@attrs.frozen
class Token:
    kind: TokenKind
    value: str = ""


_SIMPLE: dict[str, TokenKind] = {"(": "(", ")": ")", "{": "{", "}": "}", ",": ","}
_PAIRS: dict[str, TokenKind] = {"==": "==", "&&": "&&", "||": "||"}
_OPERATORS: tuple[tuple[tuple[str, ...], TokenKind], ...] = (
    (("contains",), "contains"), (("starts", "with"), "starts with"), (("ends", "with"), "ends with"),
    (("not", "in"), "not in"), (("in",), "in"),
)
_FUNCTIONS: tuple[tuple[str, TokenKind], ...] = (("all(", "all"), ("global(", "global"))


def _skip_blanks(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _identifier(text: str, i: int) -> tuple[str, int]:
    j = i
    while j < len(text) and text[j] in _LABEL_CHARS:
        j += 1
    if j == i:
        shown = repr(text[i]) if i < len(text) else "the end"
        raise SelectorError(f"expected a label at {shown}")
    if j - i > MAX_LABEL_LENGTH:
        raise SelectorError(f"label too long ({j - i} characters, at most {MAX_LABEL_LENGTH})")
    return text[i:j], j


def _operator_word(text: str, i: int, words: tuple[str, ...]) -> int | None:
    """The end of ``words`` at ``i`` (blanks allowed between them), if a word boundary follows."""
    j = i
    for n, word in enumerate(words):
        if not text.startswith(word, j):
            return None
        j += len(word)
        if n < len(words) - 1:
            j = _skip_blanks(text, j)
    if j < len(text) and text[j] in _LABEL_CHARS:
        return None
    return j


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``eof`` token; raises :class:`SelectorError`."""
    tokens: list[Token] = []
    i = 0
    while True:
        i = _skip_blanks(text, i)
        if i >= len(text):
            tokens.append(Token("eof"))
            return tokens
        c = text[i]
        if c in _SIMPLE:
            tokens.append(Token(_SIMPLE[c]))
            i += 1
        elif c in "\"'":
            end = text.find(c, i + 1)
            if end < 0:
                raise SelectorError("unterminated string")
            tokens.append(Token("string", text[i + 1:end]))
            i = end + 1
        elif text[i:i + 2] in _PAIRS:
            tokens.append(Token(_PAIRS[text[i:i + 2]]))
            i += 2
        elif c in "=&|":
            raise SelectorError(f"expected {c}{c}" if c != "=" else "expected ==")
        elif c == "!":
            if text.startswith("!=", i):
                tokens.append(Token("!="))
                i += 2
            else:
                tokens.append(Token("!"))
                i += 1
        elif tokens and tokens[-1].kind == "label":
            i = _after_label(text, i, tokens)
        elif text.startswith("has(", i):
            key, i = _identifier(text, _skip_blanks(text, i + 4))
            i = _skip_blanks(text, i)
            if not text.startswith(")", i):
                raise SelectorError("no closing ')' after has(")
            tokens.append(Token("has", key))
            i += 1
        elif (function := next(((p, k) for p, k in _FUNCTIONS if text.startswith(p, i)), None)) is not None:
            prefix, kind = function
            i = _skip_blanks(text, i + len(prefix))
            if not text.startswith(")", i):
                raise SelectorError(f"no closing ')' after {prefix}")
            tokens.append(Token(kind))
            i += 1
        else:
            label, i = _identifier(text, i)
            tokens.append(Token("label", label))


def _after_label(text: str, i: int, tokens: list[Token]) -> int:
    for words, kind in _OPERATORS:
        end = _operator_word(text, i, words)
        if end is not None:
            tokens.append(Token(kind))
            return end
    raise SelectorError(f"expected an operator after label {tokens[-1].value!r}")


# --------------------------------------------------------------------------------------------
# parser


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "eof":
            self.i += 1
        return token

    def parse_or(self) -> Node:
        nodes = [self.parse_and()]
        while self.peek().kind == "||":
            self.take()
            nodes.append(self.parse_and())
        return nodes[0] if len(nodes) == 1 else OrNode(tuple(nodes))

    def parse_and(self) -> Node:
        nodes = [self.parse_operation()]
        while self.peek().kind == "&&":
            self.take()
            nodes.append(self.parse_operation())
        return nodes[0] if len(nodes) == 1 else AndNode(tuple(nodes))

    def parse_operation(self) -> Node:
        negated = False
        while self.peek().kind == "!":
            self.take()
            negated = not negated
        node = self._operation()
        return NotNode(node) if negated else node

    def _operation(self) -> Node:
        token = self.take()
        if token.kind == "has":
            return HasNode(token.value)
        if token.kind == "all":
            return AllNode()
        if token.kind == "global":
            return GlobalNode()
        if token.kind == "(":
            node = self.parse_or()
            if self.take().kind != ")":
                raise SelectorError("expected )")
            return node
        if token.kind != "label":
            what = "the end of the selector" if token.kind == "eof" else f"{token.kind!r}"
            raise SelectorError(f"unexpected {what}")
        op = self.take()
        if op.kind in ("==", "!=", "contains", "starts with", "ends with"):
            value = self.take()
            if value.kind != "string":
                raise SelectorError(f"expected a quoted string after {token.value} {op.kind}")
            return CompareNode(token.value, _comparison(op.kind), value.value)
        if op.kind in ("in", "not in"):
            return self._set(token.value, op.kind == "not in")
        raise SelectorError(f"expected an operator after label {token.value!r}")

    def _set(self, key: str, negated: bool) -> Node:
        if self.take().kind != "{":
            raise SelectorError("expected a set literal {...}")
        values: list[str] = []
        while self.peek().kind == "string":
            values.append(self.take().value)
            if self.peek().kind != ",":
                break
            self.take()
        if self.take().kind != "}":
            raise SelectorError("expected }")
        return InNode(key, frozenset(values), negated)


def _comparison(kind: TokenKind) -> Comparison:
    if kind == "==":
        return "=="
    if kind == "!=":
        return "!="
    if kind == "contains":
        return "contains"
    if kind == "starts with":
        return "starts with"
    return "ends with"


def parse(text: str) -> Selector:
    """Parse a selector; raises :class:`SelectorError` (a ValueError) saying what was expected."""
    tokens = tokenize(text)
    if tokens[0].kind == "eof":
        return Selector(AllNode(), text)
    parser = _Parser(tokens)
    root = parser.parse_or()
    if parser.peek().kind != "eof":
        raise SelectorError(f"unexpected {parser.peek().kind!r} after the end of the expression")
    return Selector(root, text)


def only_global(text: str) -> bool:
    """Whether ``text`` is ``global()`` alone (Calico allows global() in no other combination)."""
    try:
        tokens = tokenize(text)
    except SelectorError:
        return False
    return [t.kind for t in tokens] == ["global", "eof"]

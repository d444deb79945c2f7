"""Formula syntax tree: immutable nodes, equal and hashed by structure, printed in canonical form."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

# Binding strength, loosest first. Printing uses it to emit only the parentheses the tree needs.
OR, AND, NOT, CMP, ADD, MUL, UNARY, POW, ATOM = range(1, 10)

COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
BINARY_PRECEDENCE: dict[str, int] = {
    "or": OR,
    "and": AND,
    **dict.fromkeys(COMPARISONS, CMP),
    "+": ADD,
    "-": ADD,
    "*": MUL,
    "/": MUL,
    "**": POW,
}

# name -> (fewest, most) arguments; None means no upper limit.
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "exp": (1, 1),
    "log": (1, 1),
    "sqrt": (1, 1),
    "abs": (1, 1),
    "min": (2, None),
    "max": (2, None),
}


@dataclass(frozen=True)
class Expr:
    """A parsed formula (or one node of it). Build with `gradfit.expr.parse`.

    The root produced by `parse` remembers the original text and the `where` context for messages;
    neither takes part in equality, so `parse(str(e)) == e`.
    """

    _source: str | None = field(default=None, kw_only=True, compare=False, repr=False)
    _where: str = field(default="", kw_only=True, compare=False, repr=False)

    @property
    def text(self) -> str:
        """The text the formula was parsed from (the canonical form for nodes built otherwise)."""
        return self._source if self._source is not None else str(self)

    @cached_property
    def names(self) -> frozenset[str]:
        """Identifiers used by the formula (function names excluded)."""
        return frozenset(self._names_in_order())

    @cached_property
    def strings(self) -> frozenset[str]:
        """String literals used by the formula."""
        return frozenset(node.value for node in self._walk() if isinstance(node, Str))

    @property
    def is_constant(self) -> bool:
        """True when the formula uses no identifiers."""
        return not self.names

    def evaluate(self, env: Mapping[str, Any], xp: Any = np) -> Any:
        """Evaluate elementwise, with broadcasting, in the array namespace `xp` (numpy or jax.numpy).

        Comparisons and `and`/`or`/`not` give float 0.0/1.0 so they can enter arithmetic.
        """
        from gradfit.expr._eval import evaluate

        return evaluate(self, env, xp)

    def partial(self, env: Mapping[str, Any], xp: Any = np) -> Expr:
        """Replace every largest subtree computable from `env` alone by a `Const` holding its value.

        Meant for folding data-only parts (text comparisons included) before the rest runs under jax.
        The result keeps the original text and context for its error messages.
        """
        from gradfit.expr._eval import partial

        return partial(self, env, xp)

    def check_names(self, known: Iterable[str], where: str = "") -> None:
        """Raise `FormulaError` for the first identifier (in order of appearance) not in `known`."""
        from gradfit.expr._eval import check_names

        check_names(self, known, where)

    def children(self) -> tuple[Expr, ...]:
        return ()

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        """A copy of this node with its operands replaced (same order as `children()`)."""
        return self

    def __str__(self) -> str:
        return _render(self)[0]

    def _walk(self) -> Iterator[Expr]:
        """Nodes in order of appearance in the text (pre-order, left to right)."""
        stack: list[Expr] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children()))

    def _names_in_order(self) -> list[str]:
        seen: dict[str, None] = {}
        for node in self._walk():
            if isinstance(node, Name):
                seen.setdefault(node.id, None)
        return list(seen)


@dataclass(frozen=True, eq=False)
class Const(Expr):
    """A fixed value: a number from the text, or a scalar or array folded by `Expr.partial`.

    Scalars compare by value; arrays only by identity (elementwise `==` cannot give one answer).
    """

    value: Any

    def _key(self) -> tuple[str, Any] | None:
        v = self.value
        if isinstance(v, str):
            return ("s", v)
        if isinstance(v, bool | int | float | np.generic) and not isinstance(v, np.str_ | np.bytes_):
            return ("n", float(v))
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Const):
            return NotImplemented
        if self.value is other.value:
            return True
        key = self._key()
        return key is not None and key == other._key()

    def __hash__(self) -> int:
        key = self._key()
        return hash(key) if key is not None else id(self.value)


@dataclass(frozen=True)
class Name(Expr):
    id: str


@dataclass(frozen=True)
class Str(Expr):
    value: str


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # "-", "+" or "not"
    operand: Expr

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return replace(self, operand=children[0])


@dataclass(frozen=True)
class Binary(Expr):
    op: str  # a key of BINARY_PRECEDENCE
    left: Expr
    right: Expr

    def children(self) -> tuple[Expr, ...]:
        return (self.left, self.right)

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return replace(self, left=children[0], right=children[1])


@dataclass(frozen=True)
class Call(Expr):
    func: str  # a key of FUNCTIONS
    args: tuple[Expr, ...]

    def children(self) -> tuple[Expr, ...]:
        return self.args

    def with_children(self, children: tuple[Expr, ...]) -> Expr:
        return replace(self, args=tuple(children))


def quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _render_number(x: float) -> tuple[str, int]:
    if not math.isfinite(x):
        return f"<{x}>", ATOM
    if x.is_integer() and abs(x) < 1e16:
        text = str(int(x))
    else:
        text = repr(x)
    # A negative literal prints with a leading '-', so it binds like unary minus: (-2) ** 2.
    return text, UNARY if text.startswith("-") else ATOM


def _render_const(value: Any) -> tuple[str, int]:
    if isinstance(value, str):
        return quote(value), ATOM
    shape = getattr(value, "shape", None)
    if shape is None or shape == ():
        try:
            return _render_number(float(value))
        except (TypeError, ValueError):
            return f"<{type(value).__name__}>", ATOM
    return f"<array shape {tuple(shape)}>", ATOM


def _render(node: Expr) -> tuple[str, int]:
    """The canonical text of `node` and the precedence of its outermost operator."""
    match node:
        case Const(value=value):
            return _render_const(value)
        case Name(id=name):
            return name, ATOM
        case Str(value=value):
            return quote(value), ATOM
        case Call(func=func, args=args):
            return f"{func}({', '.join(_render(a)[0] for a in args)})", ATOM
        case Unary(op="not", operand=operand):
            return f"not {_wrap(operand, NOT)}", NOT
        case Unary(op=op, operand=operand):
            return f"{op}{_wrap(operand, UNARY)}", UNARY
        case Binary(op=op, left=left, right=right):
            prec = BINARY_PRECEDENCE[op]
            if op == "**":
                # Right-associative, and its right operand may carry a sign: 2 ** -1.
                lhs, rhs = _wrap(left, prec + 1), _wrap(right, UNARY)
            elif op in COMPARISONS:
                lhs, rhs = _wrap(left, prec + 1), _wrap(right, prec + 1)
            else:
                lhs, rhs = _wrap(left, prec), _wrap(right, prec + 1)
            return f"{lhs} {op} {rhs}", prec
    raise TypeError(f"not a formula node: {node!r}")


def _wrap(node: Expr, min_prec: int) -> str:
    text, prec = _render(node)
    return text if prec >= min_prec else f"({text})"

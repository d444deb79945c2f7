"""Evaluation, constant folding and name checking of formula trees."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from gradfit.errors import FormulaError
from gradfit.expr._nodes import Binary, Call, Const, Expr, Name, Str, Unary
from gradfit.expr._parse import _prefix, _quote_formula


def _floating(x: Any) -> Any:
    """`x` as floats: integer bases would make numpy refuse negative powers (2 ** -1)."""
    if isinstance(x, bool | int):
        return float(x)
    dtype = getattr(x, "dtype", None)
    if dtype is not None and dtype.kind in "biu":
        return x * 1.0
    return x


def _truth(xp: Any, condition: Any) -> Any:
    # Biogeme convention: conditions are 0.0/1.0 floats so they can multiply parameters.
    return xp.where(condition, 1.0, 0.0)


_BINARY: dict[str, Callable[[Any, Any, Any], Any]] = {
    "+": lambda xp, a, b: a + b,
    "-": lambda xp, a, b: a - b,
    "*": lambda xp, a, b: a * b,
    # xp.divide rather than `/`: Python floats would raise ZeroDivisionError instead of giving inf.
    "/": lambda xp, a, b: xp.divide(a, b),
    # xp.power rather than `**`: a negative Python float to a fractional power would turn complex.
    "**": lambda xp, a, b: xp.power(_floating(a), b),
    "==": lambda xp, a, b: _truth(xp, a == b),
    "!=": lambda xp, a, b: _truth(xp, a != b),
    "<": lambda xp, a, b: _truth(xp, a < b),
    "<=": lambda xp, a, b: _truth(xp, a <= b),
    ">": lambda xp, a, b: _truth(xp, a > b),
    ">=": lambda xp, a, b: _truth(xp, a >= b),
    "and": lambda xp, a, b: _truth(xp, xp.logical_and(a, b)),
    "or": lambda xp, a, b: _truth(xp, xp.logical_or(a, b)),
}

_UNARY: dict[str, Callable[[Any, Any], Any]] = {
    "-": lambda xp, a: -a,
    "+": lambda xp, a: +a,
    "not": lambda xp, a: _truth(xp, xp.logical_not(a)),
}

_FUNCTIONS: dict[str, Callable[[Any, list[Any]], Any]] = {
    "exp": lambda xp, args: xp.exp(args[0]),
    "log": lambda xp, args: xp.log(args[0]),
    "sqrt": lambda xp, args: xp.sqrt(args[0]),
    "abs": lambda xp, args: xp.abs(args[0]),
    "min": lambda xp, args: functools.reduce(xp.minimum, args),
    "max": lambda xp, args: functools.reduce(xp.maximum, args),
}


class _Evaluator:
    def __init__(self, root: Expr, env: Mapping[str, Any], xp: Any) -> None:
        self.root = root
        self.env = env
        self.xp = xp

    def run(self, node: Expr) -> Any:
        xp = self.xp
        match node:
            case Const(value=value):
                return value
            case Str(value=value):
                return value
            case Name(id=name):
                if name not in self.env:
                    raise unknown_name_error(self.root, name, self.env, self.root._where)
                return self.env[name]
            case Unary(op=op, operand=operand):
                return _UNARY[op](xp, self.run(operand))
            case Binary(op=op, left=left, right=right):
                if isinstance(left, Str) or isinstance(right, Str):
                    return self._compare_text(node)
                return _BINARY[op](xp, self.run(left), self.run(right))
            case Call(func=func, args=args):
                return _FUNCTIONS[func](xp, [self.run(a) for a in args])
        raise TypeError(f"not a formula node: {node!r}")

    def _compare_text(self, node: Binary) -> Any:
        # Text never reaches jax (it has no string arrays), so the comparison is done in numpy.
        if isinstance(node.left, Str) and isinstance(node.right, Str):
            equal: Any = node.left.value == node.right.value
        else:
            text, other = (node.left, node.right) if isinstance(node.left, Str) else (node.right, node.left)
            assert isinstance(text, Str)
            equal = self._text_values(other, text) == text.value
        return _truth(self.xp, equal if node.op == "==" else np.logical_not(equal))

    def _text_values(self, other: Expr, text: Str) -> np.ndarray:
        values = self.run(other)
        context = (
            f"{_prefix(self.root._where)}cannot compare '{other}' with the string {text.text} "
            f"in formula {_quote_formula(self.root.text)}"
        )
        try:
            array = np.asarray(values)
        except Exception as exc:
            raise FormulaError(
                f"{context}: its values are not plain data ({type(values).__name__}); "
                "fold text comparisons with Expr.partial before evaluating under jax"
            ) from exc
        if array.dtype.kind not in "OUS":
            raise FormulaError(f"{context}: '{other}' holds numbers ({array.dtype}), not text")
        return array


def evaluate(expr: Expr, env: Mapping[str, Any], xp: Any = np) -> Any:
    return _Evaluator(expr, env, xp).run(expr)


def partial(expr: Expr, env: Mapping[str, Any], xp: Any = np) -> Expr:
    known = frozenset(env)
    evaluator = _Evaluator(expr, env, xp)

    def fold(node: Expr) -> Expr:
        # A lone string stays a Str: the comparison around it needs to see the literal.
        if isinstance(node, Const | Str):
            return node
        if node.names <= known:
            return Const(evaluator.run(node))
        return node.with_children(tuple(fold(child) for child in node.children()))

    return replace(fold(expr), _source=expr._source, _where=expr._where)


def check_names(expr: Expr, known: Iterable[str], where: str = "") -> None:
    known_set = frozenset(known)
    for name in expr._names_in_order():
        if name not in known_set:
            raise unknown_name_error(expr, name, known_set, where or expr._where)


def unknown_name_error(root: Expr, name: str, known: Iterable[Any], where: str) -> FormulaError:
    candidates = sorted({k for k in known if isinstance(k, str)})
    close = difflib.get_close_matches(name, candidates, n=3)
    if close:
        quoted = [repr(c) for c in close]
        options = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        hint = f"did you mean {options}?"
    elif candidates:
        more = ", ..." if len(candidates) > 10 else ""
        hint = "known names include " + ", ".join(repr(c) for c in candidates[:10]) + more
    else:
        hint = "no names are defined here"
    return FormulaError(f"{_prefix(where)}unknown name {name!r} in formula {_quote_formula(root.text)}; {hint}")

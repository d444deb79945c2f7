"""Split a bound formula into the parts that are linear in one parameter and the rest.

Most utility and structural terms are `parameter * data` or `parameter * latent variable`. Evaluated one by one,
each such term is its own broadcast in the forward pass and its own reduction in the backward pass (hundreds of
small kernels for a 200-parameter model). Collected, all of them become one matrix product each way.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradfit.expr import Const, Expr
from gradfit.expr._nodes import Binary, Name, Unary
from gradfit.iclv.formulas import _sum, _terms


@dataclass(frozen=True)
class LinearForm:
    """expr == sum(f * p * data[s]) + sum(f * p * lv) + rest, with f a number, p a parameter."""

    data_terms: tuple[tuple[float, str, str | None], ...]  # (factor, parameter, data slot or None for 1)
    lv_terms: tuple[tuple[float, str, str], ...]  # (factor, parameter, latent variable)
    rest: Expr | None


def _factors(expr: Expr) -> tuple[float, list[Expr]] | None:
    """A product as (number, non-numeric factors); None if it is not a plain product/quotient by numbers."""
    if isinstance(expr, Const):
        return (float(expr.value), []) if isinstance(expr.value, int | float) else None
    if isinstance(expr, Unary) and expr.op in "+-":
        inner = _factors(expr.operand)
        return None if inner is None else ((-1.0 if expr.op == "-" else 1.0) * inner[0], inner[1])
    if isinstance(expr, Binary) and expr.op == "*":
        left, right = _factors(expr.left), _factors(expr.right)
        if left is None or right is None:
            return None
        return left[0] * right[0], left[1] + right[1]
    if isinstance(expr, Binary) and expr.op == "/" and isinstance(expr.right, Const):
        left = _factors(expr.left)
        value = expr.right.value
        if left is None or not isinstance(value, int | float) or value == 0:
            return None
        return left[0] / float(value), left[1]
    if isinstance(expr, Name):
        return 1.0, [expr]
    return None


def decompose(expr: Expr, params: set[str], latent: set[str], slots: set[str]) -> LinearForm:
    data_terms, lv_terms, rest = [], [], []
    for positive, term in _terms(expr):
        sign = 1.0 if positive else -1.0
        fac = _factors(term)
        names = [f.id for f in fac[1]] if fac is not None else []
        ps = [n for n in names if n in params]
        lvs = [n for n in names if n in latent]
        ds = [n for n in names if n in slots]
        if fac is not None and len(ps) == 1 and not lvs and len(ds) <= 1 and len(names) == len(ps) + len(ds):
            data_terms.append((sign * fac[0], ps[0], ds[0] if ds else None))
        elif fac is not None and len(ps) == 1 and len(lvs) == 1 and len(names) == 2:
            lv_terms.append((sign * fac[0], ps[0], lvs[0]))
        else:
            rest.append((positive, term))
    return LinearForm(tuple(data_terms), tuple(lv_terms), _sum(rest))

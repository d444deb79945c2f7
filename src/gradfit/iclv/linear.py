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
    """expr == sum(f * prod(params) * prod(data slots)) + sum(f * prod(params) * lv) + rest, f a number."""

    data_terms: tuple[tuple[float, tuple[str, ...], tuple[str, ...]], ...]  # (factor, parameters, data slots)
    lv_terms: tuple[tuple[float, tuple[str, ...], str], ...]  # (factor, parameters, latent variable)
    rest: Expr | None


# Distributing products over sums multiplies the number of terms; beyond this many, keep the formula as is.
MAX_EXPANDED_TERMS = 256


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


def expanded_terms(expr: Expr) -> list[tuple[bool, Expr]]:
    """Signed terms of `expr` with products distributed over sums: scale * (a + b * x) -> scale * a, scale * b * x.

    Only +, -, * and division by a number are distributed; anything else (exp(...), a product with a
    quotient by a parameter, ...) stays one term. Falls back to the plain top-level terms when the expansion
    would exceed MAX_EXPANDED_TERMS.
    """
    expanded = _expand(expr)
    return expanded if expanded is not None and len(expanded) <= MAX_EXPANDED_TERMS else _terms(expr)


def _expand(expr: Expr) -> list[tuple[bool, Expr]] | None:
    if isinstance(expr, Binary) and expr.op in ("+", "-"):
        left, right = _expand(expr.left), _expand(expr.right)
        if left is None or right is None:
            return None
        return left + [(sign if expr.op == "+" else not sign, t) for sign, t in right]
    if isinstance(expr, Unary) and expr.op in "+-":
        inner = _expand(expr.operand)
        return None if inner is None else [(sign if expr.op == "+" else not sign, t) for sign, t in inner]
    if isinstance(expr, Binary) and expr.op == "*":
        left, right = _expand(expr.left), _expand(expr.right)
        if left is None or right is None or len(left) * len(right) > MAX_EXPANDED_TERMS:
            return None
        return [(ls == rs, Binary("*", lt, rt)) for ls, lt in left for rs, rt in right]
    if isinstance(expr, Binary) and expr.op == "/" and isinstance(expr.right, Const):
        left = _expand(expr.left)
        return None if left is None else [(sign, Binary("/", t, expr.right)) for sign, t in left]
    return [(True, expr)]


def decompose(
    expr: Expr, params: set[str], latent: set[str], slots: set[str], max_params: int = 1, expand: bool = False
) -> LinearForm:
    """Split `expr` into data terms, latent-variable terms (each with at most `max_params` parameters as
    factors; with several parameters, data terms may have several data slots) and the rest.

    With `expand`, each top-level term whose distributed form (`expanded_terms`) is entirely linear is replaced
    by it: scale * (a + b * x) becomes two linear terms. A term that is not entirely linear stays whole in the
    rest, so that expansion never duplicates a non-linear part (exp(...) evaluated once per copy).
    """
    data_terms, lv_terms, rest = [], [], []

    def linear(positive: bool, term: Expr) -> tuple | None:
        sign = 1.0 if positive else -1.0
        fac = _factors(term)
        if fac is None:
            return None
        names = [f.id for f in fac[1]]
        ps = [n for n in names if n in params]
        lvs = [n for n in names if n in latent]
        ds = [n for n in names if n in slots]
        if len(names) != len(ps) + len(lvs) + len(ds) or not 1 <= len(ps) <= max_params:
            return None
        if not lvs and (len(ds) <= 1 or max_params > 1):
            return ("data", (sign * fac[0], tuple(ps), tuple(ds)))
        if len(lvs) == 1 and not ds:
            return ("lv", (sign * fac[0], tuple(ps), lvs[0]))
        return None

    for positive, term in _terms(expr):
        parts = [linear(p, t) for p, t in (expanded_terms(term) if expand else [(True, term)])]
        if expand and all(parts):
            parts = [(kind, (f if positive else -f, *rest_)) for kind, (f, *rest_) in parts]
        elif not expand and parts[0] is not None:
            kind, (f, *rest_) = parts[0]
            parts = [(kind, (f if positive else -f, *rest_))]
        else:
            rest.append((positive, term))
            continue
        for kind, item in parts:
            (data_terms if kind == "data" else lv_terms).append(item)
    return LinearForm(tuple(data_terms), tuple(lv_terms), _sum(rest))

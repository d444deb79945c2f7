"""Binding spec formulas to data: fold the data-only parts with numpy, keep the rest for JAX.

Folded arrays are lifted out of the formula into named slots, so that the compiled likelihood takes them as
arguments instead of baking them into the program as constants (which would slow compilation and tie the
compiled code to one data set).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from gradfit.errors import FormulaError
from gradfit.expr import Const, Expr, parse
from gradfit.expr._nodes import Binary, Name, Unary


def lift_arrays(expr: Expr, prefix: str, slots: dict[str, np.ndarray]) -> Expr:
    """Replace every array-valued constant by a Name of a new slot in `slots` (mutated)."""
    if isinstance(expr, Const):
        if np.ndim(expr.value) == 0:
            return Const(float(expr.value))
        name = f"{prefix}{len(slots)}"
        slots[name] = np.asarray(expr.value, dtype=float)
        return Name(name)
    children = expr.children()
    if not children:
        return expr
    return expr.with_children(tuple(lift_arrays(c, prefix, slots) for c in children))


def _terms(expr: Expr, sign: bool = True) -> list[tuple[bool, Expr]]:
    """Flatten a top-level sum/difference into (positive?, term) pairs."""
    if isinstance(expr, Binary) and expr.op in ("+", "-"):
        return _terms(expr.left, sign) + _terms(expr.right, sign if expr.op == "+" else not sign)
    if isinstance(expr, Unary) and expr.op == "-":
        return _terms(expr.operand, not sign)
    return [(sign, expr)]


def _sum(terms: list[tuple[bool, Expr]]) -> Expr | None:
    out: Expr | None = None
    for positive, term in terms:
        if out is None:
            out = term if positive else Unary("-", term)
        else:
            out = Binary("+" if positive else "-", out, term)
    return out


def regroup_sum(expr: Expr, heavy: set[str]) -> Expr:
    """Rewrite a sum as (terms without `heavy` names) + (terms with them).

    Utilities mix data terms, shaped people x 1 x rows, with latent-variable terms, shaped people x draws x 1.
    Summed left to right, every term after the first latent one is added at the full people x draws x rows
    size; grouped, each group is summed at its own small size and broadcast once.
    """
    terms = _terms(expr)
    light = [t for t in terms if not (t[1].names & heavy)]
    dense = [t for t in terms if t[1].names & heavy]
    if not light or not dense:
        return expr
    return Binary("+", _sum(light), _sum(dense))


def bind(
    text: str,
    where: str,
    symbols: Iterable[str],
    data_columns: Iterable[str],
    data_array: Callable[[str], np.ndarray],
    prefix: str,
    slots: dict[str, np.ndarray],
    heavy: Iterable[str] = (),
) -> Expr:
    """Parse `text`, check its names, fold the data columns it uses (fetched by `data_array`) and lift them.

    `symbols` are the names left symbolic (parameters, latent variables); data columns must not clash.
    """
    expr = parse(text, where)
    symbols = set(symbols)
    columns = [c for c in data_columns if c != "__row__"]
    expr.check_names([*symbols, *columns], where)  # before regrouping, so that messages quote the formula as written
    if heavy:
        expr = regroup_sum(expr, set(heavy))
    env: Mapping[str, np.ndarray] = {n: data_array(n) for n in expr.names if n not in symbols}
    try:
        with np.errstate(all="ignore"):
            folded = expr.partial(env, np)
    except TypeError as exc:
        raise FormulaError(f"{where}: cannot evaluate {text!r} on the data: {exc}") from None
    return lift_arrays(folded, prefix, slots)

"""A small, safe formula language for utilities, derived columns, filters and availabilities.

Formulas are tokenized and parsed here (never handed to Python's `eval`) into immutable trees that
evaluate elementwise with numpy or jax.numpy::

    e = parse("ASC_CAR + BETA_TIME * TimeCar / 200", where="spec.yaml: utility of car")
    e.names                      # frozenset({'ASC_CAR', 'BETA_TIME', 'TimeCar'})
    e.evaluate(env, xp=jnp)      # env maps names to scalars or broadcastable arrays
    e.partial(data).evaluate(params, xp=jnp)   # fold data-only parts first

Comparisons and `and`/`or`/`not` give 0.0/1.0 floats. Every user error is a one-line `FormulaError`.
"""

from gradfit.expr._nodes import Const, Expr
from gradfit.expr._parse import parse

__all__ = ["Const", "Expr", "parse"]

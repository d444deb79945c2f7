"""Load the data named by a spec: read CSV/Parquet, add derived columns, apply the row filter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gradfit.errors import DataError, FormulaError
from gradfit.expr import parse
from gradfit.iclv.spec import DataSpec


def read_table(path: str | Path, fmt: str = "auto", separator: str | None = None) -> pd.DataFrame:
    """Read a CSV (comma, tab or semicolon separated) or Parquet file into a DataFrame."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data file not found; fix data.path in the spec (relative to the spec file)")
    if fmt == "auto":
        fmt = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=separator, engine="python" if separator is None else "c")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read as {fmt}: {first}") from None


def load_data(spec: DataSpec, frame: pd.DataFrame | None = None, source: str = "spec") -> pd.DataFrame:
    """The rows and columns the model uses: the file (or `frame`), derived columns added, filter applied.

    The returned frame keeps a column `__row__` with each row's 1-based position in the file, so that
    messages about bad values can point at the row a user sees in their data.
    """
    df = read_table(spec.path, spec.format, spec.separator) if frame is None else frame.copy()
    label = spec.path if frame is None else "data (DataFrame)"
    df = df.reset_index(drop=True)
    df["__row__"] = np.arange(1, len(df) + 1)
    if spec.person not in df.columns:
        raise DataError(_missing_column(label, spec.person, "data.person", df))
    for name, text in spec.derived.items():
        expr = parse(text, f"{source}: data.derived.{name}")
        df[name] = _evaluate(expr, df, f"{source}: data.derived.{name}")
    if spec.filter is not None:
        expr = parse(spec.filter, f"{source}: data.filter")
        keep = np.broadcast_to(_evaluate(expr, df, f"{source}: data.filter"), (len(df),)) != 0
        df = df.loc[keep].reset_index(drop=True)
    if len(df) == 0:
        raise DataError(f"{label}: no rows left after data.filter; check the filter formula")
    return df


def _evaluate(expr, df: pd.DataFrame, where: str) -> np.ndarray:
    columns = {name: df[name].to_numpy() for name in expr.names if name in df.columns}
    try:
        expr.check_names(df.columns, where)
        with np.errstate(all="ignore"):
            value = expr.evaluate(columns, np)
    except FormulaError:
        raise
    except TypeError as exc:
        raise FormulaError(
            f"{where}: cannot evaluate {expr.text!r}: {exc}; is a text column used in arithmetic?"
        ) from None
    return np.broadcast_to(np.asarray(value, dtype=float), (len(df),)).copy()


def _missing_column(label: str, column: str, key: str, df: pd.DataFrame) -> str:
    import difflib

    close = difflib.get_close_matches(column, [str(c) for c in df.columns], n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"{label}: no column {column!r} (named by {key}){hint}"

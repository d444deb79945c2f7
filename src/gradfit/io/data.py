"""Load the data named by a spec: read CSV/Parquet, add derived columns, apply the row filter."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from gradfit.errors import DataError, FormulaError
from gradfit.expr import parse
from gradfit.iclv.spec import DataSpec

# Extensions of formats that are neither CSV nor Parquet: read as CSV, they would give garbage or a decoding error.
OTHER_FORMATS = {
    ".xlsx": "Excel",
    ".xlsm": "Excel",
    ".xls": "Excel",
    ".ods": "OpenDocument",
    ".json": "JSON",
    ".feather": "Feather",
    ".arrow": "Arrow",
    ".dta": "Stata",
    ".sav": "SPSS",
    ".sas7bdat": "SAS",
    ".rds": "R",
    ".rdata": "R",
    ".h5": "HDF5",
    ".hdf5": "HDF5",
    ".pkl": "pickle",
    ".pickle": "pickle",
}


def read_table(path: str | Path, fmt: str = "auto", separator: str | None = None) -> pd.DataFrame:
    """Read a CSV (comma, tab or semicolon separated) or Parquet file into a DataFrame."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data file not found; fix data.path in the spec (relative to the spec file)")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a data file; point data.path at a CSV or Parquet file")
    if fmt == "auto" and path.suffix.lower() in OTHER_FORMATS:
        raise DataError(
            f"{path}: not a CSV or Parquet file ({OTHER_FORMATS[path.suffix.lower()]}, by its extension); "
            "export the data as CSV or Parquet and point data.path at that file"
        )
    if fmt == "auto":
        fmt = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the data file is empty; expected a CSV file with a header row, or Parquet")
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=separator, engine="python" if separator is None else "c")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: cannot read as csv: byte {exc.object[exc.start]:#04x} at position {exc.start} is not UTF-8 "
            "text; save the file as CSV in UTF-8, or as Parquet"
        ) from None
    except csv.Error as exc:
        raise DataError(f"{path}: cannot read as csv: {exc}; set data.separator in the spec") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the data file is empty; expected a CSV file with a header row, or Parquet") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0].rstrip(". ") if str(exc).strip() else type(exc).__name__
        fix = "check that it is a Parquet file" if fmt == "parquet" else "check that it is a CSV file (data.separator)"
        raise DataError(f"{path}: cannot read as {fmt}: {first}; {fix}") from None


def load_data(spec: DataSpec, frame: pd.DataFrame | None = None, source: str = "spec") -> pd.DataFrame:
    """The rows and columns the model uses: the file (or `frame`), derived columns added, filter applied.

    The returned frame keeps a column `__row__` with each row's 1-based position in the file, so that
    messages about bad values can point at the row a user sees in their data.

    A derived column that is not finite (division by zero, log of 0) where the values it is computed from are
    is an error, at the first such row that the filter keeps; empty input cells just give empty results.
    """
    df = read_table(spec.path, spec.format, spec.separator) if frame is None else frame.copy()
    label = spec.path if frame is None else "data (DataFrame)"
    if len(df) == 0:
        what = "no data rows (only a header)" if frame is None else "no rows"
        raise DataError(f"{label}: {what}; check that this is the right data")
    df = df.reset_index(drop=True)
    with warnings.catch_warnings():  # a wide file arrives in many blocks; see the copy below
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        df["__row__"] = np.arange(1, len(df) + 1)
    if spec.person is not None and spec.person not in df.columns:
        raise DataError(_missing_column(label, spec.person, "data.person", df))
    broken: dict[str, np.ndarray] = {}  # derived column -> rows where it became non-finite
    with warnings.catch_warnings():
        # Derived columns may use earlier ones, so they are added one by one; pandas warns about the
        # fragmented frame that results, and one copy after the loop defragments it.
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        for name, text in spec.derived.items():
            expr = parse(text, f"{source}: data.derived.{name}")
            value = _evaluate(expr, df, f"{source}: data.derived.{name}")
            broken[name] = ~np.isfinite(value) & _inputs_present(expr, df)
            df[name] = value
    df = df.copy()  # one consolidated frame for what follows
    if spec.filter is not None:
        expr = parse(spec.filter, f"{source}: data.filter")
        keep = np.broadcast_to(_evaluate(expr, df, f"{source}: data.filter"), (len(df),)) != 0
        df = df.loc[keep].reset_index(drop=True)
        broken = {name: rows[keep] for name, rows in broken.items()}
        if len(df) == 0:
            raise DataError(f"{label}: no rows left after data.filter {spec.filter!r}; check the filter formula")
    for name, rows in broken.items():
        if rows.any():
            i = np.flatnonzero(rows)[0]
            raise DataError(
                f"{source}: data.derived.{name}: {spec.derived[name]!r} is {df[name].iloc[i]} (not finite) at row "
                f"{int(df['__row__'].iloc[i])} of {label}; avoid dividing by zero or taking log/sqrt out of range "
                "there, or drop such rows with data.filter"
            )
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


def _inputs_present(expr, df: pd.DataFrame) -> np.ndarray:
    """Rows where every column the formula uses holds a value (a finite number, or any text)."""
    present = np.ones(len(df), dtype=bool)
    for name in expr.names & set(df.columns):
        values = df[name].to_numpy()
        if values.dtype.kind in "biuf":
            present &= np.isfinite(values.astype(float))
        else:
            present &= ~pd.isna(values)
    return present


def _missing_column(label: str, column: str, key: str, df: pd.DataFrame) -> str:
    import difflib

    close = difflib.get_close_matches(column, [str(c) for c in df.columns], n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"{label}: no column {column!r} (named by {key}){hint}"

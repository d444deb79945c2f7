"""Data for a prediction: the estimation data or a new file, with attributes changed by formulas (a scenario).

A scenario only needs what the prediction uses: the attributes in the utilities and structural equations.
The choice column and the indicators may be absent from new data; they are filled with placeholders that the
(unconditional) predictions never read, and observed shares are then unknown.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gradfit.errors import DataError, FormulaError
from gradfit.expr import parse
from gradfit.iclv.spec import ModelSpec
from gradfit.io import load_data
from gradfit.io.data import read_table


@dataclass(frozen=True)
class Scenario:
    frame: pd.DataFrame | None  # None: the model's own data, unchanged
    label: str  # where the data came from, for outputs
    changes: tuple[str, ...]
    choices_observed: bool  # False where the choice column was filled in


def parse_change(text: str) -> tuple[str, str]:
    """'COLUMN=FORMULA' -> (column, formula)."""
    column, sep, formula = text.partition("=")
    if not sep or not column.strip() or not formula.strip():
        raise FormulaError(f"--set {text!r}: expected COLUMN=FORMULA, e.g. --set 'CostCar=CostCar*1.2'")
    return column.strip(), formula.strip()


def make_scenario(spec: ModelSpec, data: str | Path | None = None, changes: tuple[str, ...] = ()) -> Scenario:
    """The data to predict for: `data` (a CSV/Parquet file; default the spec's data) with each change
    'COLUMN=FORMULA' applied in order to the file's columns, before the spec's derived columns and filter."""
    if data is None and not changes:
        return Scenario(None, spec.data.path, (), True)
    path = Path(data) if data is not None else Path(spec.data.path)
    if data is not None and not path.is_file():
        raise DataError(f"--data {data}: no such file; give a CSV or Parquet file with the spec's columns")
    separator = spec.data.separator if data is None else None
    frame = read_table(path, "auto" if data is not None else spec.data.format, separator)
    for text in changes:
        column, formula = parse_change(text)
        if column not in frame.columns:
            close = difflib.get_close_matches(column, [str(c) for c in frame.columns], n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise DataError(f"--set {text!r}: {path} has no column {column!r}{hint}")
        expr = parse(formula, f"--set {text!r}")
        expr.check_names(frame.columns, f"--set {text!r}")
        with np.errstate(all="ignore"):
            value = expr.evaluate({n: frame[n].to_numpy() for n in expr.names}, np)
        frame[column] = np.broadcast_to(np.asarray(value, dtype=float), (len(frame),))
    observed = True
    if spec.choice is not None and spec.choice.column not in frame.columns:
        frame[spec.choice.column] = _placeholder_choices(spec, frame)
        observed = False
    for name, ind in spec.indicators.items():
        if (ind.column or name) not in frame.columns:
            frame[ind.column or name] = np.nan  # unanswered: the unconditional predictions never read it
    return Scenario(frame, str(path), tuple(changes), observed)


def _placeholder_choices(spec: ModelSpec, frame: pd.DataFrame) -> np.ndarray:
    """A code of an available alternative on every row (the model refuses a chosen alternative that is not
    available), from the availability formulas on the data with its derived columns."""
    unfiltered = load_data(spec.data.model_copy(update={"filter": None}), frame, source=spec.name)
    codes = np.full(len(frame), np.nan)
    for alt in reversed(list(spec.choice.alternatives.values())):  # the first available one wins
        expr = parse(alt.available, f"{spec.name}: choice availability")
        with np.errstate(all="ignore"):
            avail = expr.evaluate({n: unfiltered[n].to_numpy() for n in expr.names if n in unfiltered}, np)
        codes = np.where(np.broadcast_to(np.asarray(avail, dtype=float), (len(frame),)) != 0, alt.code, codes)
    return np.where(np.isnan(codes), spec.choice.alternatives[next(iter(spec.choice.alternatives))].code, codes)

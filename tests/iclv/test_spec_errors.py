"""Bad input -> the right exception class, with a one-line message that names the key, column or row at fault.

Every case starts from the valid rich model of conftest and breaks one thing. Errors are raised while the
model is built, before anything is compiled, so these tests are fast. Row numbers in messages are 1-based
positions of the rows in the data as given (DataFrame order; for a file, data rows after the header).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import yaml

import gradfit
from conftest import rich_spec
from gradfit.errors import DataError, FormulaError, GradfitError, SpecError
from gradfit.io import spec_from_dict


def kept_rows(df: pd.DataFrame) -> pd.Index:
    """Rows that survive the rich spec's filter (task <= 4 and keep == 1)."""
    return df.index[(df["task"] <= 4) & (df["keep"] == 1)]


def check(exc: BaseException, cls: type, *fragments: str) -> str:
    message = str(exc)
    assert type(exc) is cls, f"{type(exc).__name__} instead of {cls.__name__}: {message}"
    assert isinstance(exc, GradfitError)
    assert "\n" not in message and message.strip() == message, f"not one line: {message!r}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def build(spec: dict, data: pd.DataFrame | None) -> gradfit.Model:
    return gradfit.Model(spec, data=data)


# ------------------------------------------------------------------------------------------------------
# Spec errors (one function per case: mutate a fresh spec dict)


def unknown_top_level_key(spec):
    spec["integraton"] = {"type": "sobol"}


def unknown_loading_parameter(spec):
    spec["indicators"]["q1"]["loadings"]["LV1"] = "lamm1"


def unknown_utility_name(spec):
    spec["choice"]["alternatives"]["bus"]["utility"] += " + b_tme * time_bus"


def cyclic_latent_structure(spec):
    spec["latent_variables"]["LV1"]["mean"] = "g1_age * age + 0.2 * LV2"


def ordered_without_thresholds(spec):
    del spec["indicators"]["q2"]["thresholds"]


def gauss_hermite_four_latent(spec):
    spec["latent_variables"]["LV3"] = {"mean": "0"}
    spec["latent_variables"]["LV4"] = {"mean": "0"}
    spec["integration"] = {"type": "gauss_hermite", "n": 5}


def start_below_lower_bound(spec):
    spec["parameters"]["s2"] = {"start": 0.001, "lower": 0.01}


def start_above_upper_bound(spec):
    spec["parameters"]["rho12"] = {"start": 2.0, "upper": 1.0}


def unknown_latent_in_loading(spec):
    spec["indicators"]["q3"]["loadings"] = {"LV_2": "lam3"}


def missing_data_column(spec):
    spec["indicators"]["q5"]["column"] = "q5raw"


def levels_not_increasing(spec):
    spec["indicators"]["q1"]["levels"] = [6, 5, 4, 3, 2, 1]


def unused_free_parameter(spec):
    spec["parameters"]["b_unused"] = 0.5


SPEC_CASES: list[tuple[Callable, type, tuple[str, ...]]] = [
    (levels_not_increasing, SpecError, ("indicators.q1.levels", "increasing")),
    (unused_free_parameter, SpecError, ("parameters.b_unused", "not used")),
    (unknown_top_level_key, SpecError, ("integraton", "unknown key")),
    (unknown_loading_parameter, SpecError, ("indicators.q1.loadings", "'lamm1'", "did you mean", "'lam1'")),
    (unknown_utility_name, FormulaError, ("choice.alternatives.bus.utility", "'b_tme'", "did you mean 'b_time'")),
    (cyclic_latent_structure, SpecError, ("latent_variables", "cycle", "LV1", "LV2")),
    (ordered_without_thresholds, SpecError, ("indicators.q2.thresholds",)),
    (gauss_hermite_four_latent, SpecError, ("gauss_hermite", "4")),
    (start_below_lower_bound, SpecError, ("parameters.s2", "start", "lower bound")),
    (start_above_upper_bound, SpecError, ("parameters.rho12", "upper bound")),
    (unknown_latent_in_loading, SpecError, ("indicators.q3.loadings", "'LV_2'", "did you mean")),
    (missing_data_column, DataError, ("'q5raw'", "indicators.q5", "did you mean 'q5_raw'")),
]


@pytest.mark.parametrize(("mutate", "cls", "fragments"), SPEC_CASES, ids=[c[0].__name__ for c in SPEC_CASES])
def test_spec_error(rich_frame, mutate, cls, fragments):
    spec = copy.deepcopy(rich_spec())
    mutate(spec)
    with pytest.raises(GradfitError) as info:
        build(spec, rich_frame)
    check(info.value, cls, *fragments)


# ------------------------------------------------------------------------------------------------------
# Data errors (mutate a copy of the data; the message must name the column and the row or person)


def test_data_file_missing(tmp_path):
    spec = rich_spec()
    spec["data"]["path"] = str(tmp_path / "no_such_folder" / "survey.csv")
    with pytest.raises(GradfitError) as info:
        build(spec, None)
    check(info.value, DataError, "survey.csv", "not found")


def test_person_level_indicator_varying_within_a_person(rich_frame):
    df = rich_frame.copy()
    rows = kept_rows(df)[df.loc[kept_rows(df), "pid"] == "P07"]
    assert len(rows) >= 2
    df.loc[rows[0], "q1"] = 2.0
    df.loc[rows[1], "q1"] = 5.0
    with pytest.raises(GradfitError) as info:
        build(rich_spec(), df)
    check(info.value, DataError, "'q1'", "person-level", "'P07'")


def test_indicator_value_outside_its_levels(rich_frame):
    df = rich_frame.copy()
    i = kept_rows(df)[3]
    df.loc[i, "q2"] = 7.0
    with pytest.raises(GradfitError) as info:
        build(rich_spec(), df)
    check(info.value, DataError, "q2", "7", f"row {i + 1}", "levels")


def test_chosen_alternative_unavailable(rich_frame):
    df = rich_frame.copy()
    rows = kept_rows(df)
    i = rows[df.loc[rows, "rail_av"].to_numpy() == 0][2]
    df.loc[i, "choice"] = 3
    with pytest.raises(GradfitError) as info:
        build(rich_spec(), df)
    check(info.value, DataError, f"row {i + 1}", "'rail'", "not available")


def test_choice_code_of_no_alternative(rich_frame):
    df = rich_frame.copy()
    i = kept_rows(df)[5]
    df.loc[i, "choice"] = 4
    with pytest.raises(GradfitError) as info:
        build(rich_spec(), df)
    check(info.value, DataError, "'choice'", "value 4", f"row {i + 1}")


def test_rows_removed_by_the_filter_are_not_checked(rich_frame):
    """A bad value in a filtered-out row is no error (the filter is applied first)."""
    df = rich_frame.copy()
    dropped = df.index[df["task"] == 5][0]
    df.loc[dropped, "choice"] = 4
    df.loc[dropped, "q2"] = 7.0
    assert build(rich_spec(), df).n_observations == len(kept_rows(df))


def test_empty_cell_in_a_utility_column(rich_frame):
    df = rich_frame.copy()
    i = kept_rows(df)[7]
    df.loc[i, "cost_bus"] = np.nan
    with pytest.raises(GradfitError) as info:
        build(rich_spec(), df)
    check(info.value, DataError, "'cost_bus'", "empty", f"row {i + 1}")


def test_non_numeric_value_in_a_utility_column(rich_frame):
    df = rich_frame.copy()
    i = kept_rows(df)[7]
    df["cost_bus"] = df["cost_bus"].astype(object)
    df.loc[i, "cost_bus"] = "n/a"
    with pytest.raises(GradfitError) as info:
        build(rich_spec(), df)
    check(info.value, DataError, "'cost_bus'", "n/a", f"row {i + 1}")


def test_filter_that_removes_every_row(rich_frame):
    spec = rich_spec()
    spec["data"]["filter"] = "task > 100"
    with pytest.raises(GradfitError) as info:
        build(spec, rich_frame)
    check(info.value, DataError, "data.filter")


# ------------------------------------------------------------------------------------------------------
# YAML files


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ndata:\n  path: data.csv\n  person: id\nparameters: {a: 1, b: [2}\n")
    with pytest.raises(GradfitError) as info:
        gradfit.read_spec(path)
    check(info.value, SpecError, "broken.yaml", "line 5", "YAML")


def test_yaml_with_unknown_nested_key(tmp_path):
    spec = rich_spec()
    spec["indicators"]["q3"]["scael"] = "sig3"
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(GradfitError) as info:
        gradfit.read_spec(path)
    check(info.value, SpecError, "typo.yaml", "indicators.q3.scael", "unknown key")


def test_spec_file_missing(tmp_path):
    with pytest.raises(GradfitError) as info:
        gradfit.Model(tmp_path / "nope.yaml")
    check(info.value, SpecError, "nope.yaml", "not found")


def test_wrong_parameter_names_at_evaluation(rich_model):
    params = dict(rich_model.start_params)
    with pytest.raises(GradfitError) as info:
        rich_model.loglikelihood({**params, "lam9": 1.0})
    assert "lam9" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(GradfitError) as info:
        rich_model.loglikelihood({**params, "s_LV1": 1.0})  # fixed in the spec
    assert "s_LV1" in str(info.value) and "fixed" in str(info.value)
    del params["lam1"]
    with pytest.raises(GradfitError) as info:
        rich_model.loglikelihood(params)
    assert "lam1" in str(info.value) and "missing" in str(info.value)


def test_a_number_is_a_constant_formula(rich_frame):
    """YAML `utility: 0` (a number, not text) means the constant formula 0, exactly as the quoted "0"."""
    as_number, as_text = rich_spec(), rich_spec()
    as_number["choice"]["alternatives"]["car"]["utility"] = 0
    as_text["choice"]["alternatives"]["car"]["utility"] = "0"
    ll_text = build(as_text, rich_frame).loglikelihood()
    assert np.isfinite(ll_text)
    assert build(as_number, rich_frame).loglikelihood() == ll_text


def test_quadrature_rule_needs_gauss_hermite():
    spec = rich_spec({"type": "sobol", "n": 20, "rule": "biogeme"})
    with pytest.raises(GradfitError) as info:
        spec_from_dict(spec)
    check(info.value, SpecError, "integration", "rule", "gauss_hermite")

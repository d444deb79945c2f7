"""`gradfit fit` on malformed input: exit code 2, one line `error: ...` naming what is wrong, no run folder.

Every case starts from the valid rich model of conftest, written to a temporary folder as `model.yaml` and
`data.csv`, breaks one thing, and runs `gradfit fit model.yaml --runs-dir runs` in-process. The fragments a
case expects name the file, key, column or row at fault and the fix, so that an unrelated error (a usage error,
another check firing first) cannot pass. Row numbers are 1-based data rows of the file (header not counted).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import gradfit
from conftest import rich_spec
from gradfit.cli.main import main

SPEC = "model.yaml"
DATA = "data.csv"

Fragments = tuple[str, ...]


@dataclass
class Inputs:
    """A spec and its data, written to `folder` by `write`; a case edits them first."""

    folder: Path
    spec: dict
    data: pd.DataFrame
    yaml_text: str | None = None  # the spec file's text, instead of a dump of `spec`
    data_bytes: bytes | None = None  # the data file's contents, instead of `data` as CSV
    spec_file: str = SPEC  # the spec path given to `gradfit fit`, relative to `folder`

    def dump(self) -> str:
        return yaml.safe_dump(self.spec, sort_keys=False, width=1000)

    def kept(self) -> pd.Index:
        """Rows that survive the rich spec's filter (task <= 4 and keep == 1)."""
        return self.data.index[(self.data["task"] <= 4) & (self.data["keep"] == 1)]

    def write(self) -> Path:
        spec_path = self.folder / SPEC
        spec_path.write_text(self.dump() if self.yaml_text is None else self.yaml_text, encoding="utf-8")
        if self.data_bytes is not None:  # at the path the (edited) spec names
            (self.folder / self.spec["data"]["path"]).write_bytes(self.data_bytes)
        else:
            self.data.to_csv(self.folder / DATA, index=False)
        return self.folder / self.spec_file


def fresh_inputs(folder: Path, frame: pd.DataFrame) -> Inputs:
    spec = copy.deepcopy(rich_spec())
    spec["data"]["path"] = DATA
    return Inputs(folder, spec, frame.copy())


def fit_cli(spec_path: Path, runs_dir: Path) -> int:
    return main(["fit", str(spec_path), "--runs-dir", str(runs_dir)])


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line of `text` containing `needle`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# ------------------------------------------------------------------------------------------------------
# The spec file: YAML, keys, types


def yaml_unclosed_bracket(t: Inputs) -> Fragments:
    text = t.dump().replace("person: pid", "person: [pid")
    t.yaml_text = text
    return (SPEC, "YAML syntax error", f"line {line_of(text, 'person: [pid') + 1}")


def yaml_tab_indentation(t: Inputs) -> Fragments:
    text = t.dump().replace("\n  person: pid", "\n\tperson: pid")
    t.yaml_text = text
    return (SPEC, "YAML syntax error", f"line {line_of(text, chr(9) + 'person')}", "spaces, not tabs")


def yaml_unterminated_quote(t: Inputs) -> Fragments:
    text = t.dump().replace("name: rich_test_model", 'name: "rich_test_model')
    t.yaml_text = text
    return (SPEC, "YAML syntax error", "while parsing a block mapping at line 1", "quotes")


def yaml_not_a_mapping(t: Inputs) -> Fragments:
    t.yaml_text = "- name: rich_test_model\n- data: data.csv\n"
    return (SPEC, "a spec must be a YAML mapping")


def yaml_empty_file(t: Inputs) -> Fragments:
    t.yaml_text = ""
    return (SPEC, "a spec must be a YAML mapping")


def spec_file_missing(t: Inputs) -> Fragments:
    t.spec_file = f"elsewhere/{SPEC}"
    return (f"elsewhere/{SPEC}: spec file not found", "check the path")


def duplicate_parameter(t: Inputs) -> Fragments:
    text = t.dump().replace("  lam2b: 0.3\n", "  lam2b: 0.3\n  lam1: 0.9\n")
    t.yaml_text = text
    return (SPEC, f"line {line_of(text, 'lam1: 0.9')}", "duplicate key 'lam1' in parameters", "remove or rename one")


def duplicate_nested_key(t: Inputs) -> Fragments:
    text = t.dump().replace("    person_level: true\n", "    person_level: true\n    missing: [5]\n", 1)
    t.yaml_text = text
    return (SPEC, f"line {line_of(text, 'missing: [5]')}", "duplicate key 'missing' in indicators.q1", "remove")


def unknown_top_level_key(t: Inputs) -> Fragments:
    t.spec["integraton"] = {"type": "sobol"}
    return (SPEC, "integraton: unknown key", "did you mean 'integration'")


def unknown_nested_key(t: Inputs) -> Fragments:
    t.spec["indicators"]["q3"]["scael"] = "sig3"
    return (SPEC, "indicators.q3.scael: unknown key", "did you mean 'scale'")


def missing_required_key(t: Inputs) -> Fragments:
    del t.spec["data"]["person"]
    return (SPEC, "data.person: required key missing; add it")


def wrong_type_integer(t: Inputs) -> Fragments:
    t.spec["integration"]["n"] = "many"
    return (SPEC, "integration.n: Input should be a valid integer, not 'many'")


def wrong_type_parameter(t: Inputs) -> Fragments:
    t.spec["parameters"]["b_time"] = "fast"
    return (SPEC, "parameters.b_time: expected a number or a mapping, not 'fast'", "start value")


def wrong_type_boolean(t: Inputs) -> Fragments:
    t.spec["indicators"]["q1"]["person_level"] = "sometimes"
    return (SPEC, "indicators.q1.person_level: Input should be a valid boolean, not 'sometimes'")


def wrong_type_section(t: Inputs) -> Fragments:
    t.spec["latent_variables"] = ["LV1", "LV2"]
    return (SPEC, "latent_variables: expected a mapping, not ['LV1', 'LV2']")


def wrong_type_formula(t: Inputs) -> Fragments:
    t.spec["choice"]["alternatives"]["car"]["utility"] = ["b_time", "time_car"]
    return (SPEC, "choice.alternatives.car.utility: expected a number or text, not ['b_time', 'time_car']")


def bad_model_name(t: Inputs) -> Fragments:
    t.spec["name"] = "rich model"
    return (SPEC, "name: use letters, digits, '_', '.' and '-' only, not 'rich model'")


# ------------------------------------------------------------------------------------------------------
# Parameters, formulas, structure


def start_outside_bounds(t: Inputs) -> Fragments:
    t.spec["parameters"]["s2"] = {"start": 0.001, "lower": 0.01}
    return (SPEC, "parameters.s2", "start 0.001 is below the lower bound 0.01")


def bounds_crossed(t: Inputs) -> Fragments:
    t.spec["parameters"]["rho12"] = {"start": 0.0, "lower": 1.0, "upper": -1.0}
    return (SPEC, "parameters.rho12", "lower bound 1.0 is above upper bound -1.0")


def unused_parameter(t: Inputs) -> Fragments:
    t.spec["parameters"]["b_unused"] = 0.5
    return ("parameters.b_unused", "not used anywhere", "fixed: true")


def unknown_name_in_utility(t: Inputs) -> Fragments:
    t.spec["choice"]["alternatives"]["bus"]["utility"] += " + b_tme * time_bus"
    text = t.spec["choice"]["alternatives"]["bus"]["utility"]
    return ("choice.alternatives.bus.utility", f"unknown name 'b_tme' in formula {text!r}", "did you mean 'b_time'")


def unknown_name_in_derived(t: Inputs) -> Fragments:
    t.spec["data"]["derived"]["inc"] = "incme / 10000 - 5"
    return ("data.derived.inc", "unknown name 'incme'", "'income'")


def formula_syntax_error(t: Inputs) -> Fragments:
    t.spec["choice"]["alternatives"]["car"]["utility"] = "b_time * * time_car"
    return (SPEC, "choice.alternatives.car.utility", "cannot parse formula", "position")


def filter_syntax_error(t: Inputs) -> Fragments:
    t.spec["data"]["filter"] = "task <= 4 and"
    return ("data.filter", "cannot parse formula", "'task <= 4 and'")


def unknown_function(t: Inputs) -> Fragments:
    t.spec["data"]["derived"]["inc"] = "lg(income)"
    return ("data.derived.inc", "'lg'", "exp")


def unknown_latent_variable(t: Inputs) -> Fragments:
    t.spec["indicators"]["q3"]["loadings"] = {"LV_2": "lam3"}
    return (SPEC, "indicators.q3.loadings", "unknown latent variable 'LV_2'", "did you mean 'LV2'")


def latent_cycle(t: Inputs) -> Fragments:
    t.spec["latent_variables"]["LV1"]["mean"] = "g1_age * age + 0.2 * LV2"
    return (SPEC, "latent_variables", "cycle", "LV1 -> LV2 -> LV1")


def unidentified_latent_scale(t: Inputs) -> Fragments:
    t.spec["parameters"]["s_LV1"] = {"start": 1.0, "lower": 0.01}  # free, and every loading on LV1 is free
    return (SPEC, "latent_variables.LV1: the scale of LV1 is not identified", "'s_LV1' is free", "or one loading")


def thresholds_count_mismatch(t: Inputs) -> Fragments:
    t.spec["indicators"]["q2"]["levels"] = [1, 2, 3, 4, 5]
    return (SPEC, "indicators.q2.levels", "5 levels need 4 thresholds", "'inc4' define 3")


def unknown_thresholds(t: Inputs) -> Fragments:
    t.spec["indicators"]["q2"]["thresholds"] = "inc"
    return (SPEC, "indicators.q2.thresholds", "unknown thresholds 'inc'", "did you mean 'inc4'")


def bad_integration_type(t: Inputs) -> Fragments:
    t.spec["integration"]["type"] = "sobel"
    return (SPEC, "integration.type", "'sobol'", "'gauss_hermite', not 'sobel'")


def zero_draws(t: Inputs) -> Fragments:
    t.spec["integration"]["n"] = 0
    return (SPEC, "integration.n: Input should be greater than or equal to 1, not 0")


def negative_draws(t: Inputs) -> Fragments:
    t.spec["integration"]["n"] = -100
    return (SPEC, "integration.n: Input should be greater than or equal to 1, not -100")


def odd_antithetic_draws(t: Inputs) -> Fragments:
    t.spec["integration"]["n"] = 21
    return (SPEC, "integration.n", "antithetic", "even")


def gauss_hermite_too_many_latent(t: Inputs) -> Fragments:
    t.spec["latent_variables"]["LV3"] = {"mean": "0"}
    t.spec["latent_variables"]["LV4"] = {"mean": "0"}
    t.spec["integration"] = {"type": "gauss_hermite", "n": 5}
    return (SPEC, "integration.type", "at most 3 latent variables", "has 4", "sobol")


def bad_optimizer(t: Inputs) -> Fragments:
    t.spec["estimation"] = {"optimizer": "newtn"}
    return (SPEC, "estimation.optimizer", "'box_trust_bfgs', not 'newtn'")


def column_clashes_with_parameter(t: Inputs) -> Fragments:
    t.data["lam1"] = 1.0
    return ("'lam1' is both a data column and a parameter", "rename one")


# ------------------------------------------------------------------------------------------------------
# The data file


def data_file_missing(t: Inputs) -> Fragments:
    t.spec["data"]["path"] = "survey.csv"
    return ("survey.csv", "data file not found", "data.path")


def data_file_empty(t: Inputs) -> Fragments:
    t.data_bytes = b""
    return (DATA, "the data file is empty", "header row")


def data_file_header_only(t: Inputs) -> Fragments:
    t.data_bytes = (",".join(t.data.columns) + "\n").encode()
    return (DATA, "no data rows (only a header)")


def data_file_not_csv(t: Inputs) -> Fragments:
    t.spec["data"]["path"] = "data.xlsx"
    t.data_bytes = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xb5U0#\xf4\x00\x00\x00L\x02\x00\x00"
    return ("data.xlsx: not a CSV or Parquet file", "Excel", "export the data as CSV or Parquet")


def data_file_binary_as_csv(t: Inputs) -> Fragments:
    t.data_bytes = bytes(range(128, 256)) * 8
    return (DATA, "cannot read as csv", "byte 0x80 at position 0 is not UTF-8", "save the file as CSV in UTF-8")


def data_file_bad_parquet(t: Inputs) -> Fragments:
    t.spec["data"]["path"] = "data.parquet"
    t.data_bytes = t.data.to_csv(index=False).encode()
    return ("data.parquet: cannot read as parquet", "check that it is a Parquet file")


def data_path_is_a_folder(t: Inputs) -> Fragments:
    t.spec["data"]["path"] = "tables"
    (t.folder / "tables").mkdir()
    return ("tables: is a folder, not a data file", "data.path")


def missing_column(t: Inputs) -> Fragments:
    t.spec["choice"]["column"] = "choise"
    return (DATA, "no column 'choise'", "choice.column", "did you mean 'choice'")


def missing_person_column(t: Inputs) -> Fragments:
    t.data = t.data.rename(columns={"pid": "person_id"})
    return (DATA, "no column 'pid'", "data.person")


def non_numeric_value(t: Inputs) -> Fragments:
    i = t.kept()[7]
    t.data["cost_bus"] = t.data["cost_bus"].astype(object)
    t.data.loc[i, "cost_bus"] = "2,5"  # a decimal comma is text
    return (DATA, "'cost_bus'", "not a finite number ('2,5')", f"row {i + 1}", "fill it")


def non_numeric_indicator(t: Inputs) -> Fragments:
    i = t.kept()[4]
    t.data["q4"] = t.data["q4"].astype(object)
    t.data.loc[i, "q4"] = "yes"
    return (DATA, "'q4'", "'yes'", f"row {i + 1}", "leave the cell empty")


def empty_cell_in_utility_column(t: Inputs) -> Fragments:
    i = t.kept()[7]
    t.data.loc[i, "cost_bus"] = np.nan
    return (DATA, "'cost_bus'", "empty", f"row {i + 1}")


def empty_cell_in_structural_column(t: Inputs) -> Fragments:
    i = t.kept()[2]
    t.data.loc[i, "age"] = np.nan
    return (DATA, "'age'", "empty", f"row {i + 1}")


def empty_person_cell(t: Inputs) -> Fragments:
    i = t.kept()[3]
    t.data.loc[i, "pid"] = np.nan
    return (DATA, "'pid'", "empty", f"row {i + 1}")


def chosen_alternative_unavailable(t: Inputs) -> Fragments:
    rows = t.kept()
    i = rows[t.data.loc[rows, "rail_av"].to_numpy() == 0][2]
    t.data.loc[i, "choice"] = 3
    return (DATA, f"row {i + 1}", "'rail' is not available")


def choice_code_of_no_alternative(t: Inputs) -> Fragments:
    i = t.kept()[5]
    t.data.loc[i, "choice"] = 4
    return (DATA, "'choice'", "value 4", f"row {i + 1}", "add the alternative")


def indicator_outside_levels(t: Inputs) -> Fragments:
    i = t.kept()[3]
    t.data.loc[i, "q2"] = 7.0
    return (DATA, "'q2'", "7", f"row {i + 1}", "levels")


def person_level_indicator_varies(t: Inputs) -> Fragments:
    rows = t.kept()[t.data.loc[t.kept(), "pid"] == "P07"]
    t.data.loc[rows[0], "q1"] = 2.0
    t.data.loc[rows[1], "q1"] = 5.0
    return (DATA, "'q1'", "person-level", "'P07'", "person_level: false on indicator q1")


def person_level_covariate_varies(t: Inputs) -> Fragments:
    rows = t.kept()[t.data.loc[t.kept(), "pid"] == "P11"]
    t.data.loc[rows[0], "age"] = 0.5
    t.data.loc[rows[1], "age"] = -0.5
    return (DATA, "'age'", "person-level", "'P11'", "structural means use person-level columns only")


def division_by_zero_in_derived(t: Inputs) -> Fragments:
    t.spec["data"]["derived"]["inc"] = "income / (task - 2) - 5"
    i = int(np.flatnonzero((t.data["task"].to_numpy() == 2) & (t.data.index.isin(t.kept())))[0])
    return ("data.derived.inc: 'income / (task - 2) - 5' is inf (not finite)", f"row {i + 1} of", DATA, "data.filter")


def log_of_zero_in_derived(t: Inputs) -> Fragments:
    t.spec["data"]["derived"]["time_bus"] = "log(time_bus_min - time_bus_min)"
    i = int(t.kept()[0])
    return ("data.derived.time_bus: 'log(time_bus_min - time_bus_min)' is -inf", f"row {i + 1} of", DATA)


def text_column_in_arithmetic(t: Inputs) -> Fragments:
    t.spec["data"]["derived"]["inc"] = "income / brand"
    return ("data.derived.inc", "text column")


def filter_removes_every_row(t: Inputs) -> Fragments:
    t.spec["data"]["filter"] = "task > 100"
    return (DATA, "no rows left after data.filter 'task > 100'", "check the filter")


CASES: list[Callable[[Inputs], Fragments]] = [
    yaml_unclosed_bracket,
    yaml_tab_indentation,
    yaml_unterminated_quote,
    yaml_not_a_mapping,
    yaml_empty_file,
    spec_file_missing,
    duplicate_parameter,
    duplicate_nested_key,
    unknown_top_level_key,
    unknown_nested_key,
    missing_required_key,
    wrong_type_integer,
    wrong_type_parameter,
    wrong_type_boolean,
    wrong_type_section,
    wrong_type_formula,
    bad_model_name,
    start_outside_bounds,
    bounds_crossed,
    unused_parameter,
    unknown_name_in_utility,
    unknown_name_in_derived,
    formula_syntax_error,
    filter_syntax_error,
    unknown_function,
    unknown_latent_variable,
    latent_cycle,
    unidentified_latent_scale,
    thresholds_count_mismatch,
    unknown_thresholds,
    bad_integration_type,
    zero_draws,
    negative_draws,
    odd_antithetic_draws,
    gauss_hermite_too_many_latent,
    bad_optimizer,
    column_clashes_with_parameter,
    data_file_missing,
    data_file_empty,
    data_file_header_only,
    data_file_not_csv,
    data_file_binary_as_csv,
    data_file_bad_parquet,
    data_path_is_a_folder,
    missing_column,
    missing_person_column,
    non_numeric_value,
    non_numeric_indicator,
    empty_cell_in_utility_column,
    empty_cell_in_structural_column,
    empty_person_cell,
    chosen_alternative_unavailable,
    choice_code_of_no_alternative,
    indicator_outside_levels,
    person_level_indicator_varies,
    person_level_covariate_varies,
    division_by_zero_in_derived,
    log_of_zero_in_derived,
    text_column_in_arithmetic,
    filter_removes_every_row,
]


def test_the_unbroken_inputs_are_valid(tmp_path, rich_frame):
    """Guard: the starting point builds, so each case fails because of what it breaks."""
    spec_path = fresh_inputs(tmp_path, rich_frame).write()
    model = gradfit.Model(spec_path)
    assert model.n_individuals > 20


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_one_line_exit_2_and_no_run_folder(case, tmp_path, rich_frame, capsys):
    inputs = fresh_inputs(tmp_path, rich_frame)
    fragments = case(inputs)
    spec_path = inputs.write()
    runs_dir = tmp_path / "runs"

    rc = fit_cli(spec_path, runs_dir)
    out, err = capsys.readouterr()

    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected one line on stderr, got {err!r}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert rc == 2, f"exit code {rc}: {line}"
    missing = [f for f in fragments if f not in line]
    assert not missing, f"{missing} not in {line!r}"
    assert not runs_dir.exists() or not any(runs_dir.iterdir()), f"left behind: {list(runs_dir.rglob('*'))}"

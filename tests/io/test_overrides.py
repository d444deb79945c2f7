"""`--set KEY=VALUE` overrides: flags > spec file > built-in defaults."""

from __future__ import annotations

import pytest
import yaml

import gradfit
from conftest import mnl_data, mnl_spec
from gradfit.errors import SpecError
from gradfit.iclv.spec import EstimationSpec
from gradfit.io.overrides import apply_overrides, parse_assignment


@pytest.fixture
def spec(tmp_path):
    mnl_data().to_csv(tmp_path / "mnl.csv", index=False)
    raw = mnl_spec("mnl.csv")
    raw["estimation"] = {"tolerance": 1e-7}  # set in the file; max_iterations left to the default
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return gradfit.read_spec(path)


def test_precedence_flag_over_file_over_default(spec):
    default_iterations = EstimationSpec().max_iterations
    assert spec.estimation.tolerance == 1e-7 and spec.estimation.max_iterations == default_iterations
    out = apply_overrides(spec, ["estimation.tolerance=1e-9", "estimation.optimizer=newton"])
    assert out.estimation.tolerance == 1e-9  # the flag beats the file
    assert out.estimation.optimizer == "newton"  # and the default
    assert out.estimation.max_iterations == default_iterations  # untouched defaults stay
    assert spec.estimation.tolerance == 1e-7  # the input is not modified
    assert apply_overrides(spec, ["integration.n=3", "integration.n=5"]).integration.n == 5  # later wins


def test_parameter_values_and_typed_scalars(spec):
    out = apply_overrides(spec, ["parameters.beta_x.start=0.25", "parameters.asc.fixed=true"])
    assert out.parameters["beta_x"].start == 0.25
    assert out.parameters["asc"].fixed is True


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("integration.nn=3", ["unknown key 'nn' under integration", "did you mean n"]),
        ("estimaton.optimizer=newton", ["unknown key 'estimaton'", "estimation"]),
        ("parameters.beta_y.start=1", ["unknown key 'beta_y' under parameters", "beta_x"]),
        ("integration.n.x=1", ["integration.n is a value"]),
        ("integration.n", ["expected KEY=VALUE"]),
        ("integration.n=", ["no value"]),
        ("=3", ["expected KEY=VALUE"]),
        ("integration.n=[1, 2", ["not valid YAML"]),
        ("integration.n=many", ["integration.n", "integer"]),
        ("estimation.optimizer=adam", ["estimation.optimizer", "bfgs"]),
    ],
)
def test_bad_overrides_name_the_key(spec, text, fragments):
    with pytest.raises(SpecError) as err:
        apply_overrides(spec, [text])
    msg = str(err.value)
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg


def test_parse_assignment_reads_yaml_values():
    assert parse_assignment("a.b=2000") == (["a", "b"], 2000)
    assert parse_assignment("a=newton") == (["a"], "newton")
    assert parse_assignment('a="1"') == (["a"], "1")
    assert parse_assignment("a=[1, 2]") == (["a"], [1, 2])

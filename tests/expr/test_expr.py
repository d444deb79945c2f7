"""Tests of the formula language: parsing, printing, evaluation (numpy and jax), folding, errors."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gradfit.errors import FormulaError
from gradfit.expr import Const, Expr, parse

jax.config.update("jax_enable_x64", True)


def value(text: str, **env: object) -> float:
    return float(parse(text).evaluate(env))


# --- precedence and associativity -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 - 3 - 4", -5.0),
        ("2 ** 3 ** 2", 512.0),
        ("2 ^ 3 ^ 2", 512.0),
        ("-2 ** 2", -4.0),
        ("(-2) ** 2", 4.0),
        ("2 ** -1", 0.5),
        ("-2 ** -2", -0.25),
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 / 2 / 5", 1.0),
        ("12 / 2 * 3", 18.0),
        ("- - 3", 3.0),
        ("+3 - -3", 6.0),
        ("2 * -3", -6.0),
        ("3.5 + .5", 4.0),
        ("1e-3 * 2E+4", 20.0),
        ("1. + 2e2", 201.0),
        ("2 * 3 ** 2", 18.0),
        ("-3 * 2 ** 2 + 1", -11.0),
        ("1 + 2 > 2", 1.0),
        ("1 + 2 > 2 * 2", 0.0),
    ],
)
def test_precedence_and_associativity(text: str, expected: float) -> None:
    assert value(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 < 2", 1.0),
        ("2 < 2", 0.0),
        ("2 <= 2", 1.0),
        ("3 > 2", 1.0),
        ("2 >= 3", 0.0),
        ("2 == 2", 1.0),
        ("2 != 2", 0.0),
        ("1 and 0", 0.0),
        ("2 and -1", 1.0),
        ("0 or 0", 0.0),
        ("0 or 3", 1.0),
        ("not 0", 1.0),
        ("not 5", 0.0),
        ("!0", 1.0),
        ("!(1 == 1)", 0.0),
        ("1 && 1", 1.0),
        ("1 & 0", 0.0),
        ("0 || 1", 1.0),
        ("0 | 0", 0.0),
        ("not 1 == 2", 1.0),  # not binds looser than comparisons
        ("1 or 0 and 0", 1.0),  # and binds tighter than or
        ("(1 or 0) and 0", 0.0),
        ("not 0 and 0", 0.0),  # (not 0) and 0
        ("(3 > 2) * 5 + (3 < 2) * 7", 5.0),
        ("1 != 2 == 1", None),
    ],
)
def test_comparisons_and_logic_give_floats(text: str, expected: float | None) -> None:
    if expected is None:
        with pytest.raises(FormulaError, match="chained"):
            parse(text)
        return
    result = parse(text).evaluate({})
    assert np.asarray(result).dtype == np.float64
    assert float(result) == expected


def test_boolean_operators_on_arrays() -> None:
    env = {"age": np.array([30.0, 70.0, 80.0]), "Choice": np.array([1.0, -1.0, 2.0])}
    e = parse("(Choice != -1) and (age >= 65)")
    np.testing.assert_array_equal(e.evaluate(env), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(parse("(Choice == -1) || !(age < 75)").evaluate(env), [0.0, 1.0, 1.0])
    result = parse("(age >= 65) * BETA").evaluate({**env, "BETA": 2.5})
    np.testing.assert_array_equal(result, [0.0, 2.5, 2.5])


def test_functions() -> None:
    x = np.array([0.25, 1.0, 4.0])
    env = {"x": x, "ScaledIncome": np.array([2.0, 4.0, 7.5])}
    np.testing.assert_allclose(parse("exp(x)").evaluate(env), np.exp(x))
    np.testing.assert_allclose(parse("log(x)").evaluate(env), np.log(x))
    np.testing.assert_allclose(parse("sqrt(x)").evaluate(env), np.sqrt(x))
    np.testing.assert_array_equal(parse("abs(1 - x * 2)").evaluate(env), np.abs(1 - x * 2))
    np.testing.assert_array_equal(parse("max(0, ScaledIncome - 4)").evaluate(env), [0.0, 0.0, 3.5])
    np.testing.assert_array_equal(parse("min(x, 1)").evaluate(env), [0.25, 1.0, 1.0])
    np.testing.assert_array_equal(parse("min(x, 2, ScaledIncome)").evaluate(env), [0.25, 1.0, 2.0])
    np.testing.assert_array_equal(parse("max(x, 2, ScaledIncome - 3)").evaluate(env), [2.0, 2.0, 4.5])
    assert value("max(1, 5, 3, 2)") == 5.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("exp()", "function 'exp' takes exactly 1 argument, got 0"),
        ("log(x, 2)", "function 'log' takes exactly 1 argument, got 2"),
        ("sqrt(a, b, c)", "function 'sqrt' takes exactly 1 argument, got 3"),
        ("abs()", "function 'abs' takes exactly 1 argument, got 0"),
        ("min(x)", "function 'min' takes at least 2 arguments, got 1"),
        ("max()", "function 'max' takes at least 2 arguments, got 0"),
    ],
)
def test_arity_errors(text: str, fragment: str) -> None:
    with pytest.raises(FormulaError, match="spec.yaml: fn") as info:
        parse(text, where="spec.yaml: fn")
    assert fragment in str(info.value)


# --- the tree: names, strings, printing, equality ------------------------------------------------------


def test_names_strings_and_text() -> None:
    text = "ASC_CAR + BETA_TIME_CAR_REF * exp(BETA_TIME_CAR_CL * CARLOVERS) * TimeCar / 200"
    e = parse(text)
    assert e.text == text
    assert e.names == {"ASC_CAR", "BETA_TIME_CAR_REF", "BETA_TIME_CAR_CL", "CARLOVERS", "TimeCar"}
    assert "exp" not in e.names
    assert e.strings == frozenset()
    assert not e.is_constant
    s = parse("brand_1 == \"Artemis\" or brand_2 == 'Dionysos'")
    assert s.names == {"brand_1", "brand_2"}
    assert s.strings == {"Artemis", "Dionysos"}
    assert parse("2 * (3 + 1)").is_constant


def test_equality_hash_and_immutability() -> None:
    a, b = parse("x + 2 * y"), parse("x+2*(y)")
    assert a == b and hash(a) == hash(b)
    assert a != parse("(x + 2) * y")
    assert parse("x - y - z") != parse("x - (y - z)")
    assert len({a, b, parse("x")}) == 2
    assert isinstance(a, Expr)
    with pytest.raises(AttributeError):
        a.op = "-"  # type: ignore[misc]
    assert Const(2.0) == Const(2) and hash(Const(2.0)) == hash(Const(2))
    arr = np.arange(3.0)
    assert Const(arr) == Const(arr)
    assert Const(arr) != Const(arr.copy())
    assert hash(Const(arr)) == hash(Const(arr))


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("a+b*c", "a + b * c"),
        ("(a+b)*c", "(a + b) * c"),
        ("a-(b-c)", "a - (b - c)"),
        ("(a-b)-c", "a - b - c"),
        ("a/(b*c)", "a / (b * c)"),
        ("-x**2", "-x ** 2"),
        ("(-x)^2", "(-x) ** 2"),
        ("(a**b)**c", "(a ** b) ** c"),
        ("a^b^c", "a ** b ** c"),
        ("a ** -b", "a ** -b"),
        ("-(a*b)", "-(a * b)"),
        ("!(a<b) && c||d", "not a < b and c or d"),
        ("a and (b or c)", "a and (b or c)"),
        ("(not a) == b", "(not a) == b"),
        ("(a < b) == c", "(a < b) == c"),
        ("max(0,x-4)", "max(0, x - 4)"),
        ("x == 'it\\'s'", 'x == "it\'s"'),
        ("1.50 + 2e3 + 1e-5", "1.5 + 2000 + 1e-05"),
    ],
)
def test_canonical_text_round_trips(text: str, canonical: str) -> None:
    e = parse(text)
    assert str(e) == canonical
    assert parse(str(e)) == e
    assert str(parse(str(e))) == canonical


def test_string_literals() -> None:
    assert parse('x == "say \\"hi\\""').strings == {'say "hi"'}
    assert parse("x == 'C:\\path'").strings == {"C:\\path"}  # an unknown escape keeps its backslash
    e = parse('x == "back\\\\slash \\" quote"')
    assert e.strings == {'back\\slash " quote'}
    assert parse(str(e)) == e
    assert value('"a" == "a"') == 1.0 and value('"a" != "a"') == 0.0


def test_whitespace_and_line_breaks() -> None:
    e = parse("  ASC\n  + B *\tx  ")
    assert e == parse("ASC + B * x")
    assert e.text == "  ASC\n  + B *\tx  "


# --- hypothesis: random arithmetic against Python's own evaluation -----------------------------------

_VARS = {"x": 1.75, "y": 0.3, "z_2": 4.125}

_leaves = st.one_of(
    st.floats(min_value=0.01, max_value=100.0, allow_nan=False).map(repr),
    st.sampled_from(sorted(_VARS)),
)


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    # Operands are pasted without parentheses unless the generator adds some, so the text exercises
    # precedence and associativity; Python reads the same text with the same rules.
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(" ".join),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"-{c}"),
    )


_arithmetic = st.recursive(_leaves, _extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_arithmetic)
def test_arithmetic_matches_python(text: str) -> None:
    try:
        expected = eval(text, {"__builtins__": {}}, dict(_VARS))  # the test's independent oracle
    except ZeroDivisionError:
        assume(False)
    assume(math.isfinite(expected))
    e = parse(text)
    got = float(e.evaluate(_VARS))
    assert math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-300)
    again = parse(str(e))
    assert again == e
    assert float(again.evaluate(_VARS)) == got


_rich_leaves = st.one_of(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False).map(repr),
    st.sampled_from(["a", "b", "c"]),
)


def _string_literal(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _extend_rich(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    ops = ["+", "-", "*", "/", "**", "^", "==", "!=", "<", "<=", ">", ">=", "and", "or", "&&", "||"]
    return st.one_of(
        st.tuples(children, st.sampled_from(ops), children).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        st.tuples(st.sampled_from(["-", "+", "not ", "!"]), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["exp", "log", "sqrt", "abs"]), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.lists(children, min_size=2, max_size=3).map(lambda args: f"max({', '.join(args)})"),
        st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["==", "!="]), st.text("xy'\"\\ ", max_size=4)).map(
            lambda t: f"{t[0]} {t[1]} {_string_literal(t[2])}"
        ),
    )


@settings(max_examples=300, deadline=None)
@given(st.recursive(_rich_leaves, _extend_rich, max_leaves=10))
def test_canonical_text_parses_back_to_the_same_tree(text: str) -> None:
    e = parse(text)
    canonical = str(e)
    assert parse(canonical) == e
    assert str(parse(canonical)) == canonical


# --- numpy and jax ----------------------------------------------------------------------------------


def test_numpy_and_jax_agree_with_broadcasting() -> None:
    rng = np.random.default_rng(0)
    env_np = {"a": rng.uniform(0.5, 2.0, (3, 1)), "b": rng.uniform(0.5, 2.0, (1, 4)), "k": 1.5}
    env_jax = {name: jnp.asarray(v) for name, v in env_np.items()}
    text = "max(a, b) * exp(-k * a) + log(b) ** 2 - sqrt(a * b) / abs(a - 3) + (a > b) * min(a, b, 1)"
    e = parse(text)
    out_np = e.evaluate(env_np)
    out_jax = e.evaluate(env_jax, xp=jnp)
    assert out_np.shape == (3, 4) and out_jax.shape == (3, 4)
    assert isinstance(out_jax, jax.Array) and out_jax.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(out_jax), out_np, rtol=1e-13)
    a, b = env_np["a"], env_np["b"]
    direct = np.maximum(a, b) * np.exp(-1.5 * a) + np.log(b) ** 2 - np.sqrt(a * b) / np.abs(a - 3)
    direct = direct + (a > b) * np.minimum(np.minimum(a, b), 1)
    np.testing.assert_allclose(out_np, direct, rtol=1e-13)


def test_conditions_are_default_floats_in_jax() -> None:
    out = parse("(a >= 2) or not b").evaluate({"a": jnp.arange(4.0), "b": jnp.array(1.0)}, xp=jnp)
    assert out.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(out), [0.0, 0.0, 1.0, 1.0])


def test_jax_grad_through_a_formula() -> None:
    e = parse("B * exp(C * x) + B ^ 2")
    x = jnp.array([0.5, 1.0, 2.0])

    def f(B: jax.Array, C: jax.Array) -> jax.Array:
        return jnp.sum(e.evaluate({"B": B, "C": C, "x": x}, xp=jnp))

    dB, dC = jax.grad(f, argnums=(0, 1))(1.3, -0.4)
    np.testing.assert_allclose(dB, np.sum(np.exp(-0.4 * np.asarray(x))) + 3 * 2 * 1.3, rtol=1e-12)
    np.testing.assert_allclose(dC, np.sum(1.3 * np.asarray(x) * np.exp(-0.4 * np.asarray(x))), rtol=1e-12)
    np.testing.assert_allclose(jax.jit(f)(1.3, -0.4), f(1.3, -0.4), rtol=1e-12)


def test_integer_data_and_division_by_zero() -> None:
    assert value("n ** -1", n=4) == 0.25
    np.testing.assert_array_equal(parse("n ^ -1").evaluate({"n": np.array([1, 2, 4])}), [1.0, 0.5, 0.25])
    with np.errstate(divide="ignore"):
        assert value("1 / x", x=0.0) == math.inf


# --- strings --------------------------------------------------------------------------------------


def test_string_comparison_on_object_and_str_arrays() -> None:
    brands = np.array(["Artemis", "Dionysos", "Artemis", None], dtype=object)
    np.testing.assert_array_equal(parse('brand_1 == "Artemis"').evaluate({"brand_1": brands}), [1, 0, 1, 0])
    np.testing.assert_array_equal(parse("'Artemis' != brand_1").evaluate({"brand_1": brands}), [0, 1, 0, 1])
    fixed = brands[:3].astype(str)
    out = parse('(brand_1 == "Dionysos") * 2 + 1').evaluate({"brand_1": fixed})
    np.testing.assert_array_equal(out, [1.0, 3.0, 1.0])


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_ordering_comparison_with_a_string_fails_at_parse(op: str) -> None:
    with pytest.raises(FormulaError, match="ordering comparison with a string") as info:
        parse(f'brand {op} "Artemis"', where="spec.yaml: filter")
    assert str(info.value).startswith("spec.yaml: filter: ")


@pytest.mark.parametrize(
    "text", ['x + "a"', '"a" * 2', '-"a"', 'not "a"', 'exp("a")', 'max(x, "a")', '"a"', '(x + 1) == "a"']
)
def test_strings_outside_equality_fail_at_parse(text: str) -> None:
    with pytest.raises(FormulaError, match=r"^where: cannot parse formula .*string"):
        parse(text, where="where")


def test_string_comparison_with_numeric_column_is_an_error() -> None:
    with pytest.raises(FormulaError, match=r"ctx: cannot compare 'brand'.*holds numbers"):
        parse('brand == "A"', where="ctx").evaluate({"brand": np.array([1.0, 2.0])})


def test_string_comparison_inside_jax_tracing_says_to_fold_first() -> None:
    e = parse('brand == "A"', where="ctx")
    with pytest.raises(FormulaError, match="partial"):
        jax.jit(lambda b: e.evaluate({"brand": b}, xp=jnp))(jnp.array([1.0]))


# --- partial evaluation -----------------------------------------------------------------------------


def test_partial_folds_data_subtrees_then_jax_matches_direct() -> None:
    rng = np.random.default_rng(1)
    data = {
        "TimeCar": rng.uniform(10, 100, 5),
        "age": np.array([30.0, 70.0, 66.0, 20.0, 90.0]),
        "ScaledIncome": rng.uniform(0, 8, 5),
    }
    params = {"ASC": 0.3, "B": -0.8, "C": 0.2, "BI": 0.1, "BA": -0.5, "LV": jnp.asarray(rng.normal(size=5))}
    e = parse("ASC + B * exp(C * LV) * (TimeCar / 200) + BI * max(0, ScaledIncome - 4) + BA * (age >= 65)")
    p = e.partial(data)
    assert p.names == {"ASC", "B", "C", "LV", "BI", "BA"}
    assert p.text == e.text
    expected = "ASC + B * exp(C * LV) * <array shape (5,)> + BI * <array shape (5,)> + BA * <array shape (5,)>"
    assert str(p) == expected
    direct = e.evaluate({**data, **params}, xp=jnp)
    np.testing.assert_allclose(np.asarray(p.evaluate(params, xp=jnp)), np.asarray(direct), rtol=1e-13)


def test_partial_does_not_reassociate() -> None:
    e = parse("B * exp(C * LV) * TimeCar / 200")
    p = e.partial({"TimeCar": np.arange(3.0)})
    assert "TimeCar" not in p.names and "<array shape (3,)>" in str(p)
    assert str(p) == "B * exp(C * LV) * <array shape (3,)> / 200"


def test_partial_folds_constants_and_whole_formulas() -> None:
    p = parse("x * (2 * 3 + 1)").partial({})
    assert p == parse("x * 7")
    assert p.partial({}) == p
    whole = parse("a + b").partial({"a": 1.0, "b": 2.0})
    assert isinstance(whole, Const) and whole.value == 3.0 and whole.is_constant and whole.names == frozenset()
    untouched = parse("a + b")
    assert untouched.partial({"c": 1.0}) == untouched


def test_partial_folds_text_comparison_then_runs_under_jax() -> None:
    data = {"brand_1": np.array(["Artemis", "Dionysos", "Artemis"], dtype=object)}
    e = parse('ASC + B_ART * (brand_1 == "Artemis") + B * x')
    p = e.partial(data)
    assert p.strings == frozenset() and p.names == {"ASC", "B_ART", "B", "x"}

    @jax.jit
    def utility(b_art: jax.Array) -> jax.Array:
        return p.evaluate({"ASC": 1.0, "B_ART": b_art, "B": 2.0, "x": jnp.array([1.0, 2.0, 3.0])}, xp=jnp)

    np.testing.assert_allclose(np.asarray(utility(0.5)), [3.5, 5.0, 7.5])
    assert float(jax.grad(lambda b: jnp.sum(utility(b)))(0.5)) == 2.0


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("a + * b", ["'a + * b'", "unexpected '*' at position 4"]),
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("(a + b", ["expected ')'", "position 6"]),
        ("max(a, b", ["expected ',' or ')'", "'max'", "position 8"]),
        ("a + b)", ["unexpected ')'", "position 5"]),
        ("a b", ["unexpected 'b' at position 2"]),
        ("a +", ["unexpected end of formula at position 3"]),
        ('x == "abc', ["unterminated string at position 5"]),
        ("x == 'abc\\'", ["unterminated string at position 5"]),
        ("a < b < c", ["chained", "position 6", "and"]),
        ("a == b != c", ["chained"]),
        ("a = b", ["unexpected '='", "'=='"]),
        ("a $ b", ["unexpected character '$' at position 2"]),
        ("2x", ["malformed number '2x' at position 0"]),
        ("1e", ["malformed number '1e'"]),
        ("1.2.3", ["malformed number '1.2.3'"]),
        ("1e999", ["too large"]),
        ("foo(x)", ["unknown function 'foo'", "abs, exp, log, max, min, sqrt", "position 0"]),
        ("Exp(x)", ["unknown function 'Exp'"]),
        ("a and", ["unexpected end of formula"]),
        ("or a", ["unexpected 'or' at position 0"]),
        ("()", ["unexpected ')' at position 1"]),
        ("max(a,)", ["unexpected ')' at position 6"]),
        ("a\n+ * b", ["'a + * b'", "position 4"]),
        ("(" * 5000 + "x" + ")" * 5000, ["nested too deeply"]),
    ],
)
def test_syntax_errors_are_one_line(text: str, fragments: list[str]) -> None:
    with pytest.raises(FormulaError) as info:
        parse(text, where="spec.yaml: choice.alternatives.car.utility")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("spec.yaml: choice.alternatives.car.utility: cannot parse formula ")
    for fragment in fragments:
        assert fragment in message


def test_error_without_where_has_no_prefix() -> None:
    with pytest.raises(FormulaError, match=r"^cannot parse formula 'a \+ \* b'"):
        parse("a + * b")


def test_non_text_formula() -> None:
    assert value_of(parse(0)) == 0.0
    assert value_of(parse(2.5)) == 2.5
    with pytest.raises(FormulaError, match="w: a formula must be text"):
        parse(None, where="w")  # type: ignore[arg-type]


def value_of(e: Expr) -> float:
    return float(e.evaluate({}))


def test_unknown_name_in_evaluate_suggests_close_names() -> None:
    e = parse("ASC + TimeCr", where="spec.yaml: choice.alternatives.car.utility")
    with pytest.raises(FormulaError) as info:
        e.evaluate({"ASC": 1.0, "TimeCar": 2.0, "Cost": 3.0})
    assert str(info.value) == (
        "spec.yaml: choice.alternatives.car.utility: unknown name 'TimeCr' in formula 'ASC + TimeCr'; "
        "did you mean 'TimeCar'?"
    )


def test_unknown_name_lists_known_names_when_nothing_is_close() -> None:
    env = {f"col{i:02d}": 1.0 for i in range(12)}
    with pytest.raises(FormulaError) as info:
        parse("zzz * 2", where="w").evaluate(env)
    message = str(info.value)
    assert message.startswith("w: unknown name 'zzz' in formula 'zzz * 2'; known names include 'col00', ")
    assert "'col09', ..." in message and "col10" not in message and "\n" not in message


def test_check_names_reports_first_unknown_in_order_of_appearance() -> None:
    e = parse("beta_tme * time + betta_cost * cost", where="parsed here")
    known = ["beta_time", "beta_cost", "time", "cost"]
    with pytest.raises(FormulaError) as info:
        e.check_names(known, where="spec.yaml: u")
    assert str(info.value).startswith("spec.yaml: u: unknown name 'beta_tme' in formula")
    assert str(info.value).endswith("did you mean 'beta_time' or 'beta_cost'?")
    with pytest.raises(FormulaError, match="^parsed here: unknown name 'beta_tme'"):
        e.check_names(known)
    with pytest.raises(FormulaError, match="unknown name 'betta_cost'.*'beta_cost'"):
        e.check_names([*known, "beta_tme"])
    e.check_names([*known, "beta_tme", "betta_cost"])
    with pytest.raises(FormulaError, match="no names are defined"):
        e.check_names([])


def test_library_never_uses_python_eval() -> None:
    import pathlib

    import gradfit.expr

    package = pathlib.Path(gradfit.expr.__file__).parent
    for path in package.glob("*.py"):
        source = path.read_text()
        assert not re.search(r"(?<![\w.])(eval|exec|compile)\(", source), path.name
        assert "import ast" not in source

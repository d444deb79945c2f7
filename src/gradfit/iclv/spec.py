"""The ICLV model specification: one typed, validated structure (pydantic), the same as a YAML file or a dict.

Validation here is structural (types, unknown keys, references between sections, acyclic latent structure).
Whether the data fit the spec is checked when the model is built (`gradfit.iclv.data`).
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from gradfit.errors import SpecError
from gradfit.expr import parse

DRAW_TYPES = ("pseudo", "halton", "scrambled_halton", "sobol", "mlhs")
INTEGRATION_TYPES = (*DRAW_TYPES, "gauss_hermite")
INDICATOR_TYPES = ("ordered_probit", "ordered_logit", "normal", "binary_logit")

# A coefficient in the measurement equations: a number (fixed) or the name of a parameter.
Coef = float | str

# A formula; a bare number in YAML (`utility: 0`) is the constant formula.
Formula = Annotated[str | float, AfterValidator(lambda v: v if isinstance(v, str) else repr(float(v)))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    """Where the data are and how rows are grouped into people."""

    path: str = Field(description="CSV or Parquet file, relative to the spec file's folder.")
    format: Literal["auto", "csv", "parquet"] = Field(
        "auto", description="File format; 'auto' decides from the extension (.parquet/.pq, else CSV)."
    )
    separator: str | None = Field(None, description="CSV field separator; default: detect (comma, tab or semicolon).")
    # Required even for a cross-section (null), so that forgetting it cannot silently turn a panel into one.
    person: str | None = Field(
        description="Column identifying the person (panel unit); rows of a person share draws. null for a "
        "cross-section: every row is then its own observation with its own draws.",
    )
    filter: Formula | None = Field(
        None, description="Formula over data columns; rows where it is false (0) are dropped before use."
    )
    derived: dict[str, Formula] = Field(
        default_factory=dict,
        description="New columns defined by formulas over data columns (and earlier derived columns), in order.",
    )


class ParameterSpec(_Strict):
    """A model parameter. In YAML a bare number means {start: number}."""

    start: float = Field(0.0, description="Start value (the value used when fixed).")
    fixed: bool = Field(False, description="Keep the parameter at its start value.")
    lower: float | None = Field(None, description="Lower bound (inclusive), or none.")
    upper: float | None = Field(None, description="Upper bound (inclusive), or none.")

    @model_validator(mode="after")
    def _bounds(self) -> ParameterSpec:
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"lower bound {self.lower} is above upper bound {self.upper}")
        if self.lower is not None and self.start < self.lower:
            raise ValueError(f"start {self.start} is below the lower bound {self.lower}")
        if self.upper is not None and self.start > self.upper:
            raise ValueError(f"start {self.start} is above the upper bound {self.upper}")
        return self


class LatentVariableSpec(_Strict):
    """Structural equation: LV = mean(covariates, other LVs, parameters) + error."""

    mean: Formula = Field(
        "0",
        description="Formula for the systematic part: person-level data columns, parameters and other latent "
        "variables (the graph must be acyclic).",
    )
    scale: Coef = Field(1.0, description="Standard deviation of the error: a number (fixed) or a parameter name.")


class CorrelationSpec(_Strict):
    """One off-diagonal element of the Cholesky factor L of the structural errors (error = L z)."""

    between: tuple[str, str] = Field(description="Two latent variables [A, B]; A is declared before B.")
    parameter: Coef = Field(description="L[B, A]: a number (fixed) or a parameter name.")


class ThresholdSpec(_Strict):
    """Thresholds of ordered indicators, shareable between indicators."""

    form: Literal["cutpoints", "increments", "symmetric"] = Field(
        "cutpoints",
        description="cutpoints: the parameters are the thresholds; increments: tau_1 = p_1, "
        "tau_k = tau_(k-1) + p_k; symmetric: thresholds ±(p_1, p_1+p_2, ...) around 0 (a 0 in the middle "
        "when their number is odd).",
    )
    parameters: list[Coef] = Field(description="Parameter names or fixed numbers, in order.")


class IndicatorSpec(_Strict):
    """Measurement equation of one attitudinal indicator."""

    type: Literal["ordered_probit", "ordered_logit", "normal", "binary_logit"]
    column: str | None = Field(None, description="Data column; default: the indicator's name.")
    loadings: dict[str, Coef] = Field(description="Latent variable -> loading (number or parameter name).")
    intercept: Coef = Field(0.0, description="Number (fixed) or parameter name.")
    scale: Coef = Field(1.0, description="Standard deviation / scale of the error: number or parameter name.")
    thresholds: str | None = Field(None, description="Name of an entry in `thresholds` (ordered types only).")
    levels: list[float] | None = Field(
        None,
        description="Ordered types: the response values from lowest to highest (default 1..K from the "
        "thresholds). Binary: [no, yes] values (default [0, 1]).",
    )
    missing: list[float] = Field(
        default_factory=list,
        description="Codes meaning 'missing / no opinion': they contribute a factor 1. Empty cells count as missing.",
    )
    person_level: bool = Field(
        False,
        description="Counted once per person (data must not vary within a person) instead of once per row.",
    )


class AlternativeSpec(_Strict):
    code: float = Field(description="Value of the choice column that means this alternative was chosen.")
    utility: Formula = Field(description="Formula: data columns, parameters and latent variables.")
    available: Formula = Field("1", description="Formula over data columns; 0 means not available.")


class ChoiceSpec(_Strict):
    """Multinomial logit kernel, panel product over a person's rows."""

    column: str = Field(description="Data column holding the chosen alternative's code.")
    alternatives: dict[str, AlternativeSpec] = Field(min_length=2)


class IntegrationSpec(_Strict):
    type: Literal["pseudo", "halton", "scrambled_halton", "sobol", "mlhs", "gauss_hermite"] = Field(
        "halton", description="Monte Carlo draw type, or gauss_hermite quadrature (at most 3 latent variables)."
    )
    n: Annotated[int, Field(ge=1)] = Field(
        100, description="Draws per person, or quadrature points per latent variable."
    )
    antithetic: bool = Field(False, description="Pair every draw z with -z (Monte Carlo only; n even).")
    seed: int = Field(0, description="Seed of the random draws / scrambling.")
    store_draws: bool = Field(
        True,
        description="false: draws are not stored but regenerated on the device inside each chunk from (seed, "
        "person), so memory does not grow with people x draws (types pseudo and mlhs; a different random "
        "stream from the stored draws of the same type).",
    )
    rule: Literal["standard", "biogeme"] = Field(
        "standard",
        description="gauss_hermite only: 'standard' (probabilists' Hermite rule, exact for polynomials) or "
        "'biogeme' (Biogeme 3.2's rule, to reproduce its published results; see docs/spec.md).",
    )

    @model_validator(mode="after")
    def _rule_needs_quadrature(self) -> IntegrationSpec:
        if self.rule != "standard" and self.type != "gauss_hermite":
            raise ValueError(f"rule {self.rule!r} applies to type gauss_hermite only; remove it or change type")
        if not self.store_draws and self.type not in ("pseudo", "mlhs"):
            raise ValueError(
                f"store_draws: false needs type pseudo or mlhs (generated on the device), not {self.type!r}"
            )
        return self


class EstimationSpec(_Strict):
    optimizer: Literal["trust_bfgs", "bfgs", "newton", "box_trust_bfgs"] = Field(
        "trust_bfgs",
        description="trust_bfgs: trust-region BFGS started from the BHHH matrix (fewest likelihood evaluations "
        "in our benchmarks); bfgs: limited-memory quasi-Newton (L-BFGS-B); newton: trust-region Newton with the "
        "exact Hessian (fewest iterations, each costs a Hessian); box_trust_bfgs: Biogeme 3.2's default "
        "algorithm (trust-region BFGS on a box, from the identity, on the average log-likelihood), to follow "
        "Biogeme's path when replicating its estimates.",
    )
    tolerance: Annotated[float, Field(gt=0)] = Field(
        1e-6,
        description="Converged when max_i |g_i| * max(|theta_i|, 1) / max(|LL|, 1) falls below this "
        "(relative gradient).",
    )
    max_iterations: Annotated[int, Field(ge=1)] = Field(1000)
    device: Literal["auto", "cpu", "gpu"] = Field("auto", description="Where JAX computes.")
    precision: Literal["float64", "float32", "mixed"] = Field(
        "float64",
        description="float64; float32 (everything single precision); mixed (float32 per draw, float64 from each "
        "person's integral over the draws on: per-person log-likelihood, sums over people, gradient "
        "accumulation across chunks, parameters).",
    )
    chunk_size: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        "auto",
        description="People per chunk and device: the likelihood, its gradient and the per-person scores are "
        "computed one chunk at a time, recomputing a chunk's intermediates in the backward pass, so memory "
        "grows with the chunk, not with people x draws. auto: one chunk when the work fits in about half of the "
        "device's free memory, else the fewest chunks that fit.",
    )
    devices: Literal["all"] | Annotated[int, Field(ge=1)] = Field(
        "all",
        description="How many of the visible devices of the chosen kind share the people (data parallel); "
        "results are equal to rounding on any number.",
    )


class ModelSpec(_Strict):
    """An integrated choice and latent variable (ICLV) model."""

    name: str = Field(description="Model name, used in messages and reports.", pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    data: DataSpec
    parameters: dict[str, ParameterSpec | float] = Field(
        description="name -> start value or {start, fixed, lower, upper}."
    )
    latent_variables: dict[str, LatentVariableSpec] = Field(default_factory=dict)
    correlations: list[CorrelationSpec] = Field(default_factory=list)
    thresholds: dict[str, ThresholdSpec] = Field(default_factory=dict)
    indicators: dict[str, IndicatorSpec] = Field(default_factory=dict)
    choice: ChoiceSpec | None = None
    integration: IntegrationSpec = IntegrationSpec()
    estimation: EstimationSpec = EstimationSpec()
    quantities: dict[str, Formula] = Field(
        default_factory=dict,
        description="Quantities derived from the estimates, name -> formula of parameters and data columns (e.g. "
        "a value of time, BETA_TIME / BETA_COST * 60); `gradfit predict` reports each with delta-method and "
        "Krinsky-Robb intervals (per row and averaged when it uses data).",
    )

    @field_validator("parameters", mode="after")
    @classmethod
    def _bare_numbers(cls, value: dict) -> dict:
        # After validation every entry is a ParameterSpec: a bare number is its start value.
        return {k: v if isinstance(v, ParameterSpec) else ParameterSpec(start=v) for k, v in value.items()}

    @model_validator(mode="after")
    def _references(self) -> ModelSpec:
        _check_references(self)
        return self

    def latent_order(self) -> list[str]:
        """Latent variables in an order where every variable comes after those its mean uses."""
        return _topological(self)


def _closest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _check_references(spec: ModelSpec) -> None:
    params = list(spec.parameters)
    lvs = list(spec.latent_variables)
    clash = set(params) & set(lvs)
    if clash:
        raise ValueError(f"names used both as parameter and latent variable: {sorted(clash)}")

    def coef(value: Coef, where: str) -> None:
        if isinstance(value, str) and value not in spec.parameters:
            raise ValueError(f"{where}: unknown parameter {value!r}{_closest(value, params)}")

    def lv(name: str, where: str) -> None:
        if name not in spec.latent_variables:
            raise ValueError(f"{where}: unknown latent variable {name!r}{_closest(name, lvs)}")

    for name, lvspec in spec.latent_variables.items():
        coef(lvspec.scale, f"latent_variables.{name}.scale")
        parse(lvspec.mean, f"latent_variables.{name}.mean")
    for i, corr in enumerate(spec.correlations):
        a, b = corr.between
        lv(a, f"correlations[{i}].between")
        lv(b, f"correlations[{i}].between")
        if lvs.index(a) >= lvs.index(b):
            raise ValueError(f"correlations[{i}].between: {a!r} must be declared before {b!r}")
        coef(corr.parameter, f"correlations[{i}].parameter")
    for name, th in spec.thresholds.items():
        for p in th.parameters:
            coef(p, f"thresholds.{name}.parameters")
    for name, ind in spec.indicators.items():
        where = f"indicators.{name}"
        if not ind.loadings:
            raise ValueError(f"{where}.loadings: an indicator must load on at least one latent variable")
        for lvname, value in ind.loadings.items():
            lv(lvname, f"{where}.loadings")
            coef(value, f"{where}.loadings.{lvname}")
        coef(ind.intercept, f"{where}.intercept")
        coef(ind.scale, f"{where}.scale")
        ordered = ind.type.startswith("ordered")
        if ordered and ind.thresholds is None:
            raise ValueError(f"{where}.thresholds: ordered indicators need a thresholds entry")
        if not ordered and ind.thresholds is not None:
            raise ValueError(f"{where}.thresholds: only ordered indicators have thresholds")
        if ordered and ind.thresholds not in spec.thresholds:
            hint = _closest(ind.thresholds, list(spec.thresholds))
            raise ValueError(f"{where}.thresholds: unknown thresholds {ind.thresholds!r}{hint}")
        if ind.levels is not None and any(b <= a for a, b in zip(ind.levels, ind.levels[1:], strict=False)):
            raise ValueError(f"{where}.levels: list the levels in increasing order, each once")
        if ind.type == "binary_logit" and ind.levels is not None and len(ind.levels) != 2:
            raise ValueError(f"{where}.levels: a binary indicator has exactly two levels [no, yes]")
        if ordered and ind.levels is not None:
            n_cuts = n_thresholds(spec.thresholds[ind.thresholds], len(ind.levels))
            if n_cuts != len(ind.levels) - 1:
                raise ValueError(
                    f"{where}.levels: {len(ind.levels)} levels need {len(ind.levels) - 1} thresholds, "
                    f"thresholds {ind.thresholds!r} define {n_cuts}"
                )
    for name, lvspec in spec.latent_variables.items():
        _check_scale_normalised(spec, name, lvspec)
    if spec.choice is not None:
        for alt, a in spec.choice.alternatives.items():
            parse(a.utility, f"choice.alternatives.{alt}.utility")
            parse(a.available, f"choice.alternatives.{alt}.available")
        codes = [a.code for a in spec.choice.alternatives.values()]
        if len(set(codes)) != len(codes):
            raise ValueError("choice.alternatives: two alternatives share a code")
    if spec.integration.antithetic and spec.integration.type == "gauss_hermite":
        raise ValueError("integration.antithetic: applies to Monte Carlo draws, not gauss_hermite")
    if spec.integration.antithetic and spec.integration.n % 2:
        raise ValueError("integration.n: antithetic draws need an even number")
    if spec.integration.type == "gauss_hermite" and len(lvs) > 3:
        raise ValueError(
            f"integration.type: gauss_hermite is for at most 3 latent variables (this model has {len(lvs)}); "
            "use Monte Carlo draws such as sobol"
        )
    _topological(spec)


def _is_free(spec: ModelSpec, value: Coef) -> bool:
    return isinstance(value, str) and not spec.parameters[value].fixed


def _check_scale_normalised(spec: ModelSpec, name: str, lvspec: LatentVariableSpec) -> None:
    """A latent variable's scale must be pinned: by a fixed error scale, or by a fixed loading.

    Otherwise multiplying the latent variable by k (its scale, mean coefficients and correlations by k, its
    loadings and utility coefficients by 1/k) leaves the likelihood unchanged: the model is not identified.
    """
    if not _is_free(spec, lvspec.scale):
        return
    loadings = [ind.loadings[name] for ind in spec.indicators.values() if name in ind.loadings]
    if any(not _is_free(spec, value) for value in loadings):
        return
    which = "none of its loadings is fixed" if loadings else "it has no indicators"
    raise ValueError(
        f"latent_variables.{name}: the scale of {name} is not identified: its error scale {lvspec.scale!r} is free "
        f"and {which}; fix the scale (scale: 1, or fixed: true on {lvspec.scale!r}) or one loading"
    )


def used_names(spec: ModelSpec) -> set[str]:
    """Every name the model's formulas and coefficients refer to."""
    used: set[str] = set()
    formulas = [lv.mean for lv in spec.latent_variables.values()]
    if spec.choice is not None:
        formulas += [a.utility for a in spec.choice.alternatives.values()]
    for f in formulas:
        used |= parse(f).names
    coefs = [lv.scale for lv in spec.latent_variables.values()] + [c.parameter for c in spec.correlations]
    for ind in spec.indicators.values():
        coefs += [ind.intercept, ind.scale, *ind.loadings.values()]
    for name, th in spec.thresholds.items():
        if any(i.thresholds == name for i in spec.indicators.values()):
            coefs += list(th.parameters)
    return used | {c for c in coefs if isinstance(c, str)}


def n_thresholds(th: ThresholdSpec, n_levels: int | None = None) -> int:
    """Number of thresholds a threshold set defines (symmetric sets need the level count to decide)."""
    if th.form != "symmetric":
        return len(th.parameters)
    if n_levels is None:
        return 2 * len(th.parameters)
    # Symmetric: m parameters give 2m thresholds, or 2m + 1 with a threshold fixed at 0 in the middle.
    m = len(th.parameters)
    return n_levels - 1 if (n_levels - 1) // 2 == m else 2 * m


def _topological(spec: ModelSpec) -> list[str]:
    lvs = list(spec.latent_variables)
    parents = {
        name: [p for p in parse(s.mean).names if p in spec.latent_variables]
        for name, s in spec.latent_variables.items()
    }
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise ValueError(f"latent_variables: the structural equations form a cycle ({cycle})")
        state[name] = 1
        for p in parents[name]:
            visit(p, [*path, name])
        state[name] = 2
        order.append(name)

    for name in lvs:
        visit(name, [])
    return order


def validate(data: dict[str, Any], source: str = "spec") -> ModelSpec:
    """Validate a dict as a ModelSpec; any problem becomes a one-line SpecError naming the key."""
    from pydantic import ValidationError

    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        loc, msg, problems = _first_problem(exc.errors())
        where = f"{source}: {'.'.join(loc).replace('.[', '[')}" if loc else source
        more = f" (and {problems - 1} more problems)" if problems > 1 else ""
        raise SpecError(f"{where}: {msg}{more}") from None
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None


# pydantic adds the member of a union that failed to an error's location: `float`, `str`, `ParameterSpec`, or
# `function-after[_bounds(), ParameterSpec]`; these are not keys of the spec.
_TAG_WORDS = {"float": "a number", "int": "an integer", "str": "text", "bool": "true or false"}


def _is_tag(part: Any) -> bool:
    models = {m.__name__ for m in (ParameterSpec, LatentVariableSpec, IndicatorSpec, ChoiceSpec, ThresholdSpec)}
    return isinstance(part, str) and ("[" in part or part in _TAG_WORDS or part in models)


def _first_problem(errors: list[dict]) -> tuple[list[str], str, int]:
    """(location, message, number of distinct problems) of pydantic's errors, union members merged."""

    def key(err: dict) -> tuple:
        loc = tuple(err["loc"])
        tags = [i for i, part in enumerate(loc) if _is_tag(part)]
        return loc[: tags[0]] if tags else loc

    first = key(errors[0])
    group = [e for e in errors if key(e) == first]
    problems = len({key(e) for e in errors})
    type_error = [e["type"].endswith(("_type", "_parsing")) and len(e["loc"]) <= len(first) + 1 for e in group]
    specific = [e for e, is_type in zip(group, type_error, strict=True) if not is_type]
    loc = _dotted(first)
    if len(group) > 1 and not specific:  # the value fits no member of a union: say what would
        order = [*_TAG_WORDS.values(), "a mapping"]
        words = sorted({_TAG_WORDS.get(e["loc"][len(first)], "a mapping") for e in group}, key=order.index)
        msg = f"expected {' or '.join(words)}, not {_shown(group[0].get('input'))}"
        if len(first) == 2 and first[0] == "parameters":
            msg += " (a bare number is the start value; a mapping has start, fixed, lower, upper)"
        return loc, msg, problems
    err = specific[0] if specific else group[0]
    loc = _dotted([p for p in err["loc"] if not _is_tag(p)])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        known = _keys_at(loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=3, cutoff=0.6)
        if close:
            msg = f"unknown key; did you mean {', '.join(map(repr, close))}?"
        elif known:
            msg = f"unknown key; the keys here are {', '.join(known)}"
        else:
            msg = "unknown key; check its spelling against docs/spec.md"
    elif err["type"] == "missing":
        msg = "required key missing; add it (see docs/spec.md)"
    elif err["type"] in ("model_type", "dict_type"):
        msg = f"expected a mapping, not {_shown(err.get('input'))}"
    elif err["type"] == "string_pattern_mismatch" and loc == ["name"]:
        msg = f"use letters, digits, '_', '.' and '-' only, not {_shown(err.get('input'))}"
    elif err["type"].endswith(("_type", "_parsing")) or err["type"].startswith(("literal", "greater", "less")):
        msg = f"{msg.split(', unable to')[0]}, not {_shown(err.get('input'))}"
    return loc, msg, problems


def _dotted(loc) -> list[str]:
    """Location parts as in messages elsewhere: list positions as `[i]` (joined to the key before them)."""
    return [f"[{p}]" if isinstance(p, int) else str(p) for p in loc]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _keys_at(loc: list[str]) -> list[str]:
    """The keys allowed in the mapping at `loc` (a dotted path into the spec), or [] if it is no section."""
    ann: Any = ModelSpec
    for part in loc:
        if part.startswith("["):
            args = get_args(ann)
            ann = args[0] if get_origin(ann) in (list, tuple) and args else None
            continue
        model = _model_of(ann)
        if model is not None:
            if part not in model.model_fields:
                return []
            ann = model.model_fields[part].annotation
            continue
        args = [a for a in get_args(ann) if a is not type(None)]
        if get_origin(ann) is dict and len(args) == 2:
            ann = args[1]
        else:
            return []
    model = _model_of(ann)
    return list(model.model_fields) if model is not None else []


def _model_of(ann: Any) -> type[BaseModel] | None:
    """The spec model in an annotation (`X`, `X | None`, `X | float`), if any."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    if get_origin(ann) in (dict, list, tuple):
        return None
    for arg in get_args(ann):
        found = _model_of(arg)
        if found is not None:
            return found
    return None

"""Assemble an ICLV likelihood from a validated spec and a DataFrame: components, arrays, draws."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
import pandas as pd

from gradfit.core.draws import normal_draws
from gradfit.core.generated_draws import draws_for_key, seed_key
from gradfit.core.quadrature import gauss_hermite_normal
from gradfit.errors import SpecError
from gradfit.iclv.choice import build_choice
from gradfit.iclv.data import Panel, make_panel
from gradfit.iclv.likelihood import Likelihood
from gradfit.iclv.measurement import build_measurement
from gradfit.iclv.params import CoefTable, ParamLayout
from gradfit.iclv.spec import ModelSpec, used_names
from gradfit.iclv.structural import build_structural

# Above this many elements per component (people x draws x indicators, or x rows x alternatives), the
# likelihood's backward pass recomputes component values instead of storing them (see Likelihood.components).
REMAT_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Built:
    spec: ModelSpec
    likelihood: Likelihood
    arrays: dict  # pytree of numpy arrays: data, draws, weights
    panel: Panel
    null_choice_ll: float | None
    elements: int  # people x draws x widest component: the size of the likelihood's elementwise work


def integration_nodes(spec: ModelSpec, n_people: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal draws (N or 1, R, L) and their log-weights (R,)."""
    integ = spec.integration
    dim = len(spec.latent_variables)
    if dim == 0:
        return np.zeros((1, 1, 0)), np.zeros(1)
    if integ.type == "gauss_hermite":
        nodes, log_w = gauss_hermite_normal(integ.n, dim, integ.rule)
        return nodes[None], log_w
    if not integ.store_draws:  # generated on the device (build): nothing to store
        return np.zeros((1, 0, dim)), np.full(integ.n, -np.log(integ.n))
    z = normal_draws(integ.type, n_people, integ.n, dim, seed=integ.seed, antithetic=integ.antithetic)
    return z, np.full(integ.n, -np.log(integ.n))


def build(spec: ModelSpec, df: pd.DataFrame, source: str = "spec", label: str | None = None) -> Built:
    """`label` names the data in messages (default: the spec's data file)."""
    if not spec.indicators and spec.choice is None:
        raise SpecError(f"{source}: the model has neither indicators nor a choice model; add at least one")
    clash = sorted((set(spec.parameters) | set(spec.latent_variables)) & set(map(str, df.columns)))
    if clash:
        raise SpecError(
            f"{source}: {clash[0]!r} is both a data column and a parameter/latent variable name; rename one"
        )
    # No person column: a cross-section, each row its own person (its file position, kept by load_data).
    panel = make_panel(df, spec.data.person or "__row__", label=label or spec.data.path)
    layout = ParamLayout.from_spec(spec)
    coefs = CoefTable(layout)
    coefs.index(0.0)  # the filler of sparse coefficient matrices
    structural, s_arrays = build_structural(spec, df, panel, coefs, source)
    groups, m_arrays = build_measurement(spec, df, panel, coefs, source)
    choice, c_arrays = (None, {}) if spec.choice is None else build_choice(spec, df, panel, coefs, source)
    # Checked after the formulas are bound, so that a misspelt name is reported as such, not as an unused parameter.
    used = used_names(spec)
    unused = [n for n, p in spec.parameters.items() if not p.fixed and n not in used]
    if unused:
        raise SpecError(
            f"{source}: parameters.{unused[0]}: free parameter not used anywhere in the model (it would be "
            "unidentified); use it, fix it (fixed: true) or remove it"
        )
    draws, log_w = integration_nodes(spec, panel.n_people)
    integ, generate = spec.integration, None
    if integ.store_draws or not spec.latent_variables:
        nodes = {"draws": draws}
    else:  # regenerated on the device from (seed, person), see gradfit.core.generated_draws
        dim = len(spec.latent_variables)
        nodes = {
            "draw_seed": seed_key(integ.type, integ.seed, integ.n, dim, integ.antithetic),
            "person_index": np.arange(panel.n_people, dtype=np.int64),
        }
        generate = _Generated(integ.type, integ.n, dim, integ.antithetic)
    arrays = {
        **nodes,
        "log_weights": log_w,
        "rows": panel.mask,
        # 1 per person; 0 for the copies that padding adds when people are split across devices.
        "person_weight": np.ones(panel.n_people),
        "structural": s_arrays,
        "measurement": m_arrays,
        "choice": c_arrays,
        "coef_consts": coefs.consts,
    }
    null = None if choice is None else choice.null_loglikelihood(c_arrays)
    # normal indicators cost one quadratic per draw however many there are (IndicatorGroup._normal_quadratic)
    widest = max(
        [1 if g.kind == "normal" else len(g.names) for g in groups]
        + [panel.max_rows * len(spec.choice.alternatives) if choice else 0]
    )
    elements = panel.n_people * log_w.shape[0] * widest
    likelihood = Likelihood(layout, structural, tuple(groups), choice, elements > REMAT_ELEMENTS, generate)
    return Built(spec, likelihood, arrays, panel, null, elements)


@dataclass(frozen=True)
class _Generated:
    """Likelihood.draws for integration.store_draws = false: (key, person indices) -> (N, R, L) draws, in the
    working precision of the model (the key's array is integer, so the dtype comes from the caller)."""

    kind: str
    n_draws: int
    dim: int
    antithetic: bool

    def __call__(self, key, people, dtype):
        return draws_for_key(
            key, people, kind=self.kind, n_draws=self.n_draws, dim=self.dim, antithetic=self.antithetic, dtype=dtype
        )


def shared_keys(arrays: dict) -> set[str]:
    """Top-level keys of `arrays` that are not per person (every other leaf has the people on axis 0)."""
    n = arrays["rows"].shape[0]
    per_person_draws = "draws" not in arrays or arrays["draws"].shape[0] == n
    return {"log_weights", "coef_consts", "draw_seed"} | (set() if per_person_draws else {"draws"})


def pad_people(arrays: dict, multiple: int) -> dict:
    """Pad the people axis to a multiple of `multiple` with copies of the last person, weighted 0.

    The copies are valid data, so their log-likelihood is finite and weight 0 removes them (and their gradient)
    exactly; a split across devices needs equal shares.
    """
    n = arrays["rows"].shape[0]
    extra = -n % multiple
    if extra == 0:
        return arrays
    shared = shared_keys(arrays)

    def pad(x):
        x = np.asarray(x)
        return np.concatenate([x, np.repeat(x[-1:], extra, axis=0)], axis=0)

    out = {k: (v if k in shared else jax.tree_util.tree_map(pad, v)) for k, v in arrays.items()}
    out["person_weight"] = np.concatenate([np.asarray(arrays["person_weight"]), np.zeros(extra)])
    return out

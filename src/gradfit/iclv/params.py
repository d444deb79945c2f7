"""Parameter layout: free parameters as one vector for the optimiser, all parameters by name inside the model."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from gradfit.iclv.spec import ModelSpec


@dataclass(frozen=True)
class ParamLayout:
    names: tuple[str, ...]  # all parameters, spec order
    free: tuple[str, ...]  # free parameters, spec order
    values: np.ndarray  # (P_all,) start values (fixed ones stay there)
    free_index: np.ndarray  # (P_free,) positions of the free parameters in `names`
    lower: np.ndarray  # (P_free,) -inf where unbounded
    upper: np.ndarray  # (P_free,) +inf where unbounded

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> ParamLayout:
        names = tuple(spec.parameters)
        free = tuple(n for n, p in spec.parameters.items() if not p.fixed)
        values = np.array([p.start for p in spec.parameters.values()], dtype=float)
        index = np.array([names.index(n) for n in free], dtype=int)
        lo = np.array([-np.inf if spec.parameters[n].lower is None else spec.parameters[n].lower for n in free])
        hi = np.array([np.inf if spec.parameters[n].upper is None else spec.parameters[n].upper for n in free])
        return cls(names, free, values, index, lo.astype(float), hi.astype(float))

    @property
    def start(self) -> np.ndarray:
        return self.values[self.free_index]

    @property
    def fixed(self) -> tuple[str, ...]:
        return tuple(n for n in self.names if n not in self.free)

    @property
    def fixed_values(self) -> np.ndarray:
        return np.array([self.values[self.names.index(n)] for n in self.fixed], dtype=float)

    @cached_property
    def _positions(self) -> dict[str, int]:
        order = self.free + self.fixed
        return {name: i for i, name in enumerate(order)}

    def position(self, name: str) -> int:
        """Where a parameter sits in ext = [free parameters, fixed parameters, numeric coefficients]."""
        return self._positions[name]

    def expand(self, theta, consts) -> Values:
        """Free-parameter vector -> all parameter values, by name and as a gatherable vector (traceable).

        `consts` = [fixed parameters' values, numeric coefficients]; appending them to theta (rather than
        scattering theta into a full vector) keeps the backward pass free of scatter kernels.
        """
        ext = jnp.concatenate([theta, jnp.asarray(consts, dtype=theta.dtype)])
        return Values({name: ext[self.position(name)] for name in self.names}, ext)

    def to_vector(self, params: dict[str, float]) -> np.ndarray:
        """{free name: value} -> vector; every free parameter must be given, nothing else."""
        unknown = sorted(set(params) - set(self.free))
        if unknown:
            fixed = [u for u in unknown if u in self.names]
            what = "fixed" if fixed else "unknown"
            raise KeyError(f"{what} parameter(s) {unknown[:5]}: pass values for free parameters only")
        missing = [n for n in self.free if n not in params]
        if missing:
            raise KeyError(f"missing value(s) for free parameter(s) {missing[:5]}")
        return np.array([float(params[n]) for n in self.free])

    def to_dict(self, theta) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.free, np.asarray(theta), strict=True)}


class Values(NamedTuple):
    """Parameter values inside the likelihood: `scalars` by name for formulas, `ext` for vectorised gathers.

    ext = [all parameters in spec order, then the fixed numbers the spec uses as coefficients], so a component
    picks any mix of free, fixed and numeric coefficients with one gather `ext[index_array]`.
    """

    scalars: dict
    ext: jnp.ndarray


class CoefTable:
    """Build-time registry mapping spec coefficients (parameter names or numbers) to positions in `ext`."""

    def __init__(self, layout: ParamLayout):
        self._layout = layout
        self._consts: list[float] = []

    def index(self, value: float | str) -> int:
        if isinstance(value, str):
            return self._layout.position(value)
        value = float(value)
        if value not in self._consts:
            self._consts.append(value)
        return len(self._layout.names) + self._consts.index(value)

    def indices(self, values) -> np.ndarray:
        return np.asarray([self.index(v) for v in values], dtype=np.int32)

    @property
    def consts(self) -> np.ndarray:
        """The tail of ext after theta: fixed parameters' values, then the numbers registered here."""
        return np.concatenate([self._layout.fixed_values, np.array(self._consts, dtype=float)])

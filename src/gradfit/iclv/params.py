"""Parameter layout: free parameters as one vector for the optimiser, all parameters by name inside the model."""

from __future__ import annotations

from dataclasses import dataclass

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

    def expand(self, theta) -> dict:
        """Free-parameter vector -> {name: scalar} for every parameter (traceable by JAX)."""
        full = jnp.asarray(self.values, dtype=theta.dtype).at[self.free_index].set(theta)
        return {name: full[i] for i, name in enumerate(self.names)}

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


def coef(p: dict, value: float | str):
    """A coefficient from the spec: a parameter's value by name, or a fixed number."""
    return p[value] if isinstance(value, str) else value

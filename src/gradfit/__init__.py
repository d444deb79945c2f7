"""gradfit: fast, exact gradient-based estimation of hybrid choice (ICLV) models with JAX.

Importing gradfit switches JAX to 64-bit floats: simulated maximum likelihood needs float64 by default
(`estimation.precision: float32` opts out per model).
"""

import jax

jax.config.update("jax_enable_x64", True)

from gradfit.runtime import configure_compilation_cache, configure_cpu_devices, tune_allocator  # noqa: E402

configure_cpu_devices()
configure_compilation_cache()
tune_allocator()

from gradfit._version import __version__  # noqa: E402
from gradfit.errors import DataError, EstimationError, FormulaError, GradfitError, SpecError  # noqa: E402
from gradfit.estimate import FitResult  # noqa: E402
from gradfit.iclv.spec import ModelSpec  # noqa: E402
from gradfit.io import read_spec  # noqa: E402
from gradfit.model import Model  # noqa: E402

__all__ = [
    "DataError",
    "EstimationError",
    "FitResult",
    "FormulaError",
    "GradfitError",
    "Model",
    "ModelSpec",
    "SpecError",
    "__version__",
    "read_spec",
]

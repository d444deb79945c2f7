"""Diagnosis of a model at given parameters: gradient check, NaN locator, components, identification, noise."""

from gradfit.diagnose.checks import (
    component_contributions,
    diagnose,
    gradient_check,
    identification,
    nonfinite_locator,
    precision_check,
    quadrature_check,
    simulation_noise,
)
from gradfit.diagnose.findings import CRITICAL, OK, WARNING, Diagnosis, Finding

__all__ = [
    "CRITICAL",
    "OK",
    "WARNING",
    "Diagnosis",
    "Finding",
    "component_contributions",
    "diagnose",
    "gradient_check",
    "identification",
    "nonfinite_locator",
    "precision_check",
    "quadrature_check",
    "simulation_noise",
]

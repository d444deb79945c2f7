"""After the fit: predictions, derived quantities and elasticities with delta-method and Krinsky-Robb
intervals, from a completed run folder (`gradfit predict`)."""

from gradfit.predict.compute import Prediction, Settings, derived_quantities, predict, quantity_expressions
from gradfit.predict.fitted import FittedRun, load_fitted, run_spec
from gradfit.predict.inference import delta_method, parameter_draws
from gradfit.predict.scenario import Scenario, make_scenario

__all__ = [
    "FittedRun",
    "Prediction",
    "Scenario",
    "Settings",
    "delta_method",
    "derived_quantities",
    "load_fitted",
    "make_scenario",
    "parameter_draws",
    "predict",
    "quantity_expressions",
    "run_spec",
]

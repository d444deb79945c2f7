"""Estimation: optimiser driver, inference and the results record, for any workload that states a `Problem`."""

from gradfit.estimate.inference import Covariances, covariances
from gradfit.estimate.optimize import OPTIMIZERS, Iterate, OptimResult, maximize
from gradfit.estimate.problem import Problem
from gradfit.estimate.results import FitResult

__all__ = ["OPTIMIZERS", "Covariances", "FitResult", "Iterate", "OptimResult", "Problem", "covariances", "maximize"]

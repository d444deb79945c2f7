"""The files an estimation run leaves: results.json, estimates.csv, summary.txt, from a `FitResult`."""

from __future__ import annotations

import math

from gradfit.estimate import FitResult
from gradfit.runs.folder import RunFolder
from gradfit.runs.record import package_versions


def _num(x) -> float | None:
    """JSON has no NaN: a standard error that could not be computed is null."""
    x = float(x)
    return x if math.isfinite(x) else None


def results_record(res: FitResult, *, data_sha256: str | None, git_commit: str | None, extra: dict) -> dict:
    est = res.estimates
    return {
        "model": res.model_name,
        "loglikelihood": res.loglikelihood,
        "initial_loglikelihood": res.initial_loglikelihood,
        "null_loglikelihood": res.null_loglikelihood,
        "choice_loglikelihood": res.choice_loglikelihood,
        "rho_squared": res.rho_squared,
        "aic": res.aic,
        "bic": res.bic,
        "n_parameters": res.n_parameters,
        "n_observations": res.n_observations,
        "n_individuals": res.n_individuals,
        "converged": res.converged,
        "iterations": res.iterations,
        "message": res.message,
        "optimizer": res.optimizer,
        "estimates": {
            name: {
                "value": _num(row["value"]),
                "std_err": _num(row["std_err"]),
                "robust_std_err": _num(row["robust_std_err"]),
                "bhhh_std_err": _num(row["bhhh_std_err"]),
            }
            for name, row in est.iterrows()
        },
        "fixed": res.fixed,
        "timings": {
            k: res.timings[k] for k in ("compile_s", "background_compile_s", "estimate_s", "inference_s", "total_s")
        },
        "device": res.settings.get("device"),
        "precision": res.settings.get("precision"),
        "integration": res.settings.get("integration"),
        "versions": package_versions(),
        "data_sha256": data_sha256,
        "git_commit": git_commit,
        **extra,
    }


COVARIANCE = "covariance.json"


def covariance_record(res: FitResult) -> dict:
    """The covariance matrices of the free parameters (null where not computable), for predictions."""

    def matrix(m) -> list[list[float | None]]:
        return [[_num(x) for x in row] for row in m]

    return {"names": list(res.names)} | {kind: matrix(getattr(res.cov, kind)) for kind in ("robust", "hessian", "bhhh")}


def write_fit_outputs(run: RunFolder, res: FitResult, record: dict) -> None:
    """estimates.csv, summary.txt and covariance.json, then results.json last (it marks the run complete)."""
    run.write_text("estimates.csv", res.estimates.to_csv(float_format="%.12g"))
    run.write_json(COVARIANCE, covariance_record(res))
    run.write_text("summary.txt", res.summary() + "\n")
    run.finish(record)

"""Biogeme's side of the peer benchmark: the Optima h04 hybrid choice model, estimated with Biogeme 3.3.5.

The model is the one of gradfit's ``examples/optima/h04.yaml``, which follows Biogeme 3.3.4's example
``docs/source/examples/hybrid_choice_models/plot_h04_mode_lv_gauss_simult.py`` and the modules it imports
(``optima.py``, ``one_latent_variable_spec.py``, ``likert_spec.py``, ``choice_latent_variables.py``): one
latent variable, ``car_centric_attitude``, with a linear structural equation and a normal error; nine
Gaussian measurement equations (responses 6 and -1 contribute a factor 1); a logit over public transport,
car and slow modes in which the latent variable enters the car utility; the product of the measurement and
choice likelihoods integrated by Monte Carlo with NORMAL_MLHS_ANTI draws. It is written here with plain
Biogeme expressions (``Beta``, ``Draws``, ``MonteCarlo``), not with ``biogeme.latent_variables``, so that the
whole model is visible in one file; the expressions are the ones that builder produces (positive parameters
as ``exp(Beta('<name>_log'))``, the same parameter names, the same start values).

Run it with the Biogeme environment (``benchmarks/peers/setup.sh`` creates it), not gradfit's::

    benchmarks/peers/.venv-biogeme/bin/python benchmarks/peers/biogeme_h04.py --draws 50 --out /tmp/b.json

``--evaluate-at FILE`` skips the estimation and only evaluates the log-likelihood, with the same draws (same
``--draws`` and ``--seed``), at the parameter vectors of FILE: a JSON object ``{label: {name: value}}`` in
Biogeme's parameterisation (``*_sigma_log``). Biogeme writes its report files (.html, .yaml, .iter,
biogeme.toml) into its working directory: the script runs in a temporary directory that is deleted
afterwards, or in ``--workdir`` to keep them. Exit codes: 0 done, 2 bad options or input.
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO / "examples" / "optima" / "optima.dat"
MODEL_NAME = "biogeme_h04"

LATENT = "car_centric_attitude"
STRUCTURAL_VARIABLES = [
    "top_manager",
    "car_oriented_parents",
    "high_education",
    "low_education",
    "used_to_go_to_school_by_car",
]
# likert_spec.py's order; Envir01 is the reference indicator (intercept 0, loading -1).
INDICATORS = ["Envir01", "Envir02", "Envir06", "Mobil03", "Mobil05", "Mobil08", "Mobil09", "Mobil10", "LifSty07"]
REFERENCE_INDICATOR = "Envir01"
NEUTRAL_LABELS = (6, -1)
SIGMA_START = 10.0  # natural scale: every sigma, structural and measurement, starts at 10


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(description="Estimate the Optima h04 hybrid choice model with Biogeme (peer benchmark).")
    p.add_argument("--draws", type=int, required=True, help="Monte Carlo draws per observation (even).")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write.")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="optima.dat (default: %(default)s).")
    p.add_argument("--seed", type=int, default=1, help="Biogeme's draw seed (default 1; 0 = a new seed every run).")
    p.add_argument("--max-iterations", type=int, default=5000, help="Iteration limit (default 5000, as the example).")
    p.add_argument("--evaluate-at", type=Path, help="Only evaluate the LL at these parameters: {label: {name: value}}.")
    p.add_argument("--workdir", type=Path, help="Run here and keep Biogeme's files (default: a temporary directory).")
    p.add_argument("--quiet", action="store_true", help="Only warnings from Biogeme (default: its INFO log).")
    args = p.parse_args(argv)
    if args.draws < 2 or args.draws % 2:
        p.error(f"--draws {args.draws}: must be an even number >= 2 (antithetic draws come in pairs)")
    if args.seed < 0:
        p.error(f"--seed {args.seed}: must be >= 0")
    if args.max_iterations < 1:
        p.error(f"--max-iterations {args.max_iterations}: must be >= 1")
    if not args.data.is_file():
        p.error(f"--data {args.data}: no such file")
    if args.evaluate_at is not None and not args.evaluate_at.is_file():
        p.error(f"--evaluate-at {args.evaluate_at}: no such file")
    args.data = args.data.resolve()
    args.out = args.out.resolve()
    if args.evaluate_at is not None:
        args.evaluate_at = args.evaluate_at.resolve()
    if args.workdir is not None:
        args.workdir = args.workdir.resolve()
    return args


def read_optima(path: Path):
    """The rows and derived columns of optima.py's read_data(): 889 of 2265 rows."""
    import pandas as pd

    df = pd.read_csv(path, sep="\t")
    keep = (
        (df["Choice"] != -1)
        & df["OccupStat"].isin([1, 2])  # workers
        & (df["NbTrajects"] != 1)  # tours of more than one trip
        & (df["TimePT"] != 0)
        & (df["TimeCar"] != 0)
        & (df["distance_km"] != 0)
        & ~((df["Choice"] == 1) & (df["CarAvail"] == 3))  # car chosen although not available
        & (df["NbCar"] != -1)  # known number of cars
    )
    df = df[keep].copy()
    derived = {
        "top_manager": df["SocioProfCat"] == 1,
        "car_oriented_parents": df["FreqCarPar"] == 4,
        "high_education": df["Education"] >= 6,
        "low_education": df["Education"] <= 3,
        "used_to_go_to_school_by_car": df["ModeToSchool"] == 1,
        "TimePT_hour": df["TimePT"] / 60,
        "TimeCar_hour": df["TimeCar"] / 60,
        "work_trip": df["TripPurpose"] == 1,
        "other_trip_purposes": df["TripPurpose"] != 1,
        "car_is_available": df["CarAvail"] != 3,
    }
    for name, column in derived.items():
        df[name] = column.astype(float)
    return df


def build_loglikelihood():
    """The log of the simulated likelihood of one observation, as a Biogeme expression."""
    from biogeme.distributions import normalpdf
    from biogeme.expressions import Beta, Draws, Elem, MonteCarlo, Variable, exp, log
    from biogeme.models import logit

    def positive(name: str):
        # Biogeme's LOG_EXP positivity: the estimated parameter is log(sigma).
        return exp(Beta(f"{name}_log", math.log(SIGMA_START), None, None, 0))

    # Structural equation: x* = intercept + sum_k beta_k z_k + sigma * xi, xi ~ N(0, 1).
    prefix = f"struct_{LATENT}"
    latent = Beta(f"{prefix}_intercept", 0.0, None, None, 0)
    for variable in STRUCTURAL_VARIABLES:
        latent = latent + Beta(f"{prefix}_{variable}", 0.0, None, None, 0) * Variable(variable)
    latent = latent + positive(f"{prefix}_sigma") * Draws(f"{prefix}_draws", "NORMAL_MLHS_ANTI")

    # Gaussian measurement equations: I = intercept + loading * x* + sigma * e, e ~ N(0, 1).
    measurement = None
    for indicator in INDICATORS:
        if indicator == REFERENCE_INDICATOR:
            mean = -1.0 * latent
        else:
            intercept = Beta(f"measurement_intercept_{indicator}", 0.0, None, None, 0)
            loading = Beta(f"measurement_coefficient_{LATENT}_{indicator}", 0.0, None, None, 0)
            mean = intercept + loading * latent
        sigma = positive(f"measurement_{indicator}_sigma")
        response = Variable(indicator)
        density = normalpdf((response - mean) / sigma) / sigma
        neutral = (response == NEUTRAL_LABELS[0]) | (response == NEUTRAL_LABELS[1])
        term = Elem({0: density, 1: 1.0}, neutral)
        measurement = term if measurement is None else measurement * term

    # Choice model (choice_latent_variables.py): cost coefficient fixed to -1, a scale on every utility.
    beta_cost = Beta("choice_beta_cost", -1.0, None, 0, 1)
    scale = Beta("choice_scale_parameter", 1.0, 0.0001, None, 0)
    asc_pt = Beta("choice_asc_pt", 0.0, None, None, 0)
    asc_car = Beta("choice_asc_car", 0.0, None, None, 0)
    beta_time_pt = Beta("choice_beta_time_pt", 0.0, None, 0, 0)
    beta_time_car = Beta("choice_beta_time_car", 0.0, None, 0, 0)
    beta_latent_car = Beta(f"choice_beta_{LATENT}_car", 0.0, None, None, 0)
    beta_dist_work = Beta("choice_beta_dist_work", 0.0, None, 0, 0)
    beta_dist_other = Beta("choice_beta_dist_other_purposes", 0.0, None, 0, 0)
    utilities = {
        0: scale * (asc_pt + beta_time_pt * Variable("TimePT_hour") + beta_cost * Variable("MarginalCostPT")),
        1: scale
        * (
            asc_car
            + beta_time_car * Variable("TimeCar_hour")
            + beta_cost * Variable("CostCarCHF")
            + beta_latent_car * latent
        ),
        2: scale
        * (beta_dist_work * Variable("work_trip") + beta_dist_other * Variable("other_trip_purposes"))
        * Variable("distance_km"),
    }
    availability = {0: 1, 1: Variable("car_is_available"), 2: 1}
    choice = logit(utilities, availability, Variable("Choice"))

    return log(MonteCarlo(measurement * choice))


def _seconds(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _plain(value):
    """JSON-safe version of an optimisation message."""
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


class _PhaseClock(logging.Handler):
    """Notes when Biogeme logs the messages that start and end its phases (to split estimate()'s time)."""

    MARKS = {
        "optimisation_start": "Optimization algorithm:",
        "optimisation_end": "Optimization algorithm has",
        "bhhh_start": "Calculate final gradient and BHHH",
    }

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.times: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for mark, prefix in self.MARKS.items():
            if mark not in self.times and message.startswith(prefix):
                self.times[mark] = time.perf_counter()


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    evaluate_at = None
    if args.evaluate_at is not None:
        try:
            evaluate_at = json.loads(args.evaluate_at.read_text())
        except json.JSONDecodeError as exc:
            print(f"error: --evaluate-at {args.evaluate_at}: not JSON ({exc})", file=sys.stderr)
            return 2
        if not isinstance(evaluate_at, dict) or not all(isinstance(v, dict) for v in evaluate_at.values()):
            print(f"error: --evaluate-at {args.evaluate_at}: expected {{label: {{name: value}}}}", file=sys.stderr)
            return 2

    t_import = time.perf_counter()
    import biogeme.biogeme_logging as blog
    import biogeme.database as db
    from biogeme.biogeme import BIOGEME
    from biogeme.version import get_version

    import_s = time.perf_counter() - t_import
    blog.get_screen_logger(level=blog.WARNING if args.quiet else blog.INFO)
    clock = _PhaseClock()
    for logger in blog.loggers:
        logger.addHandler(clock)

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        workdir_cm = contextlib.nullcontext(str(args.workdir))
    else:
        workdir_cm = tempfile.TemporaryDirectory(prefix="biogeme_h04_")
    previous_cwd = os.getcwd()
    with workdir_cm as workdir:
        os.chdir(workdir)
        try:
            t_build = time.perf_counter()
            df = read_optima(args.data)
            database = db.Database(name="optima", dataframe=df)
            loglike = build_loglikelihood()
            bio = BIOGEME(
                database,
                loglike,
                number_of_draws=args.draws,
                calculating_second_derivatives="never",
                max_iterations=args.max_iterations,
                seed=args.seed,
            )
            bio.model_name = MODEL_NAME
            build_s = time.perf_counter() - t_build
            free_names = list(bio.expressions_registry.free_betas_names)

            record = {
                "tool": "biogeme",
                "biogeme_version": get_version(),
                "python": platform.python_version(),
                "jax": _package_version("jax"),
                "numpy": _package_version("numpy"),
                "model": "Optima h04 (examples/optima/h04.yaml)",
                "data": str(args.data),
                "draws": args.draws,
                "draw_type": "NORMAL_MLHS_ANTI",
                "seed": args.seed,
                "observations": int(len(df)),
                "free_parameters": len(free_names),
            }
            if evaluate_at is not None:
                unknown = {label: sorted(set(p) ^ set(free_names)) for label, p in evaluate_at.items()}
                unknown = {label: names for label, names in unknown.items() if names}
                if unknown:
                    label, names = next(iter(unknown.items()))
                    print(
                        f"error: --evaluate-at {args.evaluate_at}: '{label}' does not match Biogeme's free "
                        f"parameters (unknown or missing: {', '.join(names[:5])})",
                        file=sys.stderr,
                    )
                    return 2
                t_eval = time.perf_counter()
                values = {}
                for label, params in evaluate_at.items():
                    out = bio.function_evaluator.evaluate(
                        the_betas={k: float(v) for k, v in params.items()}, gradient=False, hessian=False, bhhh=False
                    )
                    values[label] = float(out.function)
                record |= {
                    "mode": "evaluate",
                    "loglikelihood_at": values,
                    "timings": {
                        "import_s": import_s,
                        "build_s": build_s,
                        "evaluate_s": time.perf_counter() - t_eval,
                        "script_wall_s": time.perf_counter() - _T_START,
                    },
                }
                _write_json(args.out, record)
                return 0

            t_est = time.perf_counter()
            results = bio.estimate()
            t_end = time.perf_counter()
            estimate_s = t_end - t_est
            marks = clock.times
            raw = results.raw_estimation_results
            messages = {k: _plain(v) for k, v in raw.optimization_messages.items()}
            iterations = messages.get("Number of iterations")
            evaluations = messages.get("Number of function evaluations")
            files = sorted(p.name for p in Path(workdir).iterdir())
            record |= {
                "mode": "estimate",
                "converged": bool(raw.convergence),
                "initial_loglikelihood": float(raw.initial_log_likelihood),
                "final_loglikelihood": float(raw.final_log_likelihood),
                "iterations": int(iterations) if iterations is not None else None,
                "function_evaluations": int(evaluations) if evaluations is not None else None,
                "gradient_evaluations": messages.get("Number of gradient evaluations"),
                "termination": messages.get("Cause of termination"),
                "algorithm": messages.get("Algorithm"),
                "optimization_messages": messages,
                "timings": {
                    # Reported by Biogeme: the optimiser's own clock, and the generation of the draws.
                    "optimization_s": _seconds(raw.optimization_messages.get("Optimization time")),
                    "draws_generation_s": _seconds(raw.draws_processing_time),
                    # Our clocks: BIOGEME.estimate() end to end (draws, JAX compilation, initial LL,
                    # optimisation, final gradient and BHHH, report files), importing Biogeme, building
                    # the data and the expressions, and the whole script from its first line.
                    "estimate_s": estimate_s,
                    # Split of estimate() by the times of Biogeme's log messages: before the optimiser starts
                    # (draws, compilation and evaluation of the initial LL), and after it stops (final LL,
                    # compilation and evaluation of the final gradient and BHHH, report files).
                    "before_optimisation_s": marks["optimisation_start"] - t_est
                    if "optimisation_start" in marks
                    else None,
                    "after_optimisation_s": t_end - marks["optimisation_end"] if "optimisation_end" in marks else None,
                    "bhhh_and_reports_s": t_end - marks["bhhh_start"] if "bhhh_start" in marks else None,
                    "import_s": import_s,
                    "build_s": build_s,
                    "script_wall_s": time.perf_counter() - _T_START,
                },
                "estimates": {name: float(value) for name, value in results.get_beta_values().items()},
                "workdir": str(args.workdir) if args.workdir is not None else None,
                "workdir_files": files,
            }
            _write_json(args.out, record)
            return 0
        finally:
            os.chdir(previous_cwd)


if __name__ == "__main__":
    sys.exit(main())

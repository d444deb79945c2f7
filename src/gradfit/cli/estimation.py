"""The work behind `gradfit fit`: resolve the spec, build the model, run the fit inside a run folder.

Order matters for "never a half-written output that looks complete": everything that can fail on the user's
input (spec, overrides, data, model building, the runs folder) happens before or while the run folder is
created; a user error during the fit removes the new folder; results.json is written last.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from gradfit.errors import GradfitError
from gradfit.runs import (
    CHECKPOINT,
    CONFIG,
    RunError,
    RunFolder,
    RunRecorder,
    create_run,
    file_sha256,
    git_commit,
    resolve_run,
    results_record,
    truncate_history,
    write_fit_outputs,
)

COLUMNS = ("iteration", "loglikelihood", "gradient_norm", "relative_gradient", "step", "elapsed")


def _first_difference(a, b, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return f"{path}{key}"
            found = _first_difference(a[key], b[key], f"{path}{key}.")
            if found:
                return found
        return None
    return None if a == b else path.rstrip(".") or "(top level)"


def _resume_state(run: RunFolder, config: dict) -> dict:
    if run.complete:
        raise RunError(f"--resume {run.path}: this run is complete (results.json exists); nothing to resume")
    saved = run.read_config()
    diff = _first_difference(config, saved)
    if diff is not None:
        raise RunError(
            f"--resume {run.path}: the spec (with --set) differs from the run's config.yaml at {diff}; "
            "resume with the same spec and options, or start a new run"
        )
    if not run.file(CHECKPOINT).is_file():
        raise RunError(f"--resume {run.path}: no checkpoint was written before the run stopped; start a new run")
    return run.read_json(CHECKPOINT)


def run_fit(
    spec_path: Path,
    overrides: list[str],
    runs_dir: Path | None,
    name: str | None,
    resume: Path | None,
    checkpoint_seconds: float,
) -> tuple[RunFolder, dict, str]:
    import gradfit
    from gradfit.cli.progress import ProgressView
    from gradfit.io.overrides import apply_overrides

    t_start = time.perf_counter()
    spec = apply_overrides(gradfit.read_spec(spec_path), overrides, source=str(spec_path))
    config = spec.model_dump(mode="json")
    state = None
    if resume is not None:
        run = resolve_run(resume)
        state = _resume_state(run, config)
    model = gradfit.Model(spec)
    start = None
    if state is not None:
        try:
            start = {n: float(state["params"][n]) for n in model.parameter_names}
        except (KeyError, TypeError, ValueError):
            raise RunError(f"--resume {run.path}: its checkpoint does not hold every free parameter") from None
        truncate_history(run, state["iteration"])
    else:
        run = create_run(runs_dir if runs_dir is not None else spec_path.parent / "runs", spec.name, name)
        run.write_text(CONFIG, yaml.safe_dump(config, sort_keys=False, width=120))
    offset = state["iteration"] if state else 0
    elapsed0 = state.get("elapsed", 0.0) if state else 0.0
    recorder = RunRecorder(run, COLUMNS, flush_every=50, flush_seconds=checkpoint_seconds)
    head = (
        f"{spec.name}: {model.n_individuals} individuals, {model.n_observations} observations, "
        f"{len(model.parameter_names)} free parameters, {spec.integration.type} n={spec.integration.n}, "
        f"{spec.estimation.optimizer}, device {model.placement.describe()}"
    )
    recorder.log(f"{'resumed at iteration ' + str(offset) if state else 'started'}: {head}")
    recorder.log(f"spec {Path(spec_path).resolve()}" + (f", --set {' '.join(overrides)}" if overrides else ""))
    recorder.flush()

    with ProgressView(every=10) as view:
        view.message(f"{head}\nrun folder {run.path}\ncompiling...")

        def progress(it) -> None:
            if state is not None and it.iteration == 0:
                return  # the checkpoint itself, already in the history
            k = offset + it.iteration
            line = (
                f"iter {k:5d}  LL {it.loglikelihood:16.6f}  |g| {it.gradient_norm:10.3e}  "
                f"rel.g {it.relative_gradient:9.2e}  step {it.step:9.2e}  {elapsed0 + it.elapsed:7.2f}s"
            )
            view.update(k, line)
            if k % 10 == 0:
                recorder.log(line)
            recorder.row(
                {c: getattr(it, c) for c in COLUMNS} | {"iteration": k, "elapsed": elapsed0 + it.elapsed},
                checkpoint={
                    "iteration": k,
                    "loglikelihood": it.loglikelihood,
                    "elapsed": elapsed0 + it.elapsed,
                    "params": dict(zip(model.parameter_names, map(float, it.theta), strict=True)),
                },
            )

        try:
            res = model.fit(progress=progress, start=start)
        except GradfitError as exc:
            if state is None:
                run.discard()
            else:
                recorder.log(f"failed: {exc}")
                recorder.flush()
            raise
        except BaseException as exc:  # interrupted or crashed: keep what is there for --resume
            recorder.log(f"stopped: {type(exc).__name__}: {exc}")
            recorder.flush()
            raise
        recorder.flush()
        view.message(f"{'converged' if res.converged else 'NOT converged'}: {res.message}")

    record = results_record(
        res,
        data_sha256=file_sha256(spec.data.path),
        git_commit=git_commit(Path(spec_path).resolve().parent),
        extra={
            "iterations": offset + res.iterations,
            # the fit itself started from the checkpoint; the run started from the spec's start values
            **({"initial_loglikelihood": model.loglikelihood()} if state else {}),
            "resumed_from_iteration": offset if state else None,
            "spec": str(Path(spec_path).resolve()),
            "overrides": list(overrides),
            "wall_s": time.perf_counter() - t_start,
        },
    )
    recorder.log(f"finished: LL {res.loglikelihood:.6f}, converged {res.converged}")
    recorder.flush()
    write_fit_outputs(run, res, record)
    return run, record, res.summary()

"""Who runs which combination: Optuna's storage as the shared, crash-safe queue of a sweep.

Every combination is enqueued once, as a WAITING trial, by the one process that creates the study (creating
a study is atomic in the database: a second process gets DuplicatedStudyError and waits for the queue).
A worker takes a trial with `study.ask()`, which moves one WAITING trial to RUNNING under a row lock, so two
workers never get the same one; it keeps a heartbeat while the fit runs. A worker that dies (SIGKILL, a
crash) stops beating: after the grace period its trial is marked failed and a copy goes back to the queue
(`RetryHeartbeatStaleTrialCallback`), so a resumed or surviving worker runs it; a Ctrl-C puts it back at once. A
finished run (COMPLETE, or FAIL with the user error it stopped on) is never run again.

SQLite in the sweep folder needs nothing started; a PostgreSQL URL lets workers on several machines share one
sweep. Compute only: the caller passes `run_one` (fit one combination, return its results record) and
`log` (where progress lines go).
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from gradfit.errors import GradfitError
from gradfit.sweep.spec import Combination

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Heartbeats are marked experimental, and meant for study.optimize; gradfit drives trials with ask/tell and
# beats itself (_Heartbeat), which is what those warnings are about.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used", category=UserWarning)

HEARTBEAT_S = 10.0  # a running trial's heartbeat; it is presumed dead after GRACE_FACTOR heartbeats
GRACE_FACTOR = 3
QUEUE_WAIT_S = 120.0  # how long a second process waits for the first to enqueue the combinations


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{(folder / 'sweep.db').resolve()}"


def open_study(url: str, name: str, combos: list[Combination], heartbeat_s: float = HEARTBEAT_S) -> optuna.Study:
    """The sweep's study, created and filled with every combination if it does not exist yet."""
    try:
        storage = RDBStorage(
            url,
            heartbeat_interval=max(1, math.ceil(heartbeat_s)),
            grace_period=max(2, math.ceil(GRACE_FACTOR * heartbeat_s)),
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=None),
            engine_kwargs={"pool_pre_ping": True},
        )
    except Exception as exc:  # a bad URL, a missing driver, a server that does not answer
        raise GradfitError(f"--storage {url}: cannot open the sweep storage ({type(exc).__name__}: {exc})") from None
    keys = [c.key for c in combos]
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        _wait_for_queue(study, keys)
        return study
    for c in combos:
        study.enqueue_trial({}, user_attrs={"key": c.key, "combination": c.model_dump(mode="json")})
    study.set_user_attr("keys", keys)  # last: its presence says the queue is complete
    return study


def _wait_for_queue(study: optuna.Study, keys: list[str]) -> None:
    deadline = time.monotonic() + QUEUE_WAIT_S
    while "keys" not in study.user_attrs:
        if time.monotonic() > deadline:
            raise GradfitError(
                f"sweep {study.study_name}: its storage holds a study whose runs were never all queued (a "
                "process stopped while queueing); delete the sweep's storage or use another sweep name"
            )
        time.sleep(0.5)
    if study.user_attrs["keys"] != keys:
        raise GradfitError(
            f"sweep {study.study_name}: the sweep file no longer gives the runs this sweep started with (axes, "
            "starts or base changed); give the sweep a new name to start another one"
        )


class _Heartbeat:
    """Records the trial's heartbeat every interval until stopped (Optuna's own thread runs only inside
    study.optimize, and a fit is not an objective function)."""

    def __init__(self, study: optuna.Study, trial_id: int, every: float) -> None:
        self._stop = threading.Event()
        storage = study._storage

        def beat() -> None:
            while not self._stop.wait(every):
                storage.record_heartbeat(trial_id)

        storage.record_heartbeat(trial_id)
        self._thread = threading.Thread(target=beat, daemon=True, name="gradfit-sweep-heartbeat")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _counts(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    return waiting, len(trials) - waiting


def work(
    study: optuna.Study,
    run_one: Callable[[Combination, str], dict],
    log: Callable[[str], None],
    max_runs: int | None = None,
    heartbeat_s: float = HEARTBEAT_S,
) -> int:
    """Run queued combinations until none is left (or `max_runs` are done); returns how many this worker ran.

    While others still run the last combinations, the worker waits: one of them may have died, and its
    combination comes back to the queue once its heartbeat is overdue.
    """
    done = 0
    while max_runs is None or done < max_runs:
        optuna.storages.fail_stale_trials(study)  # dead workers' runs back to the queue
        waiting, running = _counts(study)
        if not waiting:
            if not running:
                return done
            time.sleep(heartbeat_s / 2)
            continue
        trial = study.ask()
        attrs = study._storage.get_trial(trial._trial_id).user_attrs
        if "combination" not in attrs:
            # another worker took the last queued run between the count and ask(): ask() made a fresh trial
            study.tell(trial, state=TrialState.PRUNED)
            continue
        combo = Combination.model_validate(attrs["combination"])
        log(f"run {trial.number}: {combo.key}")
        beat = _Heartbeat(study, trial._trial_id, heartbeat_s)
        try:
            record = run_one(combo, f"t{trial.number:04d}")
        except GradfitError as exc:  # this combination cannot be fitted (e.g. a start where LL is not finite)
            beat.stop()
            trial.set_user_attr("error", str(exc))
            study.tell(trial, state=TrialState.FAIL)
            log(f"run {trial.number}: {combo.key}: failed: {exc}")
            done += 1
            continue
        except BaseException:  # interrupted: the combination goes back to the queue for a resumed sweep
            beat.stop()
            trial.set_user_attr("interrupted", True)
            study.tell(trial, state=TrialState.FAIL)
            study.enqueue_trial({}, user_attrs={"key": combo.key, "combination": attrs["combination"]})
            raise
        beat.stop()
        trial.set_user_attr("record", record)
        study.tell(trial, float(record["criterion"]) if math.isfinite(record["criterion"]) else float("-inf"))
        value = record.get("criterion_value")
        shown = f"{value:.4f}" if isinstance(value, int | float) else str(value)
        log(f"run {trial.number}: {combo.key}: {record.get('criterion_name', 'criterion')} {shown}")
        done += 1
    return done


_NOT_METRICS = {
    "criterion",
    "criterion_name",
    "criterion_value",
    "wall_s",
    "run",
    "estimates",
    "converged",
    "iterations",
}


def finished_rows(study: optuna.Study, metrics: tuple[str, ...] = ("loglikelihood", "aic", "bic")) -> list[dict]:
    """One row per finished combination (completed, or failed on a user error), in trial order.

    `metrics` are the workload's criteria: every row has them (NaN for a failed run), next to whatever
    other numbers the runs recorded.
    """
    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        combo = t.user_attrs.get("combination")
        stopped = t.user_attrs.get("interrupted") or (t.state == TrialState.FAIL and "error" not in t.user_attrs)
        if combo is None or stopped:
            continue  # a spurious trial, or a run stopped before it finished (it was queued again)
        record = t.user_attrs.get("record", {})
        rows.append(
            {
                "trial": t.number,
                "key": combo["key"],
                "axes": combo["axes"],
                "start": combo["start"],
                "state": "complete" if t.state == TrialState.COMPLETE else "failed",
                "error": t.user_attrs.get("error"),
                **{k: float("nan") for k in (*metrics, "criterion")},
                **{k: v for k, v in record.items() if k not in _NOT_METRICS},
                "criterion": record.get("criterion", float("nan")),
                "converged": record.get("converged", False),
                "iterations": record.get("iterations"),
                "time_s": record.get("wall_s", float("nan")),
                "run": record.get("run"),
                "estimates": {n: _float(e["value"]) for n, e in record.get("estimates", {}).items()},
                "std_errors": {n: _float(e["std_err"]) for n, e in record.get("estimates", {}).items()},
            }
        )
    return rows


def _float(x) -> float:
    return float("nan") if x is None else float(x)

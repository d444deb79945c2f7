"""Run folders, their metrics and checkpoints: one layer for every workload (ICLV fits now, training later)."""

from gradfit.runs.folder import (
    CHECKPOINT,
    CONFIG,
    LATEST,
    RESULTS,
    RunError,
    RunFolder,
    create_run,
    list_runs,
    point_latest,
    resolve_run,
)
from gradfit.runs.outputs import COVARIANCE, results_record, write_fit_outputs
from gradfit.runs.record import HISTORY, LOG, RunRecorder, file_sha256, git_commit, package_versions, truncate_history

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "COVARIANCE",
    "HISTORY",
    "LATEST",
    "LOG",
    "RESULTS",
    "RunError",
    "RunFolder",
    "RunRecorder",
    "create_run",
    "file_sha256",
    "git_commit",
    "list_runs",
    "package_versions",
    "point_latest",
    "resolve_run",
    "results_record",
    "truncate_history",
    "write_fit_outputs",
]

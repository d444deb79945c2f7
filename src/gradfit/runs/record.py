"""What a run writes while it runs (history, log, checkpoint) and at the end (results, estimates, summary).

The history is buffered in memory and appended to history.csv every `flush_every` rows or `flush_seconds`
seconds, and at the end: never a rewrite of the file per iteration. The checkpoint (small: the current
parameters) is replaced atomically at each flush, so that after a kill the history on disk never runs ahead
of a checkpoint by more than one flush.
"""

from __future__ import annotations

import csv
import hashlib
import io
import platform
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path

from gradfit._version import __version__
from gradfit.runs.folder import CHECKPOINT, RunFolder

HISTORY = "history.csv"
LOG = "log.txt"


class RunRecorder:
    """Buffered metrics rows (any workload's columns), log lines and checkpoints for one run folder.

    `history` names the CSV the rows go to (history.csv by default; a workload may keep a second recorder for
    finer-grained rows, e.g. the biLM's metrics.csv every N steps).
    """

    def __init__(
        self,
        run: RunFolder,
        columns: Sequence[str],
        flush_every: int = 50,
        flush_seconds: float = 2.0,
        history: str = HISTORY,
    ):
        self.run, self.columns, self.history = run, tuple(columns), history
        self.flush_every, self.flush_seconds = flush_every, flush_seconds
        self._rows: list[dict] = []
        self._log: list[str] = []
        self._last_flush = time.monotonic()
        self._checkpoint: dict | None = None
        path = run.file(history)
        if not path.exists():
            path.write_text(",".join(self.columns) + "\n", encoding="utf-8")

    def log(self, message: str) -> None:
        self._log.append(f"{datetime.now().isoformat(timespec='seconds')}  {message}\n")

    def row(self, values: dict, checkpoint: dict | None = None) -> None:
        """Buffer one metrics row; `checkpoint` (if given) is the state to resume from after this row."""
        self._rows.append(values)
        if checkpoint is not None:
            self._checkpoint = checkpoint
        due = len(self._rows) >= self.flush_every or time.monotonic() - self._last_flush >= self.flush_seconds
        if due:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
            writer.writerows(self._rows)
            with open(self.run.file(self.history), "a", encoding="utf-8") as fh:
                fh.write(buf.getvalue())
            self._rows.clear()
        if self._log:
            with open(self.run.file(LOG), "a", encoding="utf-8") as fh:
                fh.writelines(self._log)
            self._log.clear()
        if self._checkpoint is not None:
            self.run.write_json(CHECKPOINT, self._checkpoint)
            self._checkpoint = None
        self._last_flush = time.monotonic()


def truncate_history(run: RunFolder, after: int) -> None:
    """Drop history rows with iteration > `after` (rows written after the last checkpoint), on resume."""
    path = run.file(HISTORY)
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if not lines:
        return
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.strip() and int(float(ln.split(",", 1)[0])) <= after]
    path.write_text("".join(kept), encoding="utf-8")


def file_sha256(path: str | Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def git_commit(folder: str | Path) -> str | None:
    """The commit checked out in the git repository holding `folder`, if any (e.g. the user's model repo)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions(names: Sequence[str] = ("gradfit", "jax", "jaxlib", "numpy", "scipy", "pandas", "pydantic")):
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "gradfit":  # run from a source tree that is not installed (PYTHONPATH): its own version
                out[name] = __version__
    return out

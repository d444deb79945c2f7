"""Versioned run folders: runs/<model>/<YYYYmmdd-HHMMSS>[-<name>]/, one per run, shared by every workload.

A run folder is created when the work starts (so that a checkpoint and the history can be written while it
runs) and is complete once `results.json` exists: that file is written last, atomically, and only then does
`<model>/latest` point at the folder. An interrupted run keeps its checkpoint and partial history and is listed
as incomplete; a run that fails on the user's input is removed (`discard`), leaving nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from gradfit.errors import GradfitError
from gradfit.io.files import atomic_write_text

RESULTS = "results.json"
CONFIG = "config.yaml"
CHECKPOINT = "checkpoint.json"
LATEST = "latest"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class RunError(GradfitError):
    """A run folder that cannot be created, found or resumed."""


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @property
    def model_dir(self) -> Path:
        return self.path.parent

    @property
    def complete(self) -> bool:
        return (self.path / RESULTS).is_file()

    def file(self, name: str) -> Path:
        return self.path / name

    def write_text(self, name: str, text: str) -> None:
        atomic_write_text(self.path / name, text)

    def write_json(self, name: str, data: dict) -> None:
        self.write_text(name, json.dumps(data, indent=1, allow_nan=True) + "\n")

    def read_json(self, name: str) -> dict:
        try:
            return json.loads((self.path / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunError(f"{self.path}: no {name} in this run folder") from None
        except (OSError, ValueError) as exc:
            raise RunError(f"{self.path / name}: unreadable ({exc}); the run folder is damaged") from None

    def read_config(self) -> object:
        """The run's config.yaml, parsed (the spec or config with --set applied)."""
        try:
            return yaml.safe_load((self.path / CONFIG).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunError(f"{self.path}: no {CONFIG} in this run folder") from None
        except (OSError, yaml.YAMLError) as exc:
            raise RunError(f"{self.path / CONFIG}: unreadable ({exc}); the run folder is damaged") from None

    def finish(self, results: dict) -> None:
        """Write results.json (the completeness mark) and point <model>/latest here."""
        self.write_json(RESULTS, results)
        point_latest(self.model_dir, self.path.name)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        try:  # the model folder too, if this run was its only content
            self.model_dir.rmdir()
        except OSError:
            pass


def create_run(runs_dir: Path, model: str, name: str | None = None, now: datetime | None = None) -> RunFolder:
    """A new, empty run folder; the runs folder is created as needed and must be writable."""
    if name is not None and not _NAME.match(name):
        raise RunError(f"--name {name!r}: use letters, digits, '_', '.' and '-' only")
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = stamp + (f"-{name}" if name else "")
    model_dir = Path(runs_dir) / model
    created_model_dir = not model_dir.exists()
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        for k in range(1, 1000):  # two runs in the same second get -2, -3, ...
            path = model_dir / (base if k == 1 else f"{base}-{k}")
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        probe = path / ".write-test"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        if created_model_dir:
            shutil.rmtree(model_dir, ignore_errors=True)
        raise RunError(
            f"--runs-dir {runs_dir}: cannot create a run folder there ({exc.strerror or exc}); "
            "choose a writable folder with --runs-dir"
        ) from None
    return RunFolder(path)


def point_latest(model_dir: Path, target: str) -> None:
    """<model>/latest -> target, replaced atomically (a symlink; a one-line text file where links fail)."""
    link = model_dir / LATEST
    tmp = model_dir / f".{LATEST}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError:
        atomic_write_text(link, target + "\n")


def resolve_run(run: str | Path) -> RunFolder:
    """A run folder from its path, a <model>/latest link or file, or <model> (its latest run)."""
    path = Path(run)
    if path.is_file() and path.name == LATEST:
        path = path.parent / path.read_text(encoding="utf-8").strip()
    elif path.is_dir() and (path / LATEST).exists() and not (path / CONFIG).exists():
        return resolve_run(path / LATEST)
    path = path.resolve() if path.exists() else path
    if not path.is_dir():
        raise RunError(f"{run}: no such run folder; `gradfit runs DIR` lists the runs")
    if not (path / CONFIG).is_file():
        raise RunError(f"{run}: not a gradfit run folder (no {CONFIG}); `gradfit runs DIR` lists the runs")
    return RunFolder(path)


def list_runs(runs_dir: Path) -> list[RunFolder]:
    """Every run folder under runs_dir (runs_dir/<model>/<run>/), oldest first within a model."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise RunError(f"{runs_dir}: no such runs folder; pass the folder given to `gradfit fit --runs-dir`")
    found = []
    for model_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.is_symlink()):
        for run in sorted(p for p in model_dir.iterdir() if p.is_dir() and not p.is_symlink()):
            if (run / CONFIG).is_file():
                found.append(RunFolder(run))
    return found

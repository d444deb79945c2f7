"""Run folders, their `latest` pointer, buffered history and checkpoints."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from gradfit.runs import (
    CHECKPOINT,
    CONFIG,
    HISTORY,
    LOG,
    RunError,
    RunRecorder,
    create_run,
    list_runs,
    resolve_run,
    truncate_history,
)

NOW = datetime(2026, 11, 23, 9, 8, 7)


def test_folder_name_stamp_suffix_and_collisions(tmp_path):
    a = create_run(tmp_path, "m", now=NOW)
    b = create_run(tmp_path, "m", now=NOW)
    c = create_run(tmp_path, "m", name="more-draws", now=NOW)
    assert a.path == tmp_path / "m" / "20261123-090807"
    assert b.path.name == "20261123-090807-2"  # same second: never the same folder
    assert c.path.name == "20261123-090807-more-draws"
    with pytest.raises(RunError, match="--name"):
        create_run(tmp_path, "m", name="a/b")


def test_complete_only_after_finish_and_latest_follows(tmp_path):
    first = create_run(tmp_path, "m", now=NOW)
    first.write_text(CONFIG, "name: m\n")
    assert not first.complete and not (tmp_path / "m" / "latest").exists()
    first.finish({"loglikelihood": -1.0})
    assert first.complete
    second = create_run(tmp_path, "m", name="x", now=NOW)
    second.write_text(CONFIG, "name: m\n")
    assert resolve_run(tmp_path / "m" / "latest").path == first.path  # the unfinished run is not `latest`
    second.finish({"loglikelihood": -0.5})
    assert resolve_run(tmp_path / "m" / "latest").path == second.path
    assert resolve_run(tmp_path / "m").path == second.path  # a model folder means its latest run
    assert [r.path.name for r in list_runs(tmp_path)] == [first.path.name, second.path.name]


def test_discard_leaves_nothing(tmp_path):
    run = create_run(tmp_path, "m", now=NOW)
    run.write_text(CONFIG, "x\n")
    run.discard()
    assert list(tmp_path.iterdir()) == []


def test_unwritable_runs_dir_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RunError) as err:
        create_run(blocker / "runs", "m")
    assert "--runs-dir" in str(err.value) and "writable" in str(err.value)


def test_resolve_run_errors(tmp_path):
    with pytest.raises(RunError, match="no such run folder"):
        resolve_run(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunError, match="not a gradfit run folder"):
        resolve_run(tmp_path / "plain")


def test_history_is_buffered_and_flushed_with_the_checkpoint(tmp_path):
    run = create_run(tmp_path, "m", now=NOW)
    rec = RunRecorder(run, ("iteration", "loglikelihood"), flush_every=5, flush_seconds=1e9)

    def rows():
        return run.file(HISTORY).read_text().splitlines()[1:]

    for k in range(4):
        rec.row({"iteration": k, "loglikelihood": -10.0 + k}, checkpoint={"iteration": k})
    assert rows() == [] and not run.file(CHECKPOINT).exists()  # nothing written per row
    rec.row({"iteration": 4, "loglikelihood": -6.0}, checkpoint={"iteration": 4})
    assert len(rows()) == 5 and json.loads(run.file(CHECKPOINT).read_text())["iteration"] == 4
    rec.log("hello")
    rec.row({"iteration": 5, "loglikelihood": -5.0})
    rec.flush()
    assert rows()[-1] == "5,-5.0" and "hello" in run.file(LOG).read_text()
    truncate_history(run, after=3)
    assert [r.split(",")[0] for r in rows()] == ["0", "1", "2", "3"]


def test_package_versions_name_gradfit_also_from_a_source_tree(monkeypatch):
    """A run's provenance has gradfit's version also where gradfit runs from a checkout on PYTHONPATH (no
    installed distribution, as on the GPU machines the benchmarks use)."""
    from importlib import metadata

    import gradfit
    from gradfit.runs.record import package_versions

    real = metadata.version

    def version(name):
        if name == "gradfit":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    out = package_versions()
    assert out["gradfit"] == gradfit.__version__
    assert out["numpy"] == real("numpy") and "python" in out
    assert "no_such_package" not in package_versions(("no_such_package",))

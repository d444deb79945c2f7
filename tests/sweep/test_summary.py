"""Sweep summaries against hand-built rows whose answers are known."""

from __future__ import annotations

import json
import math

import pytest

from gradfit.errors import GradfitError
from gradfit.sweep.summary import (
    draw_study,
    draw_study_plot,
    format_top,
    multistart,
    rank,
    write_summaries,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def row(trial, ll, *, axes=None, start=None, est=None, se=None, converged=True, criterion=None):
    axes = axes or {}
    key = "|".join([*(f"{k}={v}" for k, v in axes.items()), *([] if start is None else [f"start={start}"])])
    return {
        "trial": trial,
        "key": key,
        "axes": axes,
        "start": start,
        "loglikelihood": ll,
        "aic": -2 * ll + 6,
        "bic": -2 * ll + 10,
        "criterion": ll if criterion is None else criterion,
        "converged": converged,
        "iterations": 10 + trial,
        "time_s": 1.5 * trial,
        "run": f"runs/t{trial:03d}",
        "estimates": est or {"a": 1.0, "b": 2.0},
        "std_errors": se or {"a": 0.1, "b": 0.2},
    }


def test_rank_puts_best_first_nan_last_and_ties_by_trial():
    rows = [row(0, -10.0), row(1, math.nan), row(2, -5.0), row(3, -10.0), row(4, -7.0, criterion=math.inf)]
    assert [r["trial"] for r in rank(rows)] == [2, 0, 3, 1, 4]
    assert rank([]) == []


def multistart_rows():
    # five starts, three optima: {-100, -100.004}, {-100.3, -100.305}, {-105}; one failed start
    lls = [-100.3, -100.0, -105.0, -100.004, -100.305]
    ests = [
        {"a": 1.5, "b": 2.0},
        {"a": 1.0, "b": 2.0},
        {"a": 1.0, "b": -1.0},
        {"a": 1.001, "b": 2.0},
        {"a": 1.4, "b": 2.2},
    ]
    rows = [row(i, ll, start=i, est=e) for i, (ll, e) in enumerate(zip(lls, ests, strict=True))]
    return rows + [row(5, math.nan, start=5, converged=False)]


def test_multistart_clusters_optima():
    out = multistart(multistart_rows(), tolerance=0.01)
    json.dumps(out, allow_nan=False)  # strictly JSON-able
    assert out["tolerance"] == 0.01
    (g,) = out["groups"]
    assert g["axes"] == {}
    assert (g["starts"], g["failed"], g["converged"], g["reached_best"]) == (6, 1, 5, 2)
    assert g["best_loglikelihood"] == -100.0 and g["best_trial"] == 1 and g["best_run"] == "runs/t001"
    opt = g["optima"]
    assert [o["count"] for o in opt] == [2, 2, 1]
    assert [o["loglikelihood"] for o in opt] == [-100.0, -100.3, -105.0]
    assert [o["trials"] for o in opt] == [[1, 3], [0, 4], [2]]
    assert opt[0]["max_estimate_difference"] == 0.0
    assert opt[1]["max_estimate_difference"] == pytest.approx(0.5) and opt[1]["max_difference_parameter"] == "a"
    assert opt[2]["max_estimate_difference"] == pytest.approx(3.0) and opt[2]["max_difference_parameter"] == "b"


def test_multistart_groups_by_axes_and_checks_tolerance():
    rows = [
        row(0, -10.0, axes={"integration.n": 500}, start=0),
        row(1, -10.5, axes={"integration.n": 500}, start=1),
        row(2, -9.0, axes={"integration.n": 1000}, start=0),
    ]
    groups = multistart(rows, tolerance=1.0)["groups"]
    assert [(g["axes"], g["starts"], g["reached_best"], len(g["optima"])) for g in groups] == [
        ({"integration.n": 500}, 2, 2, 1),
        ({"integration.n": 1000}, 1, 1, 1),
    ]
    with pytest.raises(GradfitError):
        multistart(rows, tolerance=-1)


def draw_rows():
    # type x n grid, given out of order; estimates drift towards a limit as n grows
    rows = []
    for t, (typ, n) in enumerate(
        [
            ("sobol", 1000),
            ("halton", 2000),
            ("sobol", 250),
            ("halton", 250),
            ("halton", 1000),
            ("sobol", 2000),
            ("halton", 500),
            ("sobol", 500),
        ]
    ):
        est = {"a": 1.0 + 50 / n, "b": 2.0 - 20 / n, "c": 0.5}
        se = {"a": 0.1, "b": 0.2, "c": math.nan}
        rows.append(row(t, -100 - 1000 / n, axes={"integration.n": n, "integration.type": typ}, est=est, se=se))
    return rows


def test_draw_study_frame():
    frame = draw_study(draw_rows(), "integration.n")
    assert list(frame.columns[:2]) == ["integration.n", "integration.type"]
    assert {"loglikelihood", "trial", "est:a", "est:b", "est:c", "se:a", "se:b", "se:c"} <= set(frame.columns)
    assert list(frame["integration.type"]) == ["halton"] * 4 + ["sobol"] * 4
    assert list(frame["integration.n"]) == [250, 500, 1000, 2000] * 2
    first = frame.iloc[0]
    assert first["trial"] == 3
    assert first["est:a"] == pytest.approx(1.2) and first["loglikelihood"] == pytest.approx(-104.0)
    assert math.isnan(first["se:c"])
    with pytest.raises(GradfitError):
        draw_study(draw_rows(), "integration.type")


def test_draw_study_plot_writes_png(tmp_path):
    frame = draw_study(draw_rows(), "integration.n")
    path = draw_study_plot(frame, "integration.n", tmp_path / "draws.png")
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["draws.png"]  # no temp file left behind


def test_format_top_shows_k_rows_and_best_folder():
    rows = [row(i, -10.0 - i, axes={"integration.n": 500}, start=i) for i in range(8)]
    text = format_top(rows, k=3)
    lines = text.splitlines()
    assert len(lines) == 1 + 3 + 1
    assert lines[0].split()[:3] == ["rank", "trial", "axes"]
    assert lines[1].split()[:3] == ["1", "0", "integration.n=500"]
    assert "-10.0000" in lines[1] and "-12.0000" in lines[3]
    assert lines[-1] == "best run (trial 0): runs/t000"
    assert format_top([]) == "no finished runs"


def test_write_summaries_writes_expected_files(tmp_path):
    rows = [
        {**r, "start": s, "trial": 10 * s + r["trial"]}
        for s in range(2)
        for r in draw_rows()
        if r["axes"]["integration.n"] in (500, 1000)
    ]
    names = ["integration.n", "integration.type"]
    paths = write_summaries(tmp_path, rows, names, starts=True, tolerance=0.01)
    expected = ["multistart.json", "draws_integration.n.csv", "draws_integration.n.png"]
    assert [p.name for p in paths] == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
    assert len(json.loads((tmp_path / "multistart.json").read_text())["groups"]) == 4
    assert (tmp_path / "draws_integration.n.png").read_bytes().startswith(PNG_MAGIC)

    # without starts and with a single draw count there is nothing to write
    single = [r for r in draw_rows() if r["axes"]["integration.n"] == 500]
    assert write_summaries(tmp_path / "b", single, names, starts=False, tolerance=0.01) == []

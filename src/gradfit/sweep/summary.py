"""Summaries of a finished sweep: ranking, multi-start optima, draw-count stability, and the files that record them.

Every function but `draw_study_plot` and `write_summaries` only computes and returns data (lists, dicts, a
DataFrame or a string), so the CLI decides what to print and tests check numbers, not output.
A row is one finished run as collected by the sweep: trial, key, axes, start, loglikelihood, aic, bic,
criterion (higher is better), converged, iterations, time_s, run, estimates, std_errors.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from gradfit.errors import GradfitError
from gradfit.io.files import atomic_write_bytes

MAX_LINES = 12  # more estimate lines than this make the stability panel unreadable
_META = ("trial", "start", "run", "loglikelihood", "converged")


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _number(x) -> bool:
    # bools are ints to Python, but a True/False axis is a switch, not a quantity to plot against
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool | np.bool_)


def to_json(x):
    """Plain Python values; non-finite floats become None because strict JSON has no NaN."""
    if isinstance(x, dict):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_json(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def rank(rows: list[dict]) -> list[dict]:
    """Rows best first by criterion; runs without a finite criterion go last; ties broken by trial."""

    def key(r):
        c = r.get("criterion")
        return (0, -float(c), r["trial"]) if _finite(c) else (1, 0.0, r["trial"])

    return sorted(rows, key=key)


def _largest_difference(a: dict, b: dict) -> tuple[float | None, str | None]:
    """Max |a - b| over parameters both have with finite values (a NaN estimate says nothing about distance)."""
    diffs = {p: abs(float(a[p]) - float(b[p])) for p in a.keys() & b.keys() if _finite(a[p]) and _finite(b[p])}
    if not diffs:
        return None, None
    name = max(sorted(diffs), key=diffs.__getitem__)
    return diffs[name], name


def multistart(rows: list[dict], tolerance: float) -> dict:
    """Distinct optima reached by the random starts, per combination of grid values (usually one group).

    LLs sorted descending are clustered greedily: an LL more than `tolerance` below the current cluster's best
    opens a new optimum. Each optimum reports how far its best run's estimates are from the overall best's.
    """
    if not _finite(tolerance) or tolerance < 0:
        raise GradfitError(f"multistart tolerance must be a finite number >= 0, got {tolerance!r}")
    groups: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["trial"]):
        groups.setdefault(json.dumps(to_json(r.get("axes") or {}), sort_keys=True, default=str), []).append(r)
    out = []
    for members in groups.values():
        ok = sorted(
            (r for r in members if _finite(r["loglikelihood"])), key=lambda r: (-r["loglikelihood"], r["trial"])
        )
        optima: list[list[dict]] = []  # each cluster's rows, its best first
        for r in ok:
            if not optima or r["loglikelihood"] < optima[-1][0]["loglikelihood"] - tolerance:
                optima.append([])
            optima[-1].append(r)
        best = ok[0] if ok else {}
        summary = []
        for o in optima:
            diff, param = _largest_difference(o[0].get("estimates", {}), best.get("estimates", {}))
            summary.append(
                {
                    "loglikelihood": float(o[0]["loglikelihood"]),
                    "count": len(o),
                    "trials": [m["trial"] for m in o],
                    "best_trial": o[0]["trial"],
                    "max_estimate_difference": diff,
                    "max_difference_parameter": param,
                }
            )
        out.append(
            {
                "axes": members[0].get("axes") or {},
                "starts": len(members),
                "failed": len(members) - len(ok),  # no finite LL: cannot belong to any optimum
                "converged": sum(bool(r.get("converged")) for r in members),
                "best_loglikelihood": best.get("loglikelihood"),
                "best_trial": best.get("trial"),
                "best_run": best.get("run"),
                "reached_best": sum(r["loglikelihood"] >= best["loglikelihood"] - tolerance for r in ok),
                "optima": summary,
            }
        )
    return to_json({"tolerance": float(tolerance), "groups": out})


def draw_study(rows: list[dict], axis: str) -> pd.DataFrame:
    """One row per run that has a numeric value for `axis`: the axis, other axes, LL, `est:<p>` and `se:<p>`."""
    use = [r for r in rows if _number((r.get("axes") or {}).get(axis))]
    if not use:
        raise GradfitError(f"no run has a numeric value for the sweep axis {axis!r}; a draw study needs one")
    others = sorted({k for r in use for k in r["axes"] if k != axis})
    params = list(dict.fromkeys(p for r in use for p in r.get("estimates", {})))  # first-seen order = model order
    records = []
    for r in use:
        rec = {axis: r["axes"][axis], **{k: r["axes"].get(k) for k in others}}
        rec.update({k: r.get(k) for k in _META})
        rec.update({f"est:{p}": r.get("estimates", {}).get(p, np.nan) for p in params})
        rec.update({f"se:{p}": r.get("std_errors", {}).get(p, np.nan) for p in params})
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    frame["loglikelihood"] = frame["loglikelihood"].astype(float)
    return frame.sort_values([*others, axis, "trial"], kind="stable").reset_index(drop=True)


def draw_study_plot(frame: pd.DataFrame, axis: str, path: str | Path) -> Path:
    """PNG: LL against `axis`, and each estimate's shift from its value at the largest axis value, in its SEs."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    others = [c for c in frame.columns if c != axis and c not in _META and not c.startswith(("est:", "se:"))]
    # with random starts several runs share a grid point; the best LL is the one a user would report
    keys = [*others, axis]
    pts = frame.sort_values("loglikelihood", ascending=False, na_position="last").drop_duplicates(keys)
    pts = pts.sort_values(keys, kind="stable")
    combos = list(pts.groupby(others, sort=False, dropna=False)) if others else [((), pts)]
    params = [c[4:] for c in frame.columns if c.startswith("est:")]
    z: dict[tuple[int, str], pd.Series] = {}
    moves: dict[str, float] = {}  # largest shift of each parameter, in SEs, over all combinations
    for i, (_, g) in enumerate(combos):
        ref = g.iloc[-1]  # largest axis value: the most accurate approximation in the sweep
        for p in params:
            se = float(ref[f"se:{p}"])
            if math.isfinite(se) and se > 0:
                z[i, p] = s = (g[f"est:{p}"].astype(float) - float(ref[f"est:{p}"])) / se
                moves[p] = max(moves.get(p, 0.0), float(s.abs().max()))  # an all-NaN max is NaN: keeps the old
    shown = sorted(moves, key=lambda p: (-moves[p], p))[:MAX_LINES]
    fig = Figure(figsize=(10, 8), layout="constrained")
    FigureCanvasAgg(fig)
    ax_ll, ax_est = fig.subplots(2, 1, sharex=True)
    styles, colors = ["-", "--", ":", "-."], colormaps["tab20"]
    labels = [
        ", ".join(f"{a}={v}" for a, v in zip(others, k, strict=True)) for k, _ in combos
    ]  # pandas 2: keys are tuples
    for i, (_, g) in enumerate(combos):
        ax_ll.plot(g[axis], g["loglikelihood"], styles[i % 4], marker="o", color="k", label=labels[i] or None)
        for j, p in enumerate(shown):
            if (i, p) in z:
                ax_est.plot(g[axis], z[i, p], styles[i % 4], marker=".", color=colors((2 * j + j // 10) % 20))
    ax_ll.set_ylabel("log-likelihood")
    ax_ll.set_title(f"log-likelihood against {axis}")
    if others:
        ax_ll.legend(fontsize="small")
    ax_est.axhspan(-1, 1, color="0.9", zorder=0)  # within one SE of the reference: stable enough to report
    ax_est.axhline(0, color="0.5", linewidth=0.8)
    title = f"(estimate - estimate at largest {axis}) / its SE there"
    if len(moves) > len(shown):
        title += f"; the {len(shown)} of {len(moves)} parameters that move most"
    if len(params) > len(moves):
        title += f"; {len(params) - len(moves)} without a finite SE omitted"
    ax_est.set_title(title, fontsize="medium")
    ax_est.set_xlabel(axis)
    ax_est.set_ylabel("shift in SEs")
    handles = [Line2D([], [], color=colors((2 * j + j // 10) % 20), label=p) for j, p in enumerate(shown)]
    if len(combos) > 1:
        handles += [Line2D([], [], color="k", linestyle=styles[i % 4], label=lab) for i, lab in enumerate(labels)]
    if handles:
        ax_est.legend(handles=handles, fontsize="x-small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    x = pts[axis].astype(float)
    if x.min() > 0 and x.max() / x.min() > 10:
        ax_est.set_xscale("log")  # draw counts typically double; equal spacing per doubling reads best
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return atomic_write_bytes(Path(path), buf.getvalue())


def format_top(rows: list[dict], k: int = 5, metric: str = "loglikelihood") -> str:
    """Plain-text table of the k best runs (with the ranking metric), then a line naming the best run's folder."""
    top = rank(rows)[:k]
    if not top:
        return "no finished runs"

    def num(key, fmt):
        return [format(float(r.get(key)), fmt) if _finite(r.get(key)) else "nan" for r in top]

    table = pd.DataFrame(
        {
            "rank": range(1, len(top) + 1),
            "trial": [r["trial"] for r in top],
            "axes": [" ".join(f"{a}={v}" for a, v in (r.get("axes") or {}).items()) or "-" for r in top],
            "start": ["-" if r.get("start") is None else r["start"] for r in top],
            ("loglik" if metric == "loglikelihood" else metric): num(metric, ".4f"),
            "criterion": num("criterion", ".4f"),
            "conv": ["yes" if r.get("converged") else "no" for r in top],
            "iter": [r.get("iterations", "") for r in top],
            "time_s": num("time_s", ".1f"),
        }
    )
    # pandas aligns the columns; it right-aligns text too, which keeps rank and trial next to their headers
    return table.to_string(index=False) + f"\nbest run (trial {top[0]['trial']}): {top[0].get('run')}"


def write_summaries(
    folder: str | Path, rows: list[dict], axes_names: list[str], starts: bool, tolerance: float
) -> list[Path]:
    """Write multistart.json (with starts) and draws_<axis>.csv/.png per numeric `.n` axis; return the paths.

    An axis with fewer than two distinct values is skipped: there is nothing to compare.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if starts:
        text = json.dumps(multistart(rows, tolerance), indent=2) + "\n"
        written.append(atomic_write_bytes(folder / "multistart.json", text.encode("utf-8")))
    for axis in axes_names:
        values = [(r.get("axes") or {}).get(axis) for r in rows]
        if not axis.endswith(".n") or not all(_number(v) for v in values) or len(set(values)) < 2:
            continue
        frame = draw_study(rows, axis)
        stem = "draws_" + re.sub(r"[^A-Za-z0-9._-]", "_", axis)  # axis names become file names
        written.append(atomic_write_bytes(folder / f"{stem}.csv", frame.to_csv(index=False).encode("utf-8")))
        written.append(draw_study_plot(frame, axis, folder / f"{stem}.png"))
    return written

"""The report's figures, drawn with matplotlib's Agg backend and returned as PNG data URIs.

Figures are made with `Figure` and `FigureCanvasAgg` directly, not pyplot: no global figure registry to leak
into, and no GUI backend chosen behind the user's back. A data URI puts the image inside the HTML file, so the
report needs no network and no files beside it.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pandas as pd

OBSERVED, PREDICTED = "#4c72b0", "#dd8452"
MAX_PANELS = 60  # more indicator panels than this make a figure too tall to read; the rest are listed as a note
DPI = 100


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return png_data_uri(buf.getvalue())


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def convergence(history: pd.DataFrame) -> str | None:
    """Log-likelihood and gradient norm (log scale) against the iteration; None without iterations."""
    if history.empty or not {"iteration", "loglikelihood", "gradient_norm"} <= set(history.columns):
        return None
    it = history["iteration"].to_numpy(dtype=float)
    fig = _figure(10, 4.2)
    ax_ll, ax_g = fig.subplots(1, 2)
    ax_ll.plot(it, history["loglikelihood"].to_numpy(dtype=float), marker=".", color="k")
    ax_ll.set_xlabel("iteration")
    ax_ll.set_ylabel("log-likelihood")
    ax_ll.set_title("log-likelihood")
    g = history["gradient_norm"].to_numpy(dtype=float)
    positive = np.isfinite(g) & (g > 0)  # a log axis cannot show 0 (an exact optimum) or NaN
    ax_g.plot(it[positive], g[positive], marker=".", color=OBSERVED)
    if positive.any():
        ax_g.set_yscale("log")
    ax_g.set_xlabel("iteration")
    ax_g.set_ylabel("gradient norm")
    ax_g.set_title("gradient norm (projected, log scale)")
    for ax in (ax_ll, ax_g):
        ax.grid(alpha=0.3)
    return _uri(fig)


def _level_label(level) -> str:
    x = float(level)
    return str(int(x)) if x.is_integer() else f"{x:g}"


def indicators(frame: pd.DataFrame) -> str | None:
    """Observed and predicted shares of each level, one small panel per indicator (at most MAX_PANELS)."""
    names = list(dict.fromkeys(frame["indicator"]))[:MAX_PANELS]
    if not names:
        return None
    rows, cols = _grid(len(names), 5)
    fig = _figure(2.6 * cols, 2.1 * rows + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        part = frame[frame["indicator"] == name]
        x = np.arange(len(part))
        ax.bar(x - 0.2, part["observed"].to_numpy(dtype=float), 0.4, color=OBSERVED, label="observed")
        ax.bar(x + 0.2, part["predicted"].to_numpy(dtype=float), 0.4, color=PREDICTED, label="predicted")
        ax.set_xticks(x, [_level_label(v) for v in part["level"]], fontsize="small")
        ax.set_title(str(name), fontsize="medium")
        ax.tick_params(axis="y", labelsize="small")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=2, fontsize="small")
    return _uri(fig)


def choice_shares(shares: pd.DataFrame) -> str | None:
    """Observed share of each alternative against its mean predicted probability."""
    if shares.empty:
        return None
    x = np.arange(len(shares))
    fig = _figure(max(4.5, 1.2 * len(shares) + 2), 3.4)
    ax = fig.subplots()
    ax.bar(x - 0.2, shares["observed"].to_numpy(dtype=float), 0.4, color=OBSERVED, label="observed")
    ax.bar(x + 0.2, shares["predicted"].to_numpy(dtype=float), 0.4, color=PREDICTED, label="predicted")
    ax.set_xticks(x, [str(a) for a in shares.index])
    ax.set_ylabel("share of choices")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return _uri(fig)


def posterior(frame: pd.DataFrame, latent: list[str]) -> str | None:
    """Histogram of the people's posterior means of each latent variable."""
    if frame.empty or not latent:
        return None
    rows, cols = _grid(len(latent), 3)
    fig = _figure(3.6 * cols, 2.8 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, lv in zip(axes, latent, strict=False):
        means = frame[f"{lv}_mean"].to_numpy(dtype=float)
        means = means[np.isfinite(means)]
        ax.hist(means, bins=min(30, max(5, int(np.sqrt(len(means))))), color=OBSERVED, alpha=0.85)
        sd = frame[f"{lv}_sd"].to_numpy(dtype=float)
        ax.set_title(f"{lv}\nposterior means; mean posterior sd {np.nanmean(sd):.3g}", fontsize="small")
        ax.set_xlabel(f"E[{lv} | person's data]", fontsize="small")
        ax.set_ylabel("people", fontsize="small")
    for ax in axes[len(latent) :]:
        ax.set_visible(False)
    return _uri(fig)

"""Render a run's `ReportData` as one self-contained HTML page (Jinja2, autoescaped) and write it atomically."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

from gradfit.io.files import atomic_write_text
from gradfit.report import plots
from gradfit.report.collect import GROUPS, ReportData

TEMPLATE = "report.html.j2"
GROUP_TITLES = {
    "structural": "Structural equations",
    "measurement": "Measurement equations",
    "choice": "Choice model",
    "other": "Other parameters",
}


def _finite(x) -> bool:
    try:
        return x is not None and not isinstance(x, bool) and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def num(x, spec: str = "") -> str:
    """A number for reading: 4 decimals in the usual range, else scientific; a dash for none / NaN."""
    if not _finite(x):
        return "—"
    x = float(x)
    if spec:
        return format(x, spec)
    return f"{x:.4f}" if x == 0 or 1e-3 <= abs(x) < 1e6 else f"{x:.3e}"


def exact(x) -> str:
    """A number for machines (data-value attributes): repr round-trips the float exactly; '' for none / NaN."""
    return repr(float(x)) if _finite(x) else ""


def cell(x) -> str:
    """A table cell of mixed content (the draw-study table): yes/no for flags, a dash for none."""
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return str(x)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("gradfit.report", "templates"),
        autoescape=True,  # every spec string (formulas, names, descriptions) is user text
        undefined=StrictUndefined,  # a misspelt variable is an error here, not a silently empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = num
    env.filters["exact"] = exact
    env.filters["cell"] = cell
    return env


def fit_statistics(data: ReportData) -> list[tuple[str, str]]:
    r = data.results
    rows = [
        ("Log-likelihood", num(r.get("loglikelihood"), ".4f")),
        ("Log-likelihood at the start values", num(r.get("initial_loglikelihood"), ".4f")),
    ]
    if r.get("null_loglikelihood") is not None:
        rows += [
            ("Choice part: null log-likelihood (equal shares)", num(r.get("null_loglikelihood"), ".4f")),
            ("Choice part: log-likelihood (indicators integrated out)", num(r.get("choice_loglikelihood"), ".4f")),
            ("Choice part: ρ²", num(r.get("rho_squared"), ".4f")),
        ]
    rows += [
        ("AIC", num(r.get("aic"), ".2f")),
        ("BIC", num(r.get("bic"), ".2f")),
        ("Free parameters", str(r.get("n_parameters", "—"))),
        ("Fixed parameters", str(len(data.fixed))),
        ("Individuals", str(r.get("n_individuals", "—"))),
        ("Observations (rows)", str(r.get("n_observations", "—"))),
        ("Optimizer", str(r.get("optimizer", "—"))),
        ("Converged", f"{'yes' if r.get('converged') else 'NO'} ({r.get('message', '')})"),
        ("Iterations", str(r.get("iterations", "—"))),
    ]
    if not data.history.empty and "relative_gradient" in data.history.columns:
        rows.append(("Final relative gradient", num(data.history["relative_gradient"].iloc[-1], ".3e")))
    return rows


def settings(data: ReportData) -> list[tuple[str, str]]:
    r = data.results
    integ = r.get("integration") or data.spec.integration.model_dump()
    described = f"{integ.get('type')}, n = {integ.get('n')}"
    if integ.get("type") != "gauss_hermite":
        described += f", seed {integ.get('seed')}" + (", antithetic" if integ.get("antithetic") else "")
    timings = r.get("timings") or {}
    versions = r.get("versions") or {}
    rows = [
        ("Integration", described),
        ("Device", str(r.get("device", "—"))),
        ("Precision", str(r.get("precision", "—"))),
        ("Wall time (s)", num(r.get("wall_s"), ".1f")),
        ("Timings (s)", ", ".join(f"{k.removesuffix('_s')} {num(v, '.2f')}" for k, v in timings.items()) or "—"),
        ("Versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or "—"),
        ("Spec", str(r.get("spec", "—"))),
        ("--set", " ".join(r.get("overrides") or []) or "none"),
        ("Git commit", str(r.get("git_commit") or "—")),
    ]
    return rows


def _coef(value) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def model_tables(data: ReportData) -> dict[str, list[dict]]:
    """The spec's parts as rows of plain strings: what the template lists under "Model"."""
    spec = data.spec
    latent = [{"name": n, "mean": str(lv.mean), "scale": _coef(lv.scale)} for n, lv in spec.latent_variables.items()]
    correlations = [{"between": " – ".join(c.between), "parameter": _coef(c.parameter)} for c in spec.correlations]
    indicators = []
    for name, ind in spec.indicators.items():
        thresholds = ""
        if ind.thresholds:
            t = spec.thresholds[ind.thresholds]
            thresholds = f"{ind.thresholds} ({t.form}: {', '.join(_coef(p) for p in t.parameters)})"
        indicators.append(
            {
                "name": name,
                "column": ind.column or name,
                "type": ind.type,
                "loadings": ", ".join(f"{lv}: {_coef(c)}" for lv, c in ind.loadings.items()),
                "intercept": _coef(ind.intercept),
                "scale": _coef(ind.scale),
                "thresholds": thresholds,
                "person_level": "yes" if ind.person_level else "",
            }
        )
    alternatives = []
    if spec.choice is not None:
        for name, alt in spec.choice.alternatives.items():
            alternatives.append(
                {"name": name, "code": _coef(alt.code), "utility": str(alt.utility), "available": str(alt.available)}
            )
    return {"latent": latent, "correlations": correlations, "indicators": indicators, "alternatives": alternatives}


def render(data: ReportData) -> str:
    """The report page: every figure inline as a PNG data URI, no scripts, no external resources."""
    latent = list(data.spec.latent_variables)
    figures = {
        "convergence": plots.convergence(data.history),
        "indicators": plots.indicators(data.indicators) if data.indicators is not None else None,
        "choice": plots.choice_shares(data.choice_shares) if data.choice_shares is not None else None,
        "posterior": plots.posterior(data.posterior, latent) if data.posterior is not None else None,
    }
    shown = list(dict.fromkeys(data.indicators["indicator"])) if data.indicators is not None else []
    posterior_summary = []
    if data.posterior is not None:
        for lv in latent:
            means, sds = data.posterior[f"{lv}_mean"], data.posterior[f"{lv}_sd"]
            posterior_summary.append(
                {"name": lv, "mean": means.mean(), "sd_of_means": means.std(), "mean_sd": sds.mean()}
            )
    context = {
        "d": data,
        "r": data.results,
        "title": f"{data.spec.name} — {data.run.name}",
        "generated": datetime.now().isoformat(sep=" ", timespec="seconds"),
        "finished": data.finished.isoformat(sep=" ", timespec="seconds") if data.finished else "—",
        "groups": data.grouped(),
        "group_titles": GROUP_TITLES,
        "group_order": GROUPS,
        "stats": fit_statistics(data),
        "settings": settings(data),
        "model": model_tables(data),
        "figures": figures,
        "indicators_hidden": shown[plots.MAX_PANELS :],
        "posterior_summary": posterior_summary,
        "draw_studies": [(s, plots.png_data_uri(s.png)) for s in (data.sweep.draw_studies if data.sweep else ())],
    }
    return _environment().get_template(TEMPLATE).render(**context)


def write(data: ReportData, out: Path) -> Path:
    """Render and write `out` atomically (a reader never sees half a report)."""
    return atomic_write_text(out, render(data))

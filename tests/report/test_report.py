"""`gradfit report RUN`: a self-contained report.html whose estimates equal results.json, rendered by Chromium.

One small ICLV model (150 people, 2 latent variables, 4 ordered indicators, 3 alternatives) is fitted twice by a
sweep over `integration.n`, so that the report of one of its runs has a draw-stability study; the report is made
once for the module. Chromium (headless) opens it to check that it renders without errors and that every image
decodes, and saves a screenshot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from conftest import rich_spec
from gradfit.cli.main import main
from gradfit.iclv.spec import validate
from gradfit.report import collect, parameter_groups, render, sweep_context

FIELDS = ("value", "std_err", "robust_std_err", "bhhh_std_err")
CHROMIUM_TIMEOUT_S = 60
INSTALL = "install Chromium (Debian: apt-get install chromium) to run the report rendering tests"


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    """A draw sweep (integration.n 20 and 40) of a small ICLV model, and `gradfit report` of its n=40 run."""
    from gradfit.iclv.simulate import seed_model

    folder = tmp_path_factory.mktemp("report")
    sim = seed_model(n_people=150, n_tasks=4, n_latent=2, per_latent=2, n_draws=20, seed=5)
    sim.data.to_csv(folder / "data.csv", index=False)
    spec = dict(sim.spec)
    spec["data"] = {**spec["data"], "path": "data.csv"}
    spec["parameters"] = {**spec["parameters"], "d_A1_educ": {"start": 0.1, "fixed": True}}  # a fixed parameter
    spec["estimation"] = {**spec["estimation"], "device": "cpu"}
    # a value of time (parameters only) and one that uses data (per row, averaged and at the data's means)
    spec["quantities"] = {"vot_A0": "b_time_A0 / b_cost_A0 * 60", "util_time_A1": "b_time_A1 * time_A1"}
    (folder / "small.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    sweep = {"name": "draws", "base": "small.yaml", "axes": {"integration.n": [20, 40]}}
    (folder / "sweep.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False), encoding="utf-8")
    rc, _, err = _run_cli(["sweep", str(folder / "sweep.yaml")])
    assert rc == 0, err
    runs = [p.parent for p in (folder / "runs" / "draws").glob("*/*/results.json") if not p.parent.is_symlink()]
    by_n = {json.loads((r / "results.json").read_text())["integration"]["n"]: r for r in runs}
    assert sorted(by_n) == [20, 40]
    run = by_n[40]
    rc, out, err = _run_cli(["report", str(run)])
    assert rc == 0, err
    report = Path(out.strip().splitlines()[-1])
    return {
        "folder": folder,
        "run": run,
        "report": report,
        "status": err,
        "html": report.read_text(encoding="utf-8"),
        "results": json.loads((run / "results.json").read_text()),
    }


class _Cells(HTMLParser):
    """Estimate cells (<td data-param data-field data-value>), <img> sources, hrefs and the render check."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: dict[tuple[str, str], dict] = {}
        self.images: list[str] = []
        self.hrefs: list[str] = []
        self.check: dict[str, str] | None = None
        self._cell: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "data-param" in a:
            self._cell = {"value": a.get("data-value"), "text": ""}
            self.cells[a["data-param"], a["data-field"]] = self._cell
        elif tag == "img":
            self.images.append(a.get("src") or "")
        if "href" in a:
            self.hrefs.append(a["href"] or "")
        if a.get("id") == "render-check":
            self.check = a

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None


def _parse(html: str) -> _Cells:
    parser = _Cells()
    parser.feed(html)
    return parser


def _assert_estimates_equal(cells: dict, results: dict) -> None:
    for name, row in results["estimates"].items():
        for field in FIELDS:
            cell = cells.get((name, field))
            assert cell is not None, f"{name} {field} not in the report"
            expected = row[field]
            if expected is None:
                assert cell["value"] == "" and cell["text"].strip() == "—"
                continue
            assert float(cell["value"]) == pytest.approx(expected, rel=1e-12, abs=1e-300), (name, field)
            shown = float(cell["text"].strip())  # 4 decimals or 4 significant digits in scientific notation
            assert shown == pytest.approx(expected, rel=1e-3, abs=5.1e-5), (name, field, cell["text"])
    for name, value in results["fixed"].items():
        assert float(cells[name, "fixed"]["value"]) == value
    shown = {name for name, _ in cells}
    assert shown == set(results["estimates"]) | set(results["fixed"])


def test_report_is_written_into_the_run_folder(made):
    assert made["report"] == made["run"] / "report.html"
    status = made["status"]
    assert "building the model" in status and "posterior latent variables" in status


def test_report_is_self_contained(made):
    html = made["html"]
    parsed = _parse(html)
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    assert len(parsed.images) == 5  # convergence, indicators, choices, posterior, draw study
    assert all(src.startswith("data:image/png;base64,") for src in parsed.images)
    assert parsed.hrefs and all(h.startswith("#") for h in parsed.hrefs)  # in-page links only


def test_report_estimates_equal_results_json(made):
    _assert_estimates_equal(_parse(made["html"]).cells, made["results"])


def test_estimates_are_grouped_by_where_the_spec_uses_them(made):
    spec = validate(yaml.safe_load((made["run"] / "config.yaml").read_text()), source="config.yaml")
    groups = parameter_groups(spec)
    tables = re.findall(r'<table class="estimates" data-group="(\w+)">(.*?)</table>', made["html"], flags=re.S)
    assert [g for g, _ in tables] == ["structural", "measurement", "choice"]
    for group, body in tables:
        names = set(re.findall(r'data-param="([^"]+)" data-field="value"', body))
        assert names and all(groups[n] == group for n in names)
    assert groups["g_LV1_age"] == "structural" and groups["b_LV2_LV1"] == "structural"
    assert groups["lam_I11"] == groups["tau_I21_3"] == "measurement"
    assert groups["asc_A1"] == groups["c_A2_LV1"] == "choice"


def test_parameter_groups_follow_every_part_of_the_spec():
    spec_dict = rich_spec()
    spec_dict["parameters"] = {**spec_dict["parameters"], "unused": 0.0}
    groups = parameter_groups(validate(spec_dict, source="rich"))
    expected = {
        "structural": {"s_LV1", "g1_age", "g2_inc", "b21", "s_LV2", "rho12"},
        "measurement": {"lam1", "d1", "d2", "lam2", "lam2b", "a2", "s2", "t1", "t2", "t3", "lam3", "a3", "sig3"}
        | {"lam4", "a4", "lam5", "c1"},
        "choice": {"b_time", "b_cost", "asc_bus", "asc_rail", "b_artemis", "c_bus_LV2", "c_rail_LV1", "d_bus_age"},
        "other": {"unused"},
    }
    assert {g: {n for n, v in groups.items() if v == g} for g in expected} == expected


def test_report_shows_fit_model_parts_and_the_draw_study(made):
    html, results = made["html"], made["results"]
    assert f"{results['loglikelihood']:.4f}" in html and f"{results['bic']:.2f}" in html
    for section in ("Convergence", "Indicators: observed and predicted", "Choices: observed and predicted"):
        assert section in html
    for name in ("I11", "I12", "I21", "I22", "A0", "A1", "A2", "LV1", "LV2"):
        assert f"<td>{name}</td>" in html
    assert "This run belongs to the sweep <b>draws</b>" in html and "integration.n" in html
    assert html.count('class="this-run"') == 1  # the n=40 row of the draw-study table
    assert "draws_integration.n.png in the sweep folder" in html


def test_draw_study_is_drawn_from_sweep_json_when_the_sweep_wrote_no_plot(made, tmp_path):
    sweep = tmp_path / "draws"
    shutil.copytree(made["run"].parents[1], sweep, symlinks=True)
    for png in sweep.glob("draws_*.png"):
        png.unlink()
    context = sweep_context(sweep / made["run"].parent.name / made["run"].name)
    assert context is not None and context.name == "draws" and context.listed and context.axes == {"integration.n": 40}
    (study,) = context.draw_studies
    assert study.axis == "integration.n" and study.source == "drawn from sweep.json"
    assert study.png[:8] == b"\x89PNG\r\n\x1a\n" and len(study.png) > 10_000
    assert list(study.table["integration.n"]) == [20, 40] and list(study.table["this_run"]) == [False, True]


def test_report_of_a_run_outside_a_sweep_says_there_is_no_draw_study(made, tmp_path):
    alone = tmp_path / "runs" / "seed_iclv" / made["run"].name
    shutil.copytree(made["run"], alone)
    (alone / "report.html").unlink()
    out = tmp_path / "alone.html"
    rc, stdout, err = _run_cli(["report", str(alone), "--out", str(out)])
    assert rc == 0, err
    assert stdout.strip() == str(out) and not (alone / "report.html").exists()
    html = out.read_text(encoding="utf-8")
    assert "This run is not part of a sweep" in html and html.count("<img") == 4
    _assert_estimates_equal(_parse(html).cells, made["results"])


def test_render_copes_with_missing_parts(made):
    """Parts a model may lack (indicators, choices, latent variables, iterations, standard errors) become notes."""
    data = collect(made["run"])  # compiled programs come from the session's cache: about a second
    first = data.estimates[0]
    partial = dataclasses.replace(
        data,
        estimates=(dataclasses.replace(first, std_err=None, bhhh_std_err=None), *data.estimates[1:]),
        history=data.history.iloc[:0],
        indicators=None,
        continuous_indicators=("q_normal",),
        choice_shares=None,
        posterior=None,
        correlations=(),
        sweep=None,
        notes={"indicators": "No discrete indicators here.", "choice": "No choice part here."},
        warnings=("the data changed",),
    )
    html = render(partial)
    cells = _parse(html).cells
    assert cells[first.name, "std_err"] == {"value": "", "text": "—"}
    assert float(cells[first.name, "robust_std_err"]["value"]) == first.robust_std_err
    for text in ("No discrete indicators here.", "No choice part here.", "No latent variables.", "q_normal"):
        assert text in html
    assert "No iterations recorded" in html and "Warning: the data changed" in html
    assert "This run is not part of a sweep" in html and "<img" not in html


def test_report_errors_are_one_line_with_exit_2(made, tmp_path):
    rc, _, err = _run_cli(["report", str(tmp_path / "nowhere")])
    assert rc == 2 and "no such run folder" in _one_error_line(err)

    incomplete = tmp_path / "runs" / "seed_iclv" / "unfinished"
    shutil.copytree(made["run"], incomplete)
    (incomplete / "results.json").unlink()
    rc, _, err = _run_cli(["report", str(incomplete)])
    assert rc == 2 and "not complete" in _one_error_line(err)

    rc, _, err = _run_cli(["report", str(made["run"]), "--out", str(tmp_path / "missing" / "r.html")])
    assert rc == 2 and "does not exist" in _one_error_line(err)


# -- in a browser ---------------------------------------------------------------------------------------------------

# Errors are collected from the start (window error events, including images that fail to load); after the load
# event every <img> must have decoded (naturalWidth > 0). The verdict goes into the DOM, which --dump-dom prints.
CATCH = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(e.message || ("failed to load " + ((e.target && e.target.tagName) || "?")));
}, true);
</script>"""
VERDICT = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (img) { return !(img.complete && img.naturalWidth > 0); });
  var out = document.createElement("div");
  out.id = "render-check";
  out.setAttribute("data-errors", JSON.stringify(window.__errors));
  out.setAttribute("data-images", String(images.length));
  out.setAttribute("data-broken", String(broken.length));
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def chromium() -> list[str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip(INSTALL)
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]


def test_report_renders_in_chromium_with_the_estimates_of_results_json(made, chromium, tmp_path):
    html = made["html"]
    page = tmp_path / "checked.html"
    page.write_text(html.replace("<head>", "<head>\n" + CATCH, 1).replace("</body>", VERDICT + "\n</body>", 1))
    # the virtual time budget lets the load event and its handler run before the DOM is dumped
    dumped = subprocess.run(
        [*chromium, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_S,
    )
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    parsed = _parse(dumped.stdout)
    assert parsed.check is not None, f"the checking script did not run: {dumped.stdout[-500:]}"
    assert json.loads(parsed.check["data-errors"]) == []
    assert parsed.check["data-images"] == "5" and parsed.check["data-broken"] == "0"
    _assert_estimates_equal(parsed.cells, made["results"])


def test_report_screenshot(made, chromium, tmp_path):
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [*chromium, f"--screenshot={shot}", "--window-size=1280,2400", made["report"].as_uri()],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2400)


def test_derived_quantities_from_the_spec(made):
    """The spec's quantities, by the delta method, computed independently from results.json and the data."""
    import numpy as np
    import pandas as pd

    est, html = made["results"]["estimates"], made["html"]
    found = re.findall(r'data-quantity="([^"]+)" data-kind="([^"]+)" data-value="([^"]+)"', html)
    cells = {(q, k): float(v) for q, k, v in found}
    assert len(cells) == 3
    vot = est["b_time_A0"]["value"] / est["b_cost_A0"]["value"] * 60
    assert cells[("vot_A0", "value")] == pytest.approx(vot, rel=1e-12)
    time_a1 = pd.read_csv(made["folder"] / "data.csv")["time_A1"].to_numpy()
    per_row = est["b_time_A1"]["value"] * time_a1
    assert cells[("util_time_A1", "mean")] == pytest.approx(np.mean(per_row), rel=1e-12)
    assert cells[("util_time_A1", "at_means")] == pytest.approx(est["b_time_A1"]["value"] * time_a1.mean(), rel=1e-12)
    assert "b_time_A0 / b_cost_A0 * 60" in html

"""Side-by-side benchmark: Biogeme 3.3.5 and gradfit on the Optima h04 hybrid choice model.

    .venv/bin/python benchmarks/peers/run.py --draws 1000 --out /tmp/peers-1000

1. makes sure the Biogeme environment exists (``benchmarks/peers/setup.sh`` creates
   ``benchmarks/peers/.venv-biogeme`` when it is missing);
2. estimates the model with Biogeme (``biogeme_h04.py``, in that environment, as a subprocess);
3. estimates the same model with gradfit (``gradfit fit examples/optima/h04.yaml --json``, a subprocess);
4. evaluates each tool's log-likelihood, with its own draws, at the other tool's optimum (and at its own, to
   check that the draws are reproduced);
5. writes everything to ``DIR/peers.json`` and prints the estimates side by side and a summary table.

Both tools get the same data (889 observations), the same start values, the same number of draws and the
same iteration limit, on the same machine, one after the other. Each keeps its own stopping rule. This
script runs under gradfit's environment and never imports Biogeme; it imports gradfit only to check
``--gradfit-set`` before the long runs and to evaluate the log-likelihood at Biogeme's optimum after them.
Exit codes: 0 done, 1 a step failed (its log is named), 2 bad options, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SPEC = REPO / "examples" / "optima" / "h04.yaml"
DATA = REPO / "examples" / "optima" / "optima.dat"
SETUP = HERE / "setup.sh"
BIOGEME_SCRIPT = HERE / "biogeme_h04.py"
BIOGEME_PYTHON = HERE / ".venv-biogeme" / "bin" / "python"
PROGRESS_SECONDS = 30.0


class StepFailed(Exception):
    """A step of the benchmark failed; the message says which and where its log is."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(description="Time Biogeme 3.3.5 and gradfit on the Optima h04 model with the same draws.")
    p.add_argument("--draws", type=int, required=True, help="Monte Carlo draws per observation, even (e.g. 1000).")
    p.add_argument("--out", type=Path, required=True, help="Output folder (peers.json, logs, both tools' files).")
    p.add_argument("--seed", type=int, default=1, help="Biogeme's draw seed (default 1). gradfit uses h04.yaml's.")
    p.add_argument(
        "--max-iterations",
        type=int,
        default=5000,
        help="Iteration limit of both tools (default 5000, Biogeme's example); lower it only for smoke tests.",
    )
    p.add_argument(
        "--gradfit-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Extra --set for gradfit fit (repeatable), e.g. estimation.tolerance=1.6e-5.",
    )
    args = p.parse_args(argv)
    if args.draws < 2 or args.draws % 2:
        p.error(f"--draws {args.draws}: must be an even number >= 2 (antithetic draws come in pairs)")
    if args.max_iterations < 1:
        p.error(f"--max-iterations {args.max_iterations}: must be >= 1")
    if args.seed < 0:
        p.error(f"--seed {args.seed}: must be >= 0")
    for item in args.gradfit_set:
        if "=" not in item:
            p.error(f"--gradfit-set {item!r}: expected KEY=VALUE")
        if item.split("=", 1)[0].strip() == "integration.n":
            p.error("--gradfit-set integration.n: use --draws (both tools get the same number of draws)")
    if importlib.util.find_spec("gradfit") is None:
        p.error(
            f"gradfit is not importable from {sys.executable}: run this with gradfit's environment, .venv/bin/python"
        )
    if args.gradfit_set:
        problem = check_gradfit_set(args.gradfit_set)
        if problem:
            p.error(f"--gradfit-set: {problem}")
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out}: exists and is not a folder")
    args.out = args.out.resolve()
    return args


def check_gradfit_set(items: list[str]) -> str | None:
    """gradfit's own message if the --set options do not apply to h04.yaml (checked before the long runs)."""
    try:
        import gradfit
        from gradfit.io.overrides import apply_overrides
    except ImportError:  # gradfit fit will report it
        return None
    try:
        apply_overrides(gradfit.read_spec(SPEC), items, source=str(SPEC))
    except gradfit.GradfitError as exc:
        return str(exc)
    return None


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _last_match(log: Path, pattern: re.Pattern[str]) -> str | None:
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - 20000))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if pattern.search(line):
            return " ".join(line.split())
    return None


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def run_step(label: str, cmd: list[str], log: Path, stdout: Path | None, progress: re.Pattern[str]) -> float:
    """Runs cmd with stderr (and stdout unless given a file) into log, printing progress; returns wall seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as files:
        err = files.enter_context(log.open("w"))
        out = files.enter_context(stdout.open("w")) if stdout is not None else err
        err.write("$ " + " ".join(cmd) + "\n")
        err.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err, env=os.environ | {"PYTHONUNBUFFERED": "1"})
        try:
            while True:
                try:
                    rc = proc.wait(timeout=PROGRESS_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    last = _last_match(log, progress)
                    say(f"{label}: running, {time.perf_counter() - t0:.0f} s" + (f"; last: {last}" if last else ""))
        except KeyboardInterrupt:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        wall = time.perf_counter() - t0
    if rc != 0:
        raise StepFailed(f"{label} failed (exit code {rc}); log {log}:\n{_tail(log)}")
    return wall


def biogeme_to_gradfit(estimates: dict[str, float]) -> dict[str, float]:
    """Biogeme's *_sigma_log = log(sigma) to gradfit's *_sigma = sigma; the other names are the same."""
    return {
        (name[: -len("_log")] if name.endswith("_sigma_log") else name): (
            math.exp(value) if name.endswith("_sigma_log") else value
        )
        for name, value in estimates.items()
    }


def gradfit_to_biogeme(estimates: dict[str, float]) -> dict[str, float]:
    return {
        (name + "_log" if name.endswith("_sigma") else name): (math.log(value) if name.endswith("_sigma") else value)
        for name, value in estimates.items()
    }


def gradfit_evaluate(config: Path, points: dict[str, dict[str, float]]) -> dict[str, float]:
    """gradfit's log-likelihood, with the fit's own settings and draws (its config.yaml), at each point."""
    import gradfit  # imported only here: the fits above ran in their own processes

    try:
        model = gradfit.Model(config)
        out = {}
        for label, params in points.items():
            missing = set(model.parameter_names) ^ set(params)
            if missing:
                raise StepFailed(f"gradfit evaluation at {label}: parameter names differ: {sorted(missing)[:5]}")
            out[label] = float(model.loglikelihood({k: params[k] for k in model.parameter_names}))
    except gradfit.GradfitError as exc:
        raise StepFailed(f"gradfit evaluation with {config}: {exc}") from exc
    return out


def machine() -> dict:
    info = {"hostname": platform.node(), "platform": platform.platform()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Socket(s)"):
                info[key.strip()] = value.strip()
    except OSError:
        pass
    info["cpu_count"] = os.cpu_count()
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["memory_gib"] = round(int(mem[1]) / 2**20, 1)
    except (OSError, IndexError, ValueError):
        pass
    return info


def git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _f(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def estimates_table(rows: list[dict]) -> str:
    lines = [
        "| parameter | gradfit | Biogeme | difference | gradfit s.e. | difference / s.e. |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['parameter']} | {_f(r['gradfit'], '.4f')} | {_f(r['biogeme'], '.4f')} | "
            f"{_f(r['difference'], '.4f')} | {_f(r['gradfit_std_err'], '.4f')} | "
            f"{_f(r['difference_in_std_err'], '.2f')} |"
        )
    return "\n".join(lines)


def summary_table(result: dict) -> str:
    lines = [
        "| tool | draws | wall s | optimisation s | iterations | final LL | LL at the other's optimum | wall ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["summary"]:
        lines.append(
            f"| {r['tool']} | {r['draws']} | {_f(r['wall_s'], '.1f')} | {_f(r['optimisation_s'], '.1f')} | "
            f"{_f(r['iterations'], 'd')} | {_f(r['final_loglikelihood'], '.3f')} | "
            f"{_f(r['loglikelihood_at_other_optimum'], '.3f')} | {_f(r['wall_ratio'], '.2f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    n = args.draws
    started = dt.datetime.now().astimezone()
    load_before = os.getloadavg()
    say(f"peers benchmark: Optima h04, {n} draws, output {out}")

    # 1. Biogeme's environment.
    say("setup: checking the Biogeme environment (benchmarks/peers/.venv-biogeme)")
    setup = subprocess.run(["bash", str(SETUP)], cwd=REPO, check=False)
    if setup.returncode != 0 or not BIOGEME_PYTHON.exists():
        raise StepFailed(f"{SETUP} failed (exit code {setup.returncode})")

    # 2. Biogeme's estimation.
    biogeme_json = out / "biogeme.json"
    biogeme_files = out / "biogeme_files"
    if biogeme_files.exists():
        shutil.rmtree(biogeme_files)  # Biogeme would restart from a previous run's __*.iter file
    common = ["--draws", str(n), "--data", str(DATA), "--seed", str(args.seed)]
    cmd = [str(BIOGEME_PYTHON), str(BIOGEME_SCRIPT), *common, "--max-iterations", str(args.max_iterations)]
    cmd += ["--out", str(biogeme_json), "--workdir", str(biogeme_files)]
    say(f"biogeme: estimating (log {out / 'biogeme.log'})")
    biogeme_wall = run_step("biogeme", cmd, out / "biogeme.log", None, re.compile(r"^\s*\d+\s+-?[\d.]+e[+-]\d+"))
    biogeme = json.loads(biogeme_json.read_text())
    say(
        f"biogeme: done in {biogeme_wall:.1f} s, LL {biogeme['final_loglikelihood']:.3f}, "
        f"{biogeme['iterations']} iterations, {biogeme['termination']}"
    )

    # 3. gradfit's estimation.
    gradfit_json = out / "gradfit.json"
    runs_dir = out / "gradfit_runs"
    cmd = [sys.executable, "-m", "gradfit", "fit", str(SPEC), "--set", f"integration.n={n}"]
    cmd += ["--set", f"estimation.max_iterations={args.max_iterations}"]
    for item in args.gradfit_set:
        cmd += ["--set", item]
    cmd += ["--runs-dir", str(runs_dir), "--json"]
    say(f"gradfit: estimating (log {out / 'gradfit.log'})")
    gradfit_wall = run_step("gradfit", cmd, out / "gradfit.log", gradfit_json, re.compile(r"^iter\s+\d+"))
    gf = json.loads(gradfit_json.read_text())
    say(
        f"gradfit: done in {gradfit_wall:.1f} s, LL {gf['loglikelihood']:.3f}, {gf['iterations']} iterations, "
        f"{gf['message']}"
    )
    load_after = os.getloadavg()

    # 4. Each log-likelihood at the other's optimum.
    gf_estimates = {name: e["value"] for name, e in gf["estimates"].items()}
    bg_estimates = biogeme["estimates"]
    say("gradfit: evaluating its log-likelihood at Biogeme's optimum (same draws as its fit)")
    gf_at = gradfit_evaluate(
        Path(gf["run_dir"]) / "config.yaml",
        {"own_optimum": gf_estimates, "biogeme_optimum": biogeme_to_gradfit(bg_estimates)},
    )
    points = out / "biogeme_points.json"
    points.write_text(
        json.dumps({"own_optimum": bg_estimates, "gradfit_optimum": gradfit_to_biogeme(gf_estimates)}, indent=2)
    )
    say("biogeme: evaluating its log-likelihood at gradfit's optimum (same draws as its fit)")
    cmd = [str(BIOGEME_PYTHON), str(BIOGEME_SCRIPT), *common, "--evaluate-at", str(points), "--quiet"]
    cmd += ["--out", str(out / "biogeme_evaluate.json")]
    run_step("biogeme evaluation", cmd, out / "biogeme_evaluate.log", None, re.compile(r"$^"))
    bg_at = json.loads((out / "biogeme_evaluate.json").read_text())["loglikelihood_at"]
    for tool, at, final in (
        ("gradfit", gf_at, gf["loglikelihood"]),
        ("biogeme", bg_at, biogeme["final_loglikelihood"]),
    ):
        if abs(at["own_optimum"] - final) > 1e-6 * max(1.0, abs(final)):
            say(
                f"warning: {tool}'s re-evaluation at its own optimum, {at['own_optimum']:.6f}, differs from its fit's "
                f"{final:.6f}: its draws were not reproduced, so its LL at the other's optimum is not comparable"
            )

    # 5. Report.
    bg_natural = biogeme_to_gradfit(bg_estimates)
    rows = []
    for name in gf_estimates:
        g, b = gf_estimates[name], bg_natural.get(name)
        se = gf["estimates"][name].get("std_err")
        diff = None if b is None else g - b
        rows.append(
            {
                "parameter": name,
                "gradfit": g,
                "biogeme": b,
                "biogeme_name": name + "_log" if name.endswith("_sigma") else name,
                "biogeme_raw": bg_estimates.get(name + "_log" if name.endswith("_sigma") else name),
                "difference": diff,
                "gradfit_std_err": se,
                "difference_in_std_err": None if diff is None or not se or not math.isfinite(se) else diff / se,
            }
        )
    bg_opt = biogeme["timings"]["optimization_s"]
    gf_opt = gf["timings"]["estimate_s"]
    summary = [
        {
            "tool": f"Biogeme {biogeme['biogeme_version']}",
            "draws": n,
            "wall_s": biogeme_wall,
            "optimisation_s": bg_opt,
            "iterations": biogeme["iterations"],
            "final_loglikelihood": biogeme["final_loglikelihood"],
            "loglikelihood_at_other_optimum": bg_at["gradfit_optimum"],
            "wall_ratio": biogeme_wall / gradfit_wall,
            "optimisation_ratio": None if bg_opt is None or not gf_opt else bg_opt / gf_opt,
            "converged": biogeme["converged"],
            "termination": biogeme["termination"],
        },
        {
            "tool": f"gradfit {gf['versions'].get('gradfit')}",
            "draws": n,
            "wall_s": gradfit_wall,
            "optimisation_s": gf_opt,
            "iterations": gf["iterations"],
            "final_loglikelihood": gf["loglikelihood"],
            "loglikelihood_at_other_optimum": gf_at["biogeme_optimum"],
            "wall_ratio": 1.0,
            "optimisation_ratio": 1.0,
            "converged": gf["converged"],
            "termination": gf["message"],
        },
    ]
    info = machine()
    result = {
        "benchmark": "peers: Biogeme vs gradfit, Optima h04 (examples/optima/h04.yaml)",
        "date": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "draws": n,
        "biogeme_seed": args.seed,
        "gradfit_integration": gf.get("integration"),
        "max_iterations": args.max_iterations,
        "gradfit_set": args.gradfit_set,
        "machine": info,
        "load_average_before": load_before,
        "load_average_after_fits": load_after,
        "git_commit": git_commit(),
        "versions": {
            "gradfit": gf["versions"],
            "biogeme": {
                "biogeme": biogeme["biogeme_version"],
                "python": biogeme["python"],
                "jax": biogeme.get("jax"),
                "numpy": biogeme.get("numpy"),
            },
        },
        "summary": summary,
        "loglikelihood": {
            "gradfit_draws": {"at_start": gf["initial_loglikelihood"], **gf_at},
            "biogeme_draws": {"at_start": biogeme["initial_loglikelihood"], **bg_at},
        },
        "timings": {
            "biogeme": {"subprocess_wall_s": biogeme_wall, **biogeme["timings"]},
            "gradfit": {"subprocess_wall_s": gradfit_wall, **gf["timings"]},
        },
        "estimates": rows,
        "biogeme": biogeme,
        "gradfit": gf,
    }
    (out / "peers.json").write_text(json.dumps(result, indent=2) + "\n")

    cpu = info.get("Model name", platform.processor() or "unknown CPU")
    print()
    print("Estimates (sigmas on the natural scale: Biogeme's exp(*_sigma_log)):")
    print()
    print(estimates_table(rows))
    print()
    bt, gt = biogeme["timings"], gf["timings"]
    print(
        f"Biogeme: import {bt['import_s']:.1f} s, estimate() {bt['estimate_s']:.1f} s = before the optimiser "
        f"{_f(bt.get('before_optimisation_s'), '.1f')} s + optimisation {_f(bg_opt, '.1f')} s + after it "
        f"{_f(bt.get('after_optimisation_s'), '.1f')} s (final gradient, BHHH, report files); "
        f"{biogeme['function_evaluations'] or 'n/a'} function evaluations; {biogeme['termination']}"
    )
    print(
        f"gradfit: fit() {gt['total_s']:.1f} s, of which compile {gt['compile_s']:.1f} s, optimisation "
        f"{gt['estimate_s']:.1f} s, standard errors (Hessian, sandwich, BHHH) {gt['inference_s']:.1f} s; "
        f"{gf['message']}"
    )
    print(
        f"LL at the start values: Biogeme {biogeme['initial_loglikelihood']:.3f}, "
        f"gradfit {gf['initial_loglikelihood']:.3f}"
    )
    print(
        f"Machine: {cpu}, {info.get('usable_cpus', info.get('cpu_count'))} usable CPUs of {info.get('cpu_count')}; "
        f"load average before {load_before[0]:.2f}, after the fits {load_after[0]:.2f}"
    )
    print(
        f"Date: {result['date']}; Biogeme {biogeme['biogeme_version']} (Python {biogeme['python']}, JAX "
        f"{biogeme.get('jax')}); gradfit {gf['versions'].get('gradfit')} (Python {gf['versions'].get('python')}, "
        f"JAX {gf['versions'].get('jax')}); commit {result['git_commit']}"
    )
    print(f"Written: {out / 'peers.json'}")
    print()
    print(summary_table(result))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StepFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)

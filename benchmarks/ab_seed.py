"""Opt-in: the seed model's value+gradient under two versions of gradfit, in one process, call by call.

    python benchmarks/ab_seed.py base REV [--dir DIR]     # copy git revision REV's gradfit to DIR/gradfit_base
    python benchmarks/ab_seed.py run [--dir DIR] [--rounds 8] [--calls 300] [--same] [--xla KEY=VALUE ...]
                                     [--people 326 --draws 100] [--set MODULE.NAME=VALUE ...]

Separate processes on the H100 VM differ by up to a third (machine instance, where the process lands), far
more than most changes: two programs interleaved call by call in one process differ by about 1 % when they
are the same code (`--same` times the base against itself). `run` builds the seed model with the working
tree's gradfit and with gradfit_base (the copy `base` made, its imports renamed, so both load side by side),
checks that their LL and gradient agree, then times synchronised value+gradient calls (waited for with
gradfit.runtime.ready), alternating the two and switching which goes first each round. DIR (default
benchmarks/.base, ignored by git) must travel with the run: name it in the device tool's `carry`.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import re
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from bench_seed import xla_options  # (a script's folder is on sys.path)

HERE = Path(__file__).resolve().parent
IMPORTS = [
    (re.compile(r"\bfrom gradfit(\.| import)"), r"from gradfit_base\1"),
    (re.compile(r"\bimport gradfit\.(\S+)"), r"import gradfit_base.\1"),
    (re.compile(r"^(\s*)import gradfit$", re.M), r"\1import gradfit_base as gradfit"),
]


def make_base(rev: str, out: Path) -> None:
    """REV's src/gradfit as out/gradfit_base, every import of gradfit pointed at gradfit_base."""
    tar = subprocess.run(["git", "archive", rev, "src/gradfit"], cwd=HERE.parent, capture_output=True, check=True)
    target = out / "gradfit_base"
    if target.exists():
        for path in sorted(target.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            dest = target / Path(member.name).relative_to("src/gradfit")
            dest.parent.mkdir(parents=True, exist_ok=True)
            data = archive.extractfile(member).read()
            if dest.suffix == ".py":
                text = data.decode()
                for pattern, repl in IMPORTS:
                    text = pattern.sub(repl, text)
                data = text.encode()
            dest.write_bytes(data)
    print(f"{rev} -> {target}")


def run(
    base_dir: Path, rounds: int, calls: int, same: bool, xla: list[str], people: int, draws: int, sets: list[str]
) -> None:
    import jax
    import numpy as np

    sys.path.insert(0, str(base_dir))
    base = importlib.import_module("gradfit_base")
    new = base if same else importlib.import_module("gradfit")
    if xla:  # more XLA options for the working tree's GPU programs only
        extra = xla_options(xla)
        new.model.GPU_COMPILER_OPTIONS = {**new.model.GPU_COMPILER_OPTIONS, **extra}
    for item in sets:  # module.attribute=value in the working tree's gradfit, e.g. kernels._blocks.PART_PROGRAMS=8192
        target, value = item.split("=", 1)
        module, attr = target.rsplit(".", 1)
        setattr(importlib.import_module(f"gradfit.{module}"), attr, ast.literal_eval(value))
    from gradfit_base.iclv.simulate import seed_model

    try:  # both waited for alike: as gradfit's optimisers wait, where this gradfit has that
        from gradfit.runtime import ready
    except ImportError:
        ready = jax.block_until_ready

    sim = seed_model(n_people=people, n_draws=draws)

    def build(pkg):
        model = pkg.Model(sim.spec, data=sim.data)
        theta = model.placement.vector(model._layout.start, model.dtype)

        def call():
            return model._vg(theta, model._arrays)

        value, grad = jax.block_until_ready(call())
        return call, float(value), np.asarray(grad)

    f_new, v_new, g_new = build(new)
    f_base, v_base, g_base = build(base)
    err = np.abs(g_new - g_base).max() / np.abs(g_base).max()
    print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}; LL {v_new!r} against {v_base!r}, gradient {err:.1e}")
    medians: dict[str, list[float]] = {"new": [], "base": []}
    for r in range(rounds):
        order = [("new", f_new), ("base", f_base)][:: 1 if r % 2 == 0 else -1]
        samples: dict[str, list[float]] = {"new": [], "base": []}
        for _ in range(calls):
            for name, fn in order:
                t0 = time.perf_counter()
                ready(fn())
                samples[name].append(time.perf_counter() - t0)
        for name, s in samples.items():
            medians[name].append(1e3 * statistics.median(s))
    label = {"new": "base (again)" if same else "working tree", "base": "base"}
    print(f"{'value+gradient, ms':<16} median of rounds  (each round's median of {calls} calls)")
    for name, ms in medians.items():
        print(f"{label[name]:<16} {statistics.median(ms):8.4f}   " + " ".join(f"{x:.3f}" for x in ms))
    print(f"working tree / base: {statistics.median(medians['new']) / statistics.median(medians['base']):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("base", help="copy a git revision's gradfit as gradfit_base")
    b.add_argument("rev")
    r = sub.add_parser("run", help="time the working tree's gradfit against gradfit_base")
    r.add_argument("--rounds", type=int, default=8)
    r.add_argument("--calls", type=int, default=300)
    r.add_argument("--same", action="store_true", help="time the base against itself (the harness's noise)")
    r.add_argument("--people", type=int, default=326, help="the seed model with this many people")
    r.add_argument("--draws", type=int, default=100)
    r.add_argument("--set", action="append", default=[], metavar="MODULE.NAME=VALUE", help="working tree only")
    r.add_argument("--xla", action="append", default=[], metavar="KEY=VALUE", help="an XLA option, working tree only")
    for p in (b, r):
        p.add_argument("--dir", type=Path, default=HERE / ".base")
    args = ap.parse_args()
    if args.command == "base":
        make_base(args.rev, args.dir)
    else:
        run(args.dir, args.rounds, args.calls, args.same, args.xla, args.people, args.draws, args.set)


if __name__ == "__main__":
    main()

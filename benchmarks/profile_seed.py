"""Opt-in: where the seed-sized value+gradient spends its time on a GPU (kernels, their durations, the gaps).

    python benchmarks/profile_seed.py --out DIR [--draws 100] [--calls 20]

Writes a JAX profiler trace (Perfetto JSON) of `--calls` value+gradient calls under DIR and prints: the
median wall time per call (synchronised and pipelined), the number of kernels per call, the sum of their
durations, and the kernels that take the most time.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os

import jax
import numpy as np
from small_blocks import pipelined_ms, sync_ms  # benchmarks/ is on the path when run as a script

import gradfit
from gradfit.iclv.simulate import seed_model


def trace_events(trace_dir: str) -> tuple[list[dict], list[dict]]:
    """(device events, host events) of the newest Perfetto trace under trace_dir."""
    path = sorted(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True))[-1]
    with gzip.open(path) as fh:
        trace = json.load(fh)
    names = {}
    for ev in trace["traceEvents"]:
        if ev.get("ph") == "M" and ev.get("name") == "process_name":
            names[ev["pid"]] = ev["args"]["name"]
    gpu = {pid for pid, n in names.items() if "/device:GPU" in n}
    timed = [ev for ev in trace["traceEvents"] if ev.get("ph") == "X"]
    return [ev for ev in timed if ev["pid"] in gpu], [ev for ev in timed if ev["pid"] not in gpu]


def timeline(device: list[dict], host: list[dict], calls: int) -> None:
    """The last call, host and device together, in microseconds from its first host event."""
    calls_start = sorted(ev["ts"] for ev in host if "PjitFunction" in ev["name"] or "pjit" in ev["name"].lower())
    t0 = calls_start[-1] if calls_start else device[-len(device) // calls]["ts"]
    rows = [(ev["ts"] - t0, ev["dur"], "host  " if ev in host else "device", ev["name"]) for ev in host + device]
    rows = sorted(r for r in rows if r[0] >= -5)
    for ts, dur, where, name in rows[:60] + [(0, 0, "...", "...")] + rows[-15:]:
        print(f"{ts:9.1f} {dur:8.1f} {where} {name[:90]}")


def _busy(events: list[dict]) -> float:
    """Microseconds during which at least one of the events runs (kernels may overlap)."""
    total, end = 0.0, -np.inf
    for ev in sorted(events, key=lambda e: e["ts"]):
        start, stop = ev["ts"], ev["ts"] + ev["dur"]
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--people", type=int, default=326)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--timeline", action="store_true", help="print the last call's host and device events")
    ap.add_argument("--kernels", action="store_true", help="print the last call's kernels in start order")
    args = ap.parse_args()

    sim = seed_model(n_people=args.people, n_draws=args.draws)
    model = gradfit.Model(sim.spec, data=sim.data)
    theta = model.placement.vector(model._layout.start, model.dtype)
    arrays = model._arrays

    def call():
        return model._vg(theta, arrays)

    jax.block_until_ready(call())
    hlo = model._vg.lower(theta, arrays).compile().as_text()
    print(f"device {model.device.device_kind}; jax {jax.__version__}")
    print(f"synchronised {sync_ms(call, 500):.3f} ms; back to back {pipelined_ms(call, 500):.3f} ms per call")
    print(f"HLO: {hlo.count(' fusion(')} fusions, {hlo.count('custom-call(')} custom calls in the entry")
    os.makedirs(args.out, exist_ok=True)
    with open(f"{args.out}/vg_hlo.txt", "w") as fh:
        fh.write(hlo)

    jax.profiler.start_trace(args.out, create_perfetto_trace=True)
    for _ in range(args.calls):
        jax.block_until_ready(call())
    jax.profiler.stop_trace()
    events, host = trace_events(args.out)
    events.sort(key=lambda e: e["ts"])
    per_name = collections.defaultdict(list)
    for ev in events:
        per_name[ev["name"]].append(ev["dur"])
    total = sum(ev["dur"] for ev in events) / args.calls
    span = (events[-1]["ts"] + events[-1]["dur"] - events[0]["ts"]) / args.calls if events else 0.0
    n = len(events) / args.calls
    print(f"{n:.1f} device events per call; kernel time {total:.1f} us per call; span {span:.1f} us")
    if n == int(n):  # the calls are synchronised, so each call's kernels are consecutive in time
        per_call = [events[c * int(n) : (c + 1) * int(n)] for c in range(args.calls)]
        spans = [ev[-1]["ts"] + ev[-1]["dur"] - ev[0]["ts"] for ev in per_call]
        busy = [_busy(ev) for ev in per_call]
        print(
            f"one call, first kernel start to last kernel end: median {np.median(spans):.1f} us; "
            f"device busy (any kernel running) {np.median(busy):.1f} us"
        )
    rows = sorted(per_name.items(), key=lambda kv: -sum(kv[1]))
    print(f"{'us/call':>8} {'count':>6}  kernel")
    for name, durs in rows[:40]:
        print(f"{sum(durs) / args.calls:8.2f} {len(durs) / args.calls:6.1f}  {name[:110]}")
    # Gaps between consecutive kernels within one call (idle device time between them).
    gaps = np.diff([e["ts"] for e in events]) - np.array([e["dur"] for e in events[:-1]])
    gaps = gaps[gaps < 200]
    print(f"median gap between kernels {np.median(gaps):.2f} us, mean {np.mean(gaps):.2f} us")
    if args.timeline:
        timeline(events, host, args.calls)
    if args.kernels and n == int(n):
        last = per_call[-1]
        print(f"{'start':>7} {'end':>7} {'us':>6}  kernel (last call, microseconds from its first kernel)")
        for ev in last:
            t = ev["ts"] - last[0]["ts"]
            print(f"{t:7.1f} {t + ev['dur']:7.1f} {ev['dur']:6.1f}  {ev['name'][:100]}")


if __name__ == "__main__":
    main()

"""Opt-in benchmark for the biLM (gradfit.bilm): training throughput, memory, metrics overhead, LSTM kernels.

    python benchmarks/bench_bilm.py [--size elmo_small|small] [--batch 128] [--length 20] [--vocab 50000]
        [--steps 50] [--json FILE] [--torch/--no-torch]

One call runs every section, each in a fresh Python process of this script (`--only SECTION`), one after
the other, so that each gets the device to itself: a JAX process holds most of the GPU's memory from its
first use and its peak-memory counter only grows, so one process per variant is what makes the peaks
comparable and keeps JAX and PyTorch out of each other's way. `--inline` runs them all in this process
instead (peaks then include the earlier sections). A failing section prints its error and the others go on;
no section starts after --budget seconds (the order below puts the head-to-head first).

Data: synthetic, the shape of `gradfit.bilm.data`'s output: windows of `length + 2` word-type ids drawn
Zipf-like (p(rank r) ~ 1/r) over 2 x vocab types (ids 0-3 the specials), each type a random character row
`[BOW, bytes..., EOW, 0...]`, and `to_vocab` mapping the first `vocab` types to themselves and the rest to
UNK (3). Tokens per step = batch x length (each position predicts its successor and its predecessor).

Sections:

- jax-bf16, jax-float32, jax-bf16-remat: gradfit's model (`Setup(ELMO_SMALL, vocab, full softmax)`) trained
  by `gradfit.train.loop.block_step` (blocks of --block steps in one jitted scan; optax clip_by_global_norm
  1.0 + Adam 1e-3); compiled once (`lower().compile()`, timed apart; its `memory_analysis()` is reported),
  one warm-up block, then ceil(steps / block) blocks timed from dispatch to `jax.block_until_ready`. Peak
  device memory: `memory_stats()["peak_bytes_in_use"]` of the section's own process.
- jax-bf16-f32params (last; run by default only when `init_params` gives parameters that are not all
  float32, as an earlier version did under gradfit's 64-bit mode): jax-bf16 with the parameters cast to
  float32 first.
- metrics: the `gradfit.train.train` driver (bf16, blocks of --metrics-every steps) with an `on_block`
  callback that alternates, every --metrics-blocks blocks, between doing nothing and what a real run
  (`gradfit.train.bilm`) does each block: read the block's losses with np.asarray, run `token_metrics` on a
  fixed validation sample of --metrics-sample windows and read it back, append both to lists. The clock is
  read at each switch after waiting for the device, so each segment is device time plus the host's
  callbacks; overhead = (metrics segments - no-op segments) / no-op segments. One `train` call: one
  compilation, excluded (it is in the first block, before the first mark).
- lstm-jax: one LSTM layer, forward + backward (value_and_grad of sum(output * random cotangent) with
  respect to the weights and the input) at (batch, length, projection) inputs and the model's cell size:
  gradfit's scan LSTMP (`gradfit.bilm.model._lstmp`; bf16, bf16 + remat, float32), the same scan cell
  without the projection (float32), and `jax.experimental.rnn.lstm` (cuDNN; no projection, so a different,
  larger layer: cell-wide output and recurrence; float32 with TF32 allowed: it has no bf16; GPU only).
- torch (if PyTorch imports and CUDA is available; --no-torch skips it): `benchmarks/bilm_torch.py`, the same
  architecture with torch.nn.LSTM (cuDNN, proj_size) and Adam (fused): bf16 autocast, float32, and float32
  with TF32 matmuls (as JAX's default precision allows on the GPU); peak `torch.cuda.max_memory_allocated`;
  and its one-layer nn.LSTM timings beside the JAX ones. The baseline omits ELMo's +-3 cell/output clip.

The last lines printed are the table (name, tokens/s, step ms, peak MB, compiled temp MB); --json gets all.
gradfit's persistent compilation cache is on (GRADFIT_COMPILATION_CACHE=0 turns it off): a second run
reads the compiled programs back, which shortens "compile_s" but changes no timing after it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# name: (compute, remat, parameters cast to float32 after init_params)
JAX_VARIANTS = {
    "jax-bf16": ("bf16", False, False),
    "jax-bf16-f32params": ("bf16", False, True),  # run by default only when init_params gives other dtypes
    "jax-float32": ("float32", False, False),
    "jax-bf16-remat": ("bf16", True, False),
}
# the head-to-head first (jax-bf16, torch): with --budget, what is left when time runs out is skipped
SECTIONS = ("jax-bf16", "torch", "jax-float32", "jax-bf16-remat", "metrics", "lstm-jax")
ALL_SECTIONS = (*JAX_VARIANTS, "metrics", "lstm-jax", "torch")
MB = 2**20


# ----------------------------------------------------------------------------------------------- data, sizes


def synthetic_data(n_types, vocab, max_chars, n_chars, n_windows, length, seed=0):
    """(windows (n_windows, length + 2) int32, char table (n_types, max_chars) int32, to_vocab (n_types,) int32)."""
    rng = np.random.default_rng(seed)
    n_words = n_types - 4  # ids 0-3: <pad>, <s>, </s>, <unk>
    p = 1.0 / np.arange(1, n_words + 1)
    windows = (rng.choice(n_words, size=(n_windows, length + 2), p=p / p.sum()) + 4).astype(np.int32)
    # character rows as gradfit.bilm.data writes them: [BOW=1, 5 + byte ..., EOW=2, 0 ...]
    lengths = np.minimum(rng.geometric(0.15, n_types), max_chars - 2)
    pos = np.arange(max_chars)
    body = rng.integers(5, n_chars, (n_types, max_chars))
    chars = np.where((pos >= 1) & (pos <= lengths[:, None]), body, 0)
    chars[:, 0] = 1
    chars[np.arange(n_types), lengths + 1] = 2
    chars[0] = 0
    chars[1, :3], chars[2, :3], chars[3, :3] = (1, 3, 2), (1, 4, 2), (1, 2, 0)
    to_vocab = np.arange(n_types, dtype=np.int32)
    to_vocab[vocab:] = 3
    return windows, chars.astype(np.int32), to_vocab


def model_sizes(size: str):
    from gradfit.bilm.model import ELMO_SMALL, Sizes

    return {"elmo_small": ELMO_SMALL, "small": Sizes()}[size]


def sizes_dict(size: str) -> dict:
    import dataclasses

    return dataclasses.asdict(model_sizes(size))


def data_for(args, n_windows: int, seed: int = 0):
    s = model_sizes(args.size)
    return synthetic_data(2 * args.vocab, args.vocab, s.max_chars, s.n_chars, n_windows, args.length, seed)


# ----------------------------------------------------------------------------------------------- JAX helpers


def _jax_meta() -> dict:
    import jax

    d = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": d.device_kind,
        "devices": len(jax.devices()),
    }


def _peak() -> dict:
    import jax

    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001 - not every backend has it
        stats = {}
    return {k: stats.get(k) for k in ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")}


def _memory_analysis(compiled) -> dict:
    try:
        m = compiled.memory_analysis()
    except Exception as e:  # noqa: BLE001
        return {"error": repr(e)}
    if m is None:
        return {}
    return {k: getattr(m, k) for k in dir(m) if k.endswith("_in_bytes") and isinstance(getattr(m, k), int)}


def _dtypes(tree) -> list[str]:
    import jax

    return sorted({str(x.dtype) for x in jax.tree_util.tree_leaves(tree) if hasattr(x, "dtype")})


def init_param_dtypes(size: str, vocab: int) -> list[str]:
    """The dtypes `init_params` gives (abstractly: nothing runs, no device is touched)."""
    import jax

    from gradfit.bilm.model import Setup, init_params

    setup = Setup(sizes=model_sizes(size), vocab=vocab)
    return _dtypes(jax.eval_shape(lambda: init_params(jax.random.key(0), setup)))


def _optimizer():
    import optax

    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))


# ----------------------------------------------------------------------------------------------- sections


def jax_variant(args, compute: str, remat: bool, cast: bool = False) -> dict:
    """Training throughput of block_step, the compiled step's memory and this process's peak device memory."""
    import jax
    import jax.numpy as jnp

    from gradfit.bilm.model import Setup, init_params, loss_fn
    from gradfit.train.loop import block_step

    setup = Setup(sizes=model_sizes(args.size), vocab=args.vocab, compute=compute, remat=remat)
    block = max(1, min(args.block, args.steps))
    n_blocks = -(-args.steps // block)
    w, c, v = data_for(args, max(4 * args.batch, 1024))
    windows, char_table, to_vocab = jnp.asarray(w), jnp.asarray(c), jnp.asarray(v)
    params = init_params(jax.random.key(0), setup)
    init_dtypes = _dtypes(params)
    if cast:
        params = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), params)
    optimizer = _optimizer()
    opt_state = optimizer.init(params)
    run = block_step(loss_fn(setup, char_table, to_vocab), optimizer, args.batch)
    rng = np.random.default_rng(1)
    rows = [jnp.asarray(rng.integers(0, len(w), (block, args.batch), dtype=np.int32)) for _ in range(n_blocks + 1)]
    keys = jax.random.split(jax.random.key(2), block)
    out = {
        **_jax_meta(),
        "precision": compute,
        "remat": remat,
        "batch": args.batch,
        "length": args.length,
        "vocab": args.vocab,
        "block": block,
        "parameters": sum(x.size for x in jax.tree_util.tree_leaves(params)),
        "init_param_dtypes": init_dtypes,
        "param_dtypes": _dtypes(params),
        "optimizer_state_dtypes": _dtypes(opt_state),
    }
    t0 = time.perf_counter()
    compiled = run.lower(params, opt_state, windows, rows[0], keys).compile()
    out["compile_s"] = time.perf_counter() - t0
    out["compiled_memory"] = _memory_analysis(compiled)
    t0 = time.perf_counter()
    params, opt_state, losses = compiled(params, opt_state, windows, rows[0], keys)
    jax.block_until_ready(losses)
    out["warmup_block_s"] = time.perf_counter() - t0
    out["loss_first"] = float(losses[0])
    history = []
    t0 = time.perf_counter()
    for i in range(n_blocks):
        params, opt_state, losses = compiled(params, opt_state, windows, rows[i + 1], keys)
        history.append(losses)
    jax.block_until_ready((params, history))
    seconds = time.perf_counter() - t0
    history = np.concatenate([np.asarray(x) for x in history])
    steps = n_blocks * block
    out.update(
        steps=steps,
        seconds=seconds,
        step_ms=1e3 * seconds / steps,
        tokens_per_s=steps * args.batch * args.length / seconds,
        loss_last=float(history[-1]),
        finite=bool(np.isfinite(history).all()),
        **_peak(),
    )
    return out


def metrics_overhead(args) -> dict:
    """gradfit.train.train with an on_block that alternates between nothing and a real run's per-block work."""
    import jax
    import jax.numpy as jnp

    from gradfit.bilm.model import Setup, init_params, loss_fn, token_metrics
    from gradfit.train.loop import TrainSettings, train

    every, seg_blocks, segments = args.metrics_every, args.metrics_blocks, 4  # no-op, metrics, no-op, metrics
    max_steps = every * (1 + segments * seg_blocks)
    setup = Setup(sizes=model_sizes(args.size), vocab=args.vocab, compute="bf16")
    w, c, v = data_for(args, (max_steps + 2) * args.batch)  # more steps per epoch than max_steps: no evaluation
    windows, char_table, to_vocab = jnp.asarray(w), jnp.asarray(c), jnp.asarray(v)
    val = jnp.asarray(data_for(args, args.metrics_sample, seed=7)[0])
    params = init_params(jax.random.key(0), setup)
    t0 = time.perf_counter()
    np.asarray(token_metrics(params, val, char_table, to_vocab, setup))  # compiled before the clock runs
    metrics_compile_s = time.perf_counter() - t0
    settings = TrainSettings(epochs=1, batch_size=args.batch, patience=None, block_steps=every, max_steps=max_steps)
    marks, losses, history = [], [], []
    t_start = time.perf_counter()

    def on_block(report):
        j = report.step // every  # 1-based block number
        if j >= 2 and ((j - 2) // seg_blocks) % 2 == 1:  # a metrics segment: what gradfit.train.bilm does
            block_losses = np.asarray(report.losses)
            history.append(np.asarray(token_metrics(report.state.params, val, char_table, to_vocab, setup)))
            losses.extend(block_losses.tolist())
        if (j - 1) % seg_blocks == 0:  # a segment ends (j = 1: the first block, which compiled)
            jax.block_until_ready(report.losses)
            marks.append(time.perf_counter())

    result = train(
        params, loss_fn(setup, char_table, to_vocab), _optimizer(), windows, val, settings, on_block=on_block
    )
    jax.block_until_ready(result.state.params)
    durations = np.diff(marks)
    noop, metrics = durations[0::2], durations[1::2]
    seg_tokens = seg_blocks * every * args.batch * args.length
    out = {
        **_jax_meta(),
        "precision": "bf16",
        "every": every,
        "sample_windows": args.metrics_sample,
        "segment_blocks": seg_blocks,
        "segments": len(durations),
        "stopped": result.stopped,
        "steps": int(result.state.step),
        "first_block_s": marks[0] - t_start,
        "token_metrics_compile_s": metrics_compile_s,
        "noop_segments_s": noop.tolist(),
        "metrics_segments_s": metrics.tolist(),
        "noop_step_ms": 1e3 * noop.mean() / (seg_blocks * every),
        "metrics_step_ms": 1e3 * metrics.mean() / (seg_blocks * every),
        "noop_tokens_per_s": seg_tokens / noop.mean(),
        "metrics_tokens_per_s": seg_tokens / metrics.mean(),
        "overhead": (metrics.sum() - noop.sum()) / noop.sum(),
        "overhead_min": (metrics.min() - noop.min()) / noop.min(),
        "metrics_reads": len(history),
        "losses_read": len(losses),
        "finite": bool(np.isfinite(losses).all()),
        **_peak(),
    }
    return out


def _time_jax(fn, fn_args, reps: int) -> dict:
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(fn(*fn_args))
    first = time.perf_counter() - t0
    for _ in range(3):
        out = fn(*fn_args)
    jax.block_until_ready(out)
    t0 = time.perf_counter()
    for _ in range(reps):
        out = fn(*fn_args)
    jax.block_until_ready(out)
    return {"ms": 1e3 * (time.perf_counter() - t0) / reps, "first_call_s": first}


def lstm_jax(args) -> list[dict]:
    """One LSTM layer forward + backward: gradfit's scan LSTMP, a scan LSTM without projection, cuDNN's LSTM."""
    import jax
    import jax.numpy as jnp

    from gradfit.bilm.model import Setup, _lstmp

    sizes = model_sizes(args.size)
    b, t, p, h = args.batch, args.length, sizes.projection, sizes.cell
    k = iter(jax.random.split(jax.random.key(0), 10))
    f32 = jnp.float32  # explicit everywhere: importing gradfit turns on 64-bit floats

    def normal(shape, fan_in=1):
        return jax.random.normal(next(k), shape, f32) / np.float32(np.sqrt(fan_in))

    layer = {
        "wx": normal((p, 4 * h), p),
        "wh": normal((p, 4 * h), p),
        "b": jnp.zeros(4 * h, f32),
        "wp": normal((h, p), h),
    }
    x, ct_p, ct_h = normal((b, t, p)), normal((b, t, p)), normal((b, t, h))
    reps = max(20, args.steps)
    shape = {"batch": b, "length": t, "input": p, "cell": h}
    rows = []

    def add(row, fn, fn_args):
        try:
            rows.append({**row, **shape, **_time_jax(fn, fn_args, reps)})
        except Exception as e:  # noqa: BLE001
            rows.append({**row, **shape, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"})
            print(f"  {row['row']}: {rows[-1]['error']}", flush=True)

    for compute, remat in (("bf16", False), ("bf16", True), ("float32", False)):
        setup = Setup(sizes=sizes, vocab=args.vocab, compute=compute, remat=remat)

        def loss(layer, x, setup=setup):
            return jnp.sum(_lstmp(layer, x, setup) * ct_p)

        name = f"jax-lstmp-scan-{compute}{'-remat' if remat else ''}"
        fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        add({"row": name, "kernel": "gradfit _lstmp (lax.scan)", "projection": p, "precision": compute}, fn, (layer, x))

    # the same scan cell without the projection (and without the clip): the layer cuDNN computes
    plain = {"wx": layer["wx"], "wh": normal((h, 4 * h), h), "b": layer["b"]}

    def scan_lstm(wts, x):
        gx = jnp.swapaxes(x @ wts["wx"] + wts["b"], 0, 1)

        def step(carry, g):
            hh, cc = carry
            g = g + hh @ wts["wh"]
            i, f, u, o = jnp.split(g, 4, axis=-1)
            cc = jax.nn.sigmoid(f) * cc + jax.nn.sigmoid(i) * jnp.tanh(u)
            hh = jax.nn.sigmoid(o) * jnp.tanh(cc)
            return (hh, cc), hh

        _, hs = jax.lax.scan(step, (jnp.zeros((b, h), f32), jnp.zeros((b, h), f32)), gx)
        return jnp.sum(jnp.swapaxes(hs, 0, 1) * ct_h)

    fn = jax.jit(jax.value_and_grad(scan_lstm, argnums=(0, 1)))
    add({"row": "jax-lstm-scan-float32", "kernel": "lax.scan LSTM", "projection": None, "precision": "float32"},
        fn, (plain, x))  # fmt: skip

    row = {"row": "jax-lstm-cudnn-float32", "kernel": "jax.experimental.rnn.lstm (cuDNN)", "projection": None,
           "precision": "float32 (TF32 allowed)"}  # fmt: skip
    if jax.default_backend() != "gpu":
        rows.append({**row, **shape, "skipped": f"cuDNN only (backend {jax.default_backend()})"})
    else:
        try:
            from jax.experimental import rnn

            weights = rnn.init_lstm_weight(next(k), p, h, 1, False)
            h0 = jnp.zeros((1, b, h), f32)
            lengths = jnp.full((b,), t, jnp.int32)

            def cudnn(weights, x):
                y, _, _ = rnn.lstm(
                    x, h0, h0, weights, lengths, input_size=p, hidden_size=h, num_layers=1, dropout=0.0,
                    bidirectional=False,
                )  # fmt: skip
                return jnp.sum(y * ct_h)

            add(row, jax.jit(jax.value_and_grad(cudnn, argnums=(0, 1))), (weights, x))
        except Exception as e:  # noqa: BLE001
            rows.append({**row, **shape, "error": f"{type(e).__name__}: {e}"})
    for r in rows:
        if "ms" in r:
            r["tokens_per_s"] = b * t / (r["ms"] / 1e3)
    return rows


def torch_section(args) -> dict:
    try:
        import torch
    except ImportError as e:
        return {"skipped": f"PyTorch does not import: {e}"}
    if not torch.cuda.is_available() and not args.torch_cpu:
        return {"skipped": "no CUDA device for PyTorch"}
    import bilm_torch  # benchmarks/ is on sys.path: this script's folder

    if not args.inline:  # gradfit's sizes import JAX: keep it off the GPU in PyTorch's process
        import jax

        jax.config.update("jax_platforms", "cpu")

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = sizes_dict(args.size)
    data = data_for(args, max(4 * args.batch, 1024))
    out = {"rows": [], "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
    for name, amp, tf32 in (("torch-bf16-amp", True, None), ("torch-float32", False, False),
                            ("torch-float32-tf32", False, True)):  # fmt: skip
        try:
            row = bilm_torch.train_tokens_per_second(
                sizes, args.vocab, args.batch, args.length, args.steps, amp, device, data=data, tf32_matmul=tf32
            )
            out["rows"].append({"row": name, **row})
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            out["rows"].append({"row": name, "error": f"{type(e).__name__}: {e}"})
        if device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
    try:
        s = model_sizes(args.size)
        out["lstm"] = bilm_torch.lstm_layer_timings(
            args.batch, args.length, s.projection, s.cell, device, reps=max(20, args.steps)
        )
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        out["lstm"] = [{"row": "torch-lstm", "error": f"{type(e).__name__}: {e}"}]
    return out


def run_section(name: str, args):
    if name in JAX_VARIANTS:
        return jax_variant(args, *JAX_VARIANTS[name])
    if name == "metrics":
        return metrics_overhead(args)
    if name == "lstm-jax":
        return lstm_jax(args)
    if name == "torch":
        return torch_section(args)
    raise ValueError(f"unknown section {name}")


# ----------------------------------------------------------------------------------------------- driver


def child_command(args, name: str, json_path: str) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--only", name, "--json", json_path]
    for flag in (
        "size",
        "batch",
        "length",
        "vocab",
        "steps",
        "block",
        "metrics_every",
        "metrics_blocks",
        "metrics_sample",
    ):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.torch_cpu:
        cmd.append("--torch-cpu")
    return cmd


def in_child(args, name: str, timeout: float):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.json")
        try:
            proc = subprocess.run(child_command(args, name, path), timeout=timeout, cwd=HERE.parent)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)["result"]
        return {"error": f"the section's process exited with {proc.returncode} and wrote nothing"}


def _mb(x):
    return None if x is None else x / MB


def table_rows(sections: dict) -> list[dict]:
    rows = []

    def add(name, tokens=None, ms=None, peak=None, temp=None, note=""):
        rows.append(
            {"name": name, "tokens_per_s": tokens, "step_ms": ms, "peak_mb": peak, "temp_mb": temp, "note": note}
        )

    for name in JAX_VARIANTS:
        r = sections.get(name)
        if not isinstance(r, dict):
            continue
        if "error" in r:
            add(name, note=r["error"][:100])
            continue
        temp = (r.get("compiled_memory") or {}).get("temp_size_in_bytes")
        add(name, r.get("tokens_per_s"), r.get("step_ms"), _mb(r.get("peak_bytes_in_use")), _mb(temp),
            f"compile {r.get('compile_s', 0):.1f} s")  # fmt: skip
    r = sections.get("metrics")
    if isinstance(r, dict):
        if "error" in r:
            add("train-driver", note=r["error"][:100])
        else:
            add(f"train-driver-noop-every{r['every']}", r["noop_tokens_per_s"], r["noop_step_ms"])
            add(f"train-driver-metrics-every{r['every']}", r["metrics_tokens_per_s"], r["metrics_step_ms"],
                note=f"overhead {100 * r['overhead']:+.2f}% (min-based {100 * r['overhead_min']:+.2f}%)")  # fmt: skip
    for r in sections.get("lstm-jax") or []:
        if isinstance(r, dict) and "row" in r:
            note = r.get("error") or r.get("skipped") or "1 layer fwd+bwd"
            add(r["row"], r.get("tokens_per_s"), r.get("ms"), note=note[:100])
    t = sections.get("torch")
    if isinstance(t, dict):
        if "rows" not in t:
            add("torch", note=(t.get("error") or t.get("skipped") or "")[:100])
        for r in t.get("rows", []):
            note = r.get("error") or f"LSTM runs in {r.get('lstm_dtype')}"
            add(r["row"], r.get("tokens_per_s"), r.get("step_ms"), _mb(r.get("peak_bytes")), note=note[:100])
        for r in t.get("lstm", []):
            ms = r.get("ms")
            tokens = None if ms is None else r["batch"] * r["length"] / (ms / 1e3)
            add(r["row"], tokens, ms, note=(r.get("error") or f"1 layer fwd+bwd, {r.get('dtype')}")[:100])
    return rows


def print_table(rows: list[dict]) -> None:
    def f(x, fmt):
        return "-" if x is None else format(x, fmt)

    print(f"\n{'name':<34} {'tokens/s':>11} {'step ms':>9} {'peak MB':>9} {'temp MB':>9}  note")
    for r in rows:
        print(
            f"{r['name']:<34} {f(r['tokens_per_s'], ',.0f'):>11} {f(r['step_ms'], '.2f'):>9} "
            f"{f(r['peak_mb'], ',.0f'):>9} {f(r['temp_mb'], ',.0f'):>9}  {r['note']}"
        )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="elmo_small", choices=("elmo_small", "small"))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--vocab", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=50, help="timed training steps per variant")
    parser.add_argument("--block", type=int, default=10, help="steps per device call (block_step)")
    parser.add_argument("--metrics-every", type=int, default=50, help="steps per block in the metrics section")
    parser.add_argument("--metrics-sample", type=int, default=64, help="validation windows for token_metrics")
    parser.add_argument("--metrics-blocks", type=int, default=3, help="blocks per timed segment (4 segments)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--torch", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--torch-cpu", action="store_true", help="run the PyTorch rows on the CPU (tests only)")
    parser.add_argument("--only", default=None, help=f"one section in this process: {', '.join(ALL_SECTIONS)}")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated sections to run")
    parser.add_argument("--inline", action="store_true", help="run all sections in this process")
    parser.add_argument("--section-timeout", type=int, default=300, help="seconds per section process")
    parser.add_argument("--budget", type=float, default=420, help="start no section after this many seconds")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.only:  # one section, for the driver (or by hand)
        try:
            result = run_section(args.only, args)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            result = {"error": f"{type(e).__name__}: {e}"}
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"section": args.only, "result": result}, f, indent=1, default=str)
        else:
            print(json.dumps(result, indent=1, default=str))
        return

    start = time.perf_counter()
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    if not args.torch:
        wanted = [s for s in wanted if s != "torch"]
    if not args.inline:  # this process only drives: it must not take the GPU (its memory) from the sections
        import jax

        jax.config.update("jax_platforms", "cpu")
    try:
        dtypes = init_param_dtypes(args.size, args.vocab)
    except Exception as e:  # noqa: BLE001
        dtypes = [f"unknown: {e}"]
    if dtypes != ["float32"]:
        print(f"note: gradfit's init_params gives parameters of {dtypes}, not float32 only", flush=True)
        if "jax-bf16" in wanted and "jax-bf16-f32params" not in wanted:
            wanted.append("jax-bf16-f32params")
    meta = {
        "argv": sys.argv[1:],
        "host": platform.node(),
        "python": platform.python_version(),
        "sizes": sizes_dict(args.size),
        "batch": args.batch,
        "length": args.length,
        "vocab": args.vocab,
        "steps": args.steps,
        "mode": "inline" if args.inline else "one process per section",
        "init_param_dtypes": dtypes,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    sections, timings = {}, {}
    for name in wanted:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        if t0 - start > args.budget:
            sections[name] = {"skipped": f"time budget ({args.budget} s) spent"}
            print(f"  {name}: skipped, time budget spent", flush=True)
            continue
        if args.inline:
            try:
                sections[name] = run_section(name, args)
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                sections[name] = {"error": f"{type(e).__name__}: {e}"}
        else:
            # every section ends by budget + 120 s (the device tool allows 600 s a command)
            timeout = min(args.section_timeout, max(60.0, args.budget + 120 - (t0 - start)))
            sections[name] = in_child(args, name, timeout)
        timings[name] = time.perf_counter() - t0
        r = sections[name]
        if isinstance(r, dict) and ("error" in r or "skipped" in r):
            print(f"  {name}: {r.get('error') or r.get('skipped')}", flush=True)
        print(f"  ({timings[name]:.1f} s)", flush=True)
    rows = table_rows(sections)
    meta["seconds"] = time.perf_counter() - start
    meta["section_seconds"] = timings
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "sections": sections, "table": rows}, f, indent=1, default=str)
    print(f"\ntotal {meta['seconds']:.0f} s; {len(wanted)} sections")
    print_table(rows)


if __name__ == "__main__":
    main()

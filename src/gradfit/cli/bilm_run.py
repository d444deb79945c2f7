"""The work behind `gradfit bilm train | eval | embed`: run folders, checkpoints, metrics files, progress.

A run folder holds config.yaml, corpus.npz (the word types, their characters and the output vocabulary: what
eval and embed need), history.csv (one row per epoch), metrics.csv (one row every `metrics.every` steps,
appended in blocks), analysis.jsonl (error-analysis samples), state.npz (the last resumable checkpoint),
best.npz (the best epoch's weights), log.txt and, last, results.json.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from gradfit.errors import DataError, GradfitError, SpecError
from gradfit.io.files import atomic_write_bytes
from gradfit.runs import (
    CONFIG,
    RunError,
    RunFolder,
    RunRecorder,
    create_run,
    file_sha256,
    git_commit,
    package_versions,
    resolve_run,
)

EPOCH_COLUMNS = ("epoch", "train_loss", "val_loss", "val_perplexity", "best", "seconds", "step")
STEP_COLUMNS = (
    "step", "epoch", "loss", "loss_last", "sample_perplexity", "sample_accuracy", "sample_top5",
    "tokens_per_second", "seconds",
)  # fmt: skip
STATE, BEST, CORPUS = "state.npz", "best.npz", "corpus.npz"


def read_config(path: Path, overrides: list[str]):
    from gradfit.bilm.config import config_from_dict
    from gradfit.io.overrides import read_config as read_workload_config

    return read_workload_config(path, overrides, config_from_dict)


def _npz(arrays: dict, meta: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    return buf.getvalue()


def _load_npz(path: Path) -> tuple[dict, dict]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files if k != "meta"}
            meta = json.loads(bytes(npz["meta"]).decode())
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise RunError(f"{path}: unreadable ({exc}); the run folder is damaged") from None
    return arrays, meta


def _leaves(tree) -> dict:
    return {f"a{i}": np.asarray(v) for i, v in enumerate(jax.tree_util.tree_leaves(tree))}


def _unflatten(template, arrays: dict, prefix: str = "a"):
    n = len(jax.tree_util.tree_leaves(template))
    leaves = [jnp.asarray(arrays[f"{prefix}{i}"]) for i in range(n)]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)


def save_state(run: RunFolder, state) -> None:
    """The whole training state (weights, optimiser, best weights, position): `--resume` continues exactly."""
    tree = (state.params, state.opt_state, state.best_params, state.loss_sum)
    meta = {
        "epoch": state.epoch, "position": state.position, "step": state.step, "best_val": state.best_val,
        "best_epoch": state.best_epoch, "history": list(state.history),
    }  # fmt: skip
    atomic_write_bytes(run.file(STATE), _npz(_leaves(tree), meta))


def load_state(run: RunFolder, params, optimizer):
    from gradfit.train.loop import TrainState

    arrays, meta = _load_npz(run.file(STATE))
    template = (params, optimizer.init(params), params, jnp.zeros((), jnp.float32))
    p, opt_state, best, loss_sum = _unflatten(template, arrays)
    return TrainState(
        p, opt_state, meta["epoch"], meta["position"], meta["step"], loss_sum, meta["best_val"],
        meta["best_epoch"], best, tuple(meta["history"]),
    )  # fmt: skip


def save_corpus(run: RunFolder, corpus) -> None:
    arrays = {"types": np.asarray(corpus.types, dtype=str), "chars": corpus.chars, "to_vocab": corpus.to_vocab}
    atomic_write_bytes(run.file(CORPUS), _npz(arrays, {"vocab_size": corpus.vocab_size}))


def load_model(run: RunFolder):
    """(config, setup, best params, corpus without its stream) of a finished run."""
    from gradfit.bilm.data import Corpus
    from gradfit.bilm.model import init_params

    if not run.complete or not run.file(BEST).is_file():
        raise RunError(f"{run.path}: this run did not finish (no results.json / {BEST}); train it or --resume it")
    config = read_config(run.file(CONFIG), [])
    arrays, meta = _load_npz(run.file(CORPUS))
    types = tuple(str(t) for t in arrays["types"])
    corpus = Corpus(types, arrays["chars"], arrays["to_vocab"], int(meta["vocab_size"]), np.zeros(0, np.int32))
    setup = config.model.setup(corpus.vocab_size)
    weights, _ = _load_npz(run.file(BEST))
    params = _unflatten(init_params(jax.random.key(0), setup), weights)
    return config, setup, params, corpus


def train_run(
    config_path: Path,
    overrides: list[str],
    runs_dir: Path | None,
    name: str | None,
    resume: Path | None,
    say: Callable[[str], None],
) -> tuple[RunFolder, dict]:
    from gradfit.bilm.data import build_corpus, read_corpus
    from gradfit.bilm.model import init_params
    from gradfit.train.bilm import Cadence, optimizer, prepare, train_bilm
    from gradfit.train.loop import TrainSettings

    t_start = time.perf_counter()
    config = read_config(config_path, overrides)
    corpus = build_corpus(read_corpus(config.data.corpus), config.data.vocab_size, config.data.max_chars)
    setup = config.model.setup(corpus.vocab_size)
    d, tr, m = config.data, config.training, config.metrics
    data = prepare(corpus, d.window, d.validation, d.split_seed, m.sample_windows)
    settings = TrainSettings(tr.epochs, tr.batch_size, tr.patience, 0.0, tr.seed, tr.accumulate, m.every, tr.max_steps)
    if data.train.shape[0] < tr.batch_size * tr.accumulate:
        raise SpecError(
            f"training.batch_size {tr.batch_size} x accumulate {tr.accumulate}: the corpus gives only "
            f"{data.train.shape[0]} training windows of {d.window} tokens; lower them"
        )
    steps_per_epoch = int(data.train.shape[0]) // (tr.batch_size * tr.accumulate)
    if tr.max_steps is not None and tr.max_steps < steps_per_epoch:
        raise SpecError(
            f"training.max_steps {tr.max_steps}: an epoch here is {steps_per_epoch} steps and the best model is "
            "chosen at an epoch's end; allow at least one epoch"
        )
    too_wide = [w for w, _ in setup.sizes.filters if w > d.max_chars]
    if too_wide:
        raise SpecError(
            f"model.filters: width {too_wide[0]} is wider than data.max_chars {d.max_chars}; "
            "narrow the filters or raise max_chars"
        )
    params = init_params(jax.random.key(tr.seed), setup)
    state = None
    dumped = config.model_dump(mode="json")
    if resume is not None:
        run = resolve_run(resume)
        if run.complete:
            raise RunError(f"--resume {run.path}: this run is complete (results.json exists); nothing to resume")
        saved = run.read_config()
        if saved != dumped:
            raise RunError(f"--resume {run.path}: the config (with --set) differs from the run's config.yaml")
        if not run.file(STATE).is_file():
            raise RunError(f"--resume {run.path}: no checkpoint was written before the run stopped; start a new run")
        state = load_state(run, params, optimizer(tr.learning_rate, tr.clip_norm))
    else:
        run = create_run(runs_dir if runs_dir is not None else Path(config_path).parent / "runs", config.name, name)
        run.write_text(CONFIG, yaml.safe_dump(dumped, sort_keys=False, width=120))
        save_corpus(run, corpus)
    epochs = RunRecorder(run, EPOCH_COLUMNS, flush_every=1, flush_seconds=0.0)
    steps = RunRecorder(run, STEP_COLUMNS, flush_every=20, flush_seconds=10.0, history="metrics.csv")
    if state is not None:  # rows written after the checkpoint come again: drop them first
        _truncate(run.file("metrics.csv"), state.step)
        _truncate(run.file("history.csv"), state.epoch - 1)
        _truncate_jsonl(run.file("analysis.jsonl"), state.step)
    n_params = sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(params))
    head = (
        f"{config.name}: {len(corpus.stream):,} tokens, {len(corpus.types):,} types, vocabulary {corpus.vocab_size:,}, "
        f"{data.train.shape[0]:,} train / {data.validation.shape[0]:,} validation windows of {d.window}; "
        f"{config.model.size} model, {n_params:,} parameters, {setup.compute}, device {jax.devices()[0].platform}"
    )
    epochs.log(f"{'resumed at step ' + str(state.step) if state else 'started'}: {head}")
    epochs.flush()
    say(f"{head}\nrun folder {run.path}")

    def on_metrics(row: dict) -> None:
        steps.row(row)
        say(
            f"step {row['step']:6d}  loss {row['loss']:.4f}  sample ppl {row['sample_perplexity']:9.2f}  "
            f"acc {row['sample_accuracy']:.3f}  top5 {row['sample_top5']:.3f}  {row['tokens_per_second']:,.0f} tok/s"
        )

    def on_analysis(step: int, rows: list[dict]) -> None:
        with open(run.file("analysis.jsonl"), "a", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps({"step": step, **r}) + "\n")

    def on_checkpoint(st) -> None:
        steps.flush()
        save_state(run, st)

    def on_epoch(report) -> None:
        if report.best:
            atomic_write_bytes(run.file(BEST), _npz(_leaves(report.params), {"epoch": report.epoch}))
        row = {**report._asdict(), "val_perplexity": math.exp(min(report.val_loss, 700))}
        epochs.row(row)
        epochs.log(f"epoch {report.epoch}: train {report.train_loss:.4f}, val {report.val_loss:.4f}")
        say(f"epoch {report.epoch:3d}  train loss {report.train_loss:.4f}  val ppl {row['val_perplexity']:.2f}"
            f"{'  *' if report.best else ''}")  # fmt: skip

    cadence = Cadence(m.every, m.analysis_every, m.analysis_windows, m.checkpoint_every)
    try:
        result = train_bilm(
            data, setup, settings, tr.learning_rate, tr.clip_norm, cadence, corpus.types,
            on_metrics, on_analysis, on_checkpoint, on_epoch, state, params,
        )  # fmt: skip
    except GradfitError:
        if state is None:
            run.discard()
        raise
    except BaseException as exc:  # interrupted: keep the last checkpoint for --resume
        steps.flush()
        epochs.log(f"stopped: {type(exc).__name__}: {exc}")
        epochs.flush()
        raise
    steps.flush()
    save_state(run, result.state)
    if result.best_epoch == 0:
        if state is None:
            run.discard()  # nothing worth keeping: the first epoch did not finish with a finite loss
        else:
            epochs.log(f"stopped without a finished epoch ({result.stopped})")
            epochs.flush()
        raise DataError(
            f"{config_path}: training stopped ({result.stopped}) without a finite validation loss; "
            "lower training.learning_rate"
        )
    record = {
        "workload": "bilm",
        "model": config.name,
        "val_loss": result.best_val_loss,
        "val_perplexity": math.exp(min(result.best_val_loss, 700)),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "steps": result.state.step,
        "stopped": result.stopped,
        "parameters": n_params,
        "tokens": len(corpus.stream),
        "types": len(corpus.types),
        "vocab_size": corpus.vocab_size,
        "device": jax.devices()[0].platform,
        "corpus_sha256": file_sha256(config.data.corpus),
        "git_commit": git_commit(Path(config_path).resolve().parent),
        "config": str(Path(config_path).resolve()),
        "overrides": list(overrides),
        "versions": package_versions(("gradfit", "jax", "jaxlib", "numpy", "optax")),
        "wall_s": time.perf_counter() - t_start,
    }
    epochs.log(f"finished: best epoch {result.best_epoch}, validation perplexity {record['val_perplexity']:.3f}")
    epochs.flush()
    run.write_text(
        "metrics.txt",
        f"{config.name}: validation perplexity {record['val_perplexity']:.3f} (best epoch {result.best_epoch} of "
        f"{result.epochs_run}, {result.state.step} steps, {result.stopped}); {n_params:,} parameters, "
        f"{corpus.vocab_size:,}-word vocabulary, {setup.compute}\n",
    )
    run.finish(record)
    return run, record


def _truncate(path: Path, last: int) -> None:
    """Keep the CSV rows whose first column (step or epoch) is at most `last`."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.strip() and int(ln.split(",", 1)[0]) <= last]
    path.write_text("".join(kept), encoding="utf-8")


def _truncate_jsonl(path: Path, step: int) -> None:
    if path.exists():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(ln for ln in lines if json.loads(ln)["step"] <= step), encoding="utf-8")


def _position_table(corpus, sentences):
    """Each token position of `sentences` (as <s> w.. </s>) its own row: characters and output-vocabulary id.

    Row 0 is padding (no characters, target PAD), so that windows over positions 1.. pad like type windows.
    """
    from gradfit.bilm.data import BOS, EOS, UNK, encode

    index = {t: i for i, t in enumerate(corpus.types)}
    rows, offsets = encode(corpus, sentences)
    ids = [i for s in sentences for i in (BOS, *(index.get(w, UNK) for w in s), EOS)]
    vocab = corpus.to_vocab[np.asarray(ids, np.int64)] if ids else np.zeros(0, np.int32)
    table = np.concatenate([np.zeros((1, rows.shape[1]), np.int32), rows])
    return table, np.concatenate([[0], vocab]).astype(np.int32), offsets + 1


def eval_run(run_path: Path, corpus_file: Path | None, batch_size: int) -> dict:
    """Perplexity of a finished run on held-out text: its validation windows, or a text file's windows."""
    from gradfit.bilm.data import read_corpus, windows
    from gradfit.bilm.model import loss_fn, token_metrics
    from gradfit.train.loop import evaluate

    run = resolve_run(run_path)
    config, setup, params, corpus_types = load_model(run)
    if corpus_file is None:
        from gradfit.bilm.data import build_corpus
        from gradfit.train.bilm import prepare

        corpus = build_corpus(read_corpus(config.data.corpus), config.data.vocab_size, config.data.max_chars)
        data = prepare(corpus, config.data.window, config.data.validation, config.data.split_seed, 1)
        w, table, vocab_map, source = data.validation, data.char_table, data.to_vocab, "validation windows"
    else:
        sentences = read_corpus(corpus_file)
        table, vocab_map, _ = _position_table(corpus_types, sentences)
        w = jnp.asarray(windows(np.arange(1, len(vocab_map), dtype=np.int32), config.data.window))
        table, vocab_map, source = jnp.asarray(table), jnp.asarray(vocab_map), str(corpus_file)
    loss = float(evaluate(loss_fn(setup, table, vocab_map, train=False), batch_size)(params, w))
    totals = np.zeros(4)
    for start in range(0, w.shape[0], batch_size):
        totals += np.asarray(token_metrics(params, w[start : start + batch_size], table, vocab_map, setup))
    nll, count, hit1, hit5 = totals
    return {
        "run": str(run.path),
        "text": source,
        "windows": int(w.shape[0]),
        "tokens": int(count // 2),
        "perplexity": math.exp(min(nll / max(count, 1), 700)),
        "window_mean_perplexity": math.exp(min(loss, 700)),
        "accuracy": hit1 / max(count, 1),
        "top5": hit5 / max(count, 1),
    }


def embed_run(run_path: Path, text_file: Path, out: Path, batch_size: int) -> dict:
    """Contextual embeddings of every token of a text file: the three layers and their scalar mix (.npz)."""
    from gradfit.bilm.data import read_corpus
    from gradfit.bilm.embed import embed_sentences

    run = resolve_run(run_path)
    _, setup, params, corpus = load_model(run)
    sentences = read_corpus(text_file)
    table, _, offsets = _position_table(corpus, sentences)
    layers, mix, weights = embed_sentences(params, setup, table[1:], offsets - 1, batch_size)
    tokens = np.asarray([w for s in sentences for w in ("<s>", *s, "</s>")], dtype=str)
    buf = io.BytesIO()
    np.savez(buf, layers=layers, mix=mix, mix_weights=weights, tokens=tokens, offsets=offsets - 1)
    atomic_write_bytes(out, buf.getvalue())
    return {"run": str(run.path), "file": str(out), "sentences": len(sentences), "tokens": int(layers.shape[0]),
            "layers": list(layers.shape), "mix": list(mix.shape)}  # fmt: skip

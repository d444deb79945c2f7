"""`gradfit bilm train | eval | embed`: an ELMo-style biLM from plain text, its perplexity, its embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from gradfit.cli.progress import say

bilm_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train a character-aware bidirectional language model (ELMo-style), evaluate it, embed text with it.",
)


@bilm_app.command()
def train(
    config: Path = typer.Argument(..., help="biLM config (YAML): data, model, training, metrics."),
    set_: list[str] = typer.Option(None, "--set", help="Override a config value, KEY=VALUE (repeatable)."),
    epochs: int = typer.Option(None, help="Maximum epochs (training.epochs)."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps."),
    batch_size: int = typer.Option(None, "--batch-size", help="Windows per micro-batch (training.batch_size)."),
    learning_rate: float = typer.Option(None, "--learning-rate", help="Adam's learning rate."),
    precision: str = typer.Option(None, help="float32 or bf16 (model.precision)."),
    runs_dir: Path = typer.Option(None, "--runs-dir", help="Where run folders go (default: runs/ beside the config)."),
    name: str = typer.Option(None, "--name", help="Suffix of the run folder's name."),
    resume: Path = typer.Option(None, "--resume", help="Continue this interrupted run from its last checkpoint."),
) -> None:
    """Train into a new (or resumed) run folder; the last line of stdout is the run folder."""
    from gradfit.cli.bilm_run import train_run

    overrides = list(set_ or [])
    for key, value in (
        ("training.epochs", epochs),
        ("training.max_steps", max_steps),
        ("training.batch_size", batch_size),
        ("training.learning_rate", learning_rate),
        ("model.precision", precision),
    ):
        if value is not None:
            overrides.append(f"{key}={value}")
    run, record = train_run(config, overrides, runs_dir, name, resume, say)
    print(f"validation perplexity {record['val_perplexity']:.3f} (best epoch {record['best_epoch']})")
    print(run.path)


@bilm_app.command("eval")
def eval_(
    run: Path = typer.Argument(..., help="A finished run folder (or <runs>/<model>/latest)."),
    text: Path = typer.Option(None, help="Held-out text, one sentence per line (default: the run's validation)."),
    batch_size: int = typer.Option(64, "--batch-size"),
    json_: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Perplexity, accuracy and top-5 accuracy of the run's best model on held-out text."""
    from gradfit.cli.bilm_run import eval_run

    res = eval_run(run, text, batch_size)
    if json_:
        print(json.dumps(res, indent=1))
    else:
        print(
            f"{res['text']}: {res['tokens']:,} tokens, perplexity {res['perplexity']:.3f}, "
            f"accuracy {res['accuracy']:.4f}, top-5 {res['top5']:.4f}"
        )


@bilm_app.command()
def embed(
    run: Path = typer.Argument(..., help="A finished run folder (or <runs>/<model>/latest)."),
    text: Path = typer.Argument(..., help="Text to embed, one sentence per line."),
    out: Path = typer.Option(..., "--out", help="The .npz to write: layers, mix, mix_weights, tokens, offsets."),
    batch_size: int = typer.Option(64, "--batch-size", help="Sentences per device call."),
) -> None:
    """Contextual embeddings of every token: the three layers and their scalar mix, as arrays."""
    from gradfit.cli.bilm_run import embed_run

    res = embed_run(run, text, out, batch_size)
    print(f"{res['sentences']:,} sentences, {res['tokens']:,} tokens: layers {res['layers']}, mix {res['mix']}")
    print(res["file"])

"""`gradfit` command: one small function per command; user mistakes become one line and exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from gradfit.cli.bench import bench
from gradfit.cli.bilm import bilm_app
from gradfit.cli.compare import compare
from gradfit.cli.diagnose import diagnose
from gradfit.cli.fit import fit
from gradfit.cli.predict import predict
from gradfit.cli.report import report
from gradfit.cli.runs import runs, show
from gradfit.cli.simulate import simulate
from gradfit.cli.sweep import sweep
from gradfit.cli.vaep import vaep_app
from gradfit.errors import GradfitError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fast, exact estimation of hybrid choice (ICLV) models; VAEP action values for soccer; an ELMo-style biLM.",
)
app.command()(fit)
app.command()(simulate)
app.command()(runs)
app.command()(show)
app.command()(compare)
app.command()(predict)
app.command()(diagnose)
app.command()(bench)
app.command()(sweep)
app.command()(report)
app.add_typer(vaep_app, name="vaep")
app.add_typer(bilm_app, name="bilm")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 success, 2 user error, 1 internal error raised as a traceback)."""
    try:
        rc = app(args=argv, standalone_mode=False)  # a command's typer.Exit(code) comes back as its return value
        if isinstance(rc, int):
            return rc
    except GradfitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # A fit keeps its run folder (checkpoint, history) for `gradfit fit SPEC --resume RUN`.
        print("error: interrupted", file=sys.stderr)
        return 130
    except (typer.Exit, SystemExit) as exc:
        return int(getattr(exc, "exit_code", getattr(exc, "code", 0)) or 0)
    except Exception as exc:
        # Usage errors (unknown option, bad value) come from typer's click; which click that is differs between
        # typer releases (some vendor their own), so recognise them by their interface, not their class.
        if type(exc).__name__ == "Abort":
            return 130
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            print(f"error: {exc.format_message()}".replace("\n", " "), file=sys.stderr)
            return int(exc.exit_code) or 2
        raise
    return 0


def entry() -> None:
    sys.exit(main())


__all__ = ["Path", "app", "entry", "main"]

"""`gradfit` command: one small function per command; user mistakes become one line and exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from gradfit.cli.fit import fit
from gradfit.cli.simulate import simulate
from gradfit.errors import GradfitError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fast, exact estimation of hybrid choice (ICLV) models.",
)
app.command()(fit)
app.command()(simulate)


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, standalone_mode=False)
    except GradfitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (typer.Exit, SystemExit) as exc:
        return int(getattr(exc, "exit_code", getattr(exc, "code", 0)) or 0)
    except Exception as exc:  # click usage errors are user errors too
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return 2
        if isinstance(exc, click.exceptions.Abort):
            return 130
        raise
    return 0


def entry() -> None:
    sys.exit(main())


__all__ = ["Path", "app", "entry", "main"]

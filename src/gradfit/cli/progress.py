"""Progress of a long job on stderr: a live line on a terminal, plain lines every `every` steps otherwise."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.live import Live
from rich.text import Text


def say(line: str) -> None:
    """One status line on stderr (stdout stays for results), flushed at once."""
    print(line, file=sys.stderr, flush=True)


class ProgressView:
    def __init__(self, every: int = 10, stream=None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.every = every
        self._live: Live | None = None
        self._last = ""

    def __enter__(self) -> ProgressView:
        if self.live:
            self._live = Live(Text(""), console=Console(file=self.stream), refresh_per_second=8, transient=False)
            self._live.__enter__()
        return self

    def update(self, step: int, line: str, force: bool = False) -> None:
        self._last = line
        if self._live is not None:
            self._live.update(Text(line))
        elif force or step % self.every == 0:
            print(line, file=self.stream, flush=True)

    def message(self, line: str) -> None:
        if self._live is not None:
            self._live.console.print(line, highlight=False, markup=False)
        else:
            print(line, file=self.stream, flush=True)

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

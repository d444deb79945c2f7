"""`python -m gradfit ...` is the `gradfit` command."""

from gradfit.cli.main import entry

entry()

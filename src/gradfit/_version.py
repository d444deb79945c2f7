"""The package's version, in a module of its own so that any layer may read it (runs record it)."""

__version__ = "0.1.0"  # the same as pyproject.toml's (tests/test_docs.py checks)

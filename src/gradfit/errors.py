"""One family of exceptions for everything a user can get wrong.

Every message is one line that names the file, key, row or column at fault and says what to do.
The CLI turns any `GradfitError` into that line and exit code 2; anything else is an internal error.
"""

from __future__ import annotations


class GradfitError(Exception):
    """Base class: a problem with the user's input (spec, data, options), not a bug in gradfit."""


class SpecError(GradfitError):
    """The model specification is invalid (unknown key, wrong type, inconsistent settings)."""

    @classmethod
    def from_validation(cls, exc, source: str) -> SpecError:
        """A pydantic ValidationError's first problem as one line: '<source>: <dotted key>: <message>'."""
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        return cls(f"{source}: {key}: {err['msg'].removeprefix('Value error, ')}")


class FormulaError(SpecError):
    """A formula cannot be parsed, or names something that does not exist."""


class DataError(GradfitError):
    """The data do not fit the specification (missing column, non-numeric value, varying person-level value)."""


class EstimationError(GradfitError):
    """Estimation cannot proceed (e.g. the log-likelihood is not finite at the start values)."""

"""Exceptions that say which file and field were wrong, what was expected and what was found."""

from __future__ import annotations

from os import PathLike


class BrainalignError(Exception):
    """Base class of every error brainalign raises on purpose."""


class InputError(BrainalignError, ValueError):
    """An input file or array does not have the content or shape it must have.

    Parameters
    ----------
    source : path or str
        The file (or array name) that was read.
    field : str
        The variable, column or attribute that is wrong.
    expected : str
        What it should have been.
    found : str
        What it was.
    """

    def __init__(self, source: str | PathLike, field: str, expected: str, found: str) -> None:
        self.source, self.field, self.expected, self.found = str(source), field, expected, found
        super().__init__(f"{self.source}: {field}: expected {expected}, found {found}")


class ConfigError(BrainalignError, ValueError):
    """A parameter in params.yaml (or given to a function) is invalid."""


class ValidationFailed(BrainalignError):
    """A great-expectations suite failed; ``report`` is the readable summary."""

    def __init__(self, report: str) -> None:
        self.report = report
        super().__init__(report)

"""The one error data preparation raises for bad input (kept apart so callers import it cheaply)."""

from __future__ import annotations


class DataValidationError(ValueError):
    """The data set is unusable; the message names the row or column at fault."""

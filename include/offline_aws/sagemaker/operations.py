"""The table of SageMaker operations: a backend method registered under AWS's operation name."""

from __future__ import annotations

from collections.abc import Callable

from .validation import validate_request

OPERATIONS: dict[str, Callable] = {}


def operation(name: str):
    """Register a backend method as SageMaker operation ``name``; validate its input shape first."""

    def wrap(fn):
        def handler(self, params: dict | None = None, **kwargs) -> dict:
            params = dict(params or {}, **kwargs)
            validate_request(name, params)
            return fn(self, params)

        handler.__name__ = fn.__name__
        handler.__doc__ = fn.__doc__
        OPERATIONS[name] = handler
        return handler

    return wrap

"""Validate a request against botocore's input shape, answering with AWS's own message format.

AWS (Coral) checks required members, enums, lengths, ranges and patterns server-side and
reports them as ``N validation error(s) detected: Value 'x' at 'a.b' failed to satisfy
constraint: Member must ...``. botocore only checks required members and types client side, so
raw HTTP clients (and the AWS CLI's enum-free values) reach us unchecked.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import botocore.session
from botocore.model import Shape

from .exceptions import SerializationException, ValidationException


@functools.cache
def service_model(name: str = "sagemaker"):
    return botocore.session.get_session().get_service_model(name)


def enum_values(shape_name: str) -> list[str]:
    """The enum of a named botocore shape, e.g. ``TrainingInstanceType``."""
    return list(service_model().shape_for(shape_name).enum)


# Java's Unicode classes as Python can state them (inside a character class): letters and digits
# through \w (which adds '_'), separators as the space characters.
_JAVA_CLASSES = {r"\p{L}": r"\w", r"\p{N}": r"\d", r"\p{Z}": " \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"}


@functools.cache
def _compile(pattern: str) -> re.Pattern | None:
    r"""The pattern in Python's syntax; None if it cannot be translated (AWS checks it, we cannot cheaply).

    Handles the Java idioms of SageMaker's shapes: ``\p{L}``/``\p{N}``/``\p{Z}`` in a character
    class, and a length quantifier on the end anchor (``...)${1,256}``, the map keys' and values' form).
    """
    pattern = re.sub(r"\$\{\d+,\d+\}$", "$", pattern)
    for java, python in _JAVA_CLASSES.items():
        pattern = pattern.replace(java, python)
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _render(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"'{value}'"
    return f"'{value}'"


def _check(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    meta = shape.metadata
    type_ok = {
        "structure": isinstance(value, dict),
        "map": isinstance(value, dict),
        "list": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "long": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "double": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "timestamp": isinstance(value, int | float | str) and not isinstance(value, bool),
        "blob": isinstance(value, str | bytes),
    }.get(kind, True)
    if not type_ok:
        raise SerializationException(f"Unexpected value type at '{path}': expected {kind}")

    def fail(constraint: str) -> None:
        errors.append(f"Value {_render(value)} at '{path}' failed to satisfy constraint: {constraint}")

    if kind == "structure":
        for req in shape.required_members:
            if value.get(req) is None:
                errors.append(
                    f"Value null at '{_join(path, _camel(req))}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _check(member, value[name], _join(path, _camel(name)), errors)
        return
    if kind in ("list", "map", "string"):
        size = len(value)
        if "min" in meta and size < meta["min"]:
            fail(f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and size > meta["max"]:
            fail(f"Member must have length less than or equal to {meta['max']}")
    if kind == "list":
        for i, item in enumerate(value, start=1):
            _check(shape.member, item, f"{path}.{i}.member", errors)
    elif kind == "map":
        for key, item in value.items():
            _check(shape.key, key, f"{path}.{key}", errors)
            _check(shape.value, item, f"{path}.{key}", errors)
    elif kind == "string":
        if shape.enum and value not in shape.enum:
            fail(f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        pattern = meta.get("pattern")
        if pattern:
            compiled = _compile(pattern)
            if compiled is not None and compiled.fullmatch(value) is None:
                fail(f"Member must satisfy regular expression pattern: {pattern}")
    elif kind in ("integer", "long", "float", "double"):
        if "min" in meta and value < meta["min"]:
            fail(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            fail(f"Member must have value less than or equal to {meta['max']}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def validate_request(operation: str, params: dict, service: str = "sagemaker") -> None:
    """Raise ValidationException, worded as AWS does, if ``params`` break ``operation``'s input shape."""
    shape = service_model(service).operation_model(operation).input_shape
    if shape is None:
        return
    if not isinstance(params, dict):
        raise SerializationException("Start of structure or map found where not expected.")
    errors: list[str] = []
    _check(shape, params, "", errors)
    if errors:
        noun = "error" if len(errors) == 1 else "errors"
        raise ValidationException(f"{len(errors)} validation {noun} detected: " + "; ".join(errors))

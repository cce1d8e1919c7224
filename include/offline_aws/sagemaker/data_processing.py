"""Batch Transform's ``DataProcessing``: the JSONPath subset of InputFilter/OutputFilter, and JoinSource.

AWS documents a subset of JSONPath for these filters ("Associate prediction results with input
records"): ``$``, child ``.name`` / ``['name', ...]``, wildcard ``*``, indexes ``[0,2,-1]`` and
slices ``[1:]``. A CSV record is filtered as a JSON array of its cells; a JSON record as the
object it is. Anything outside the subset (``..``, ``?()`` filters, scripts) is refused with a
clear message, never guessed at.
"""

from __future__ import annotations

import functools
import re
from typing import Any

_TOKEN = re.compile(
    r"""\.(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)        # .name
      | \.\*|\[\*\]                                 # wildcard
      | \[(?P<names>\s*'[^']*'\s*(?:,\s*'[^']*'\s*)*)\]   # ['a','b']
      | \[(?P<slice>\s*-?\d*\s*:\s*-?\d*\s*)\]     # [1:] [:-1]
      | \[(?P<indexes>\s*-?\d+\s*(?:,\s*-?\d+\s*)*)\]  # [0] [0,2,-1]
    """,
    re.VERBOSE,
)


class FilterError(ValueError):
    """A JSONPath outside AWS's documented subset, or one that does not fit the record."""


def parse(path: str) -> list[tuple[str, Any]]:
    """``$.a[1:]`` -> [("name", "a"), ("slice", (1, None))]; raise FilterError outside the subset."""
    return list(_parsed(path))


@functools.lru_cache(maxsize=256)
def _parsed(path: str) -> tuple[tuple[str, Any], ...]:
    """``parse`` once per path: a transform applies the same filter to every record."""
    text = (path or "$").strip()
    if not text.startswith("$"):
        raise FilterError(f"Invalid JSONPath {path!r}: it must start with '$'.")
    if ".." in text or "?(" in text or "(" in text or "@" in text:
        raise FilterError(
            f"Unsupported JSONPath {path!r}: SageMaker supports only $, .name, ['name',...], *, "
            "[index,...] and [start:end] (no recursive descent, filter or script expressions)."
        )
    steps: list[tuple[str, Any]] = []
    pos = 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FilterError(f"Invalid JSONPath {path!r}: cannot parse {text[pos:]!r}.")
        if match["name"] is not None:
            steps.append(("name", match["name"]))
        elif match["names"] is not None:
            steps.append(("names", re.findall(r"'([^']*)'", match["names"])))
        elif match["slice"] is not None:
            start, _, end = match["slice"].partition(":")
            steps.append(("slice", (int(start) if start.strip() else None, int(end) if end.strip() else None)))
        elif match["indexes"] is not None:
            steps.append(("indexes", [int(i) for i in match["indexes"].split(",")]))
        else:
            steps.append(("wildcard", None))
        pos = match.end()
    return tuple(steps)


def apply(path: str, record: Any) -> Any:
    """Select from ``record`` as Batch Transform does; a path naming nothing raises FilterError."""
    value = record
    for kind, arg in _parsed(path):
        value = _step(path, kind, arg, value)
    return value


def _step(path: str, kind: str, arg: Any, value: Any) -> Any:
    if kind == "name":
        if not isinstance(value, dict) or arg not in value:
            raise FilterError(f"JSONPath {path!r}: no member {arg!r} in the record.")
        return value[arg]
    if kind == "names":
        if not isinstance(value, dict):
            raise FilterError(f"JSONPath {path!r}: {arg} selects members, but the record is not a JSON object.")
        missing = [n for n in arg if n not in value]
        if missing:
            raise FilterError(f"JSONPath {path!r}: no member {missing[0]!r} in the record.")
        return {n: value[n] for n in arg}
    if kind == "wildcard":
        return list(value.values()) if isinstance(value, dict) else _as_list(path, value)
    items = _as_list(path, value)
    if kind == "slice":
        return items[slice(*arg)]
    try:
        picked = [items[i] for i in arg]
    except IndexError:
        raise FilterError(f"JSONPath {path!r}: index out of range for a record of {len(items)} values.") from None
    return picked[0] if len(arg) == 1 else picked


def _as_list(path: str, value: Any) -> list:
    if not isinstance(value, list):
        raise FilterError(f"JSONPath {path!r}: indexes and slices need an array, the record is not one.")
    return value


def join(source: Any, output: Any, *, csv: bool) -> Any:
    """JoinSource=Input: CSV rows get the output appended as columns; JSON gets ``SageMakerOutput``.

    A JSON input that is not an object becomes ``{"SageMakerInput": ..., "SageMakerOutput": ...}``.
    """
    if csv:
        return list(source) + (list(output) if isinstance(output, list) else [output])
    if isinstance(source, dict):
        return {**source, "SageMakerOutput": output}
    return {"SageMakerInput": source, "SageMakerOutput": output}

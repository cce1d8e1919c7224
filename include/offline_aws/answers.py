"""What every emulated inference container does alike when it answers: the Accept header and JSON answers.

Linear Learner, k-NN and XGBoost each serve their own formats, but choose the answer's media type from
the request's ``Accept`` the same way (the first listed type they can write, a wildcard meaning their
default, anything else refused with 406), and write ``application/json`` as ``{"predictions": [...]}``
and ``application/jsonlines`` as one record per line. ``ModelError`` is the container's refusal.
"""

from __future__ import annotations

import json

JSON, JSONLINES = "application/json", "application/jsonlines"


class ModelError(Exception):
    """The container refused the request; ``status`` is the HTTP status it answered with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def choose_accept(accept: str | None, supported: tuple[str, ...], *, default: str,
                  wildcards: tuple[str, ...] = ("*/*", "application/*"), quote: bool = True) -> tuple[str, tuple[str, ...]]:
    """The media type to answer in and its parameters (``verbose=true``…): the first of ``accept`` the
    container writes; no Accept or a wildcard means ``default``. Nothing it writes: ModelError 406,
    naming the types it does write (``quote``: the Accept shown as ``repr``, as Linear Learner's container does).
    """
    if not accept or not accept.strip():
        return default, ()
    for part in accept.split(","):
        media, *params = [p.strip().lower() for p in part.split(";")]
        if media in wildcards:
            return default, tuple(params)
        if media in supported:
            return media, tuple(params)
    shown = repr(accept) if quote else accept
    raise ModelError(f"Accept type {shown} is not supported by this algorithm; supported accept types are "
                     + ", ".join(supported), 406)


def json_answer(records: list[dict], media: str) -> bytes | None:
    """``records`` as a JSON answer (``{"predictions": records}``) or JSON Lines; None for any other media type."""
    if media == JSON:
        return json.dumps({"predictions": records}).encode("utf-8")
    if media == JSONLINES:
        return "".join(json.dumps(record) + "\n" for record in records).encode("utf-8")
    return None

"""Caps on what the emulator reads, so one bad request or object cannot exhaust its memory or hang it.

AWS's own limits where it has them (InvokeEndpoint's 6 MB payload); elsewhere generous caps of
our own, far above what a Linear Learner job on one machine needs. Every body is capped before it
is read, every decompression stops at its cap.
"""

from __future__ import annotations

import gzip
import io
import math
import tarfile
import zlib

MiB = 1024 * 1024
INVOKE_ENDPOINT_MAX_BYTES = 6 * MiB  # AWS: InvokeEndpoint request payload at most 6 MB
CONTROL_PLANE_MAX_BYTES = 1 * MiB  # a SageMaker JSON request (AWS's API requests are far smaller)
ADMIN_MAX_BYTES = 64 * 1024  # an admin route's JSON body
S3_PUT_MAX_BYTES = 64 * MiB  # one S3 PUT/POST body (an object, or one part of a multipart upload: boto3 sends 8 MiB)
MAX_DECOMPRESSED_BYTES = 512 * MiB  # one Gzip channel or transform object once decompressed
MAX_MANIFEST_BYTES = 16 * MiB  # a ManifestFile's JSON
MAX_MODEL_MEMBER_BYTES = 256 * MiB  # one file inside a model.tar.gz once decompressed
MAX_MODEL_MEMBERS = 64
MAX_TIME_SCALE = 1e6


class LimitExceeded(ValueError):
    """Input over one of the caps; ``str()`` says which and by how much."""


def gunzip(blob: bytes, limit: int | None = None, what: str = "object") -> bytes:
    """Decompress gzip (several members too) without ever holding more than ``limit`` bytes.

    ``limit`` defaults to MAX_DECOMPRESSED_BYTES, read at call time.
    """
    limit = MAX_DECOMPRESSED_BYTES if limit is None else limit
    out = bytearray()
    data = blob
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise gzip.BadGzipFile(f"{what} is not valid gzip ({exc})") from None
        if len(out) > limit:
            raise LimitExceeded(f"{what} decompresses to more than {limit} bytes (the emulator's cap)")
        if inflater.unconsumed_tail:
            raise LimitExceeded(f"{what} decompresses to more than {limit} bytes (the emulator's cap)")
        if not inflater.eof:
            raise gzip.BadGzipFile(f"{what} is a truncated gzip stream")
        data = inflater.unused_data
    return bytes(out)


def read_tar_member(blob: bytes, name: str, *, limit: int | None = None, max_members: int | None = None) -> bytes:
    """One regular file of a (gzip) tar archive, refusing archives over the member or size caps.

    The caps default to MAX_MODEL_MEMBER_BYTES and MAX_MODEL_MEMBERS, read at call time.
    """
    limit = MAX_MODEL_MEMBER_BYTES if limit is None else limit
    max_members = MAX_MODEL_MEMBERS if max_members is None else max_members
    raw = gunzip(blob, limit * 2, "model.tar.gz") if blob[:2] == b"\x1f\x8b" else blob
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            members = []
            for member in tar:
                members.append(member)
                if len(members) > max_members:
                    raise LimitExceeded(f"model.tar.gz has more than {max_members} members (the emulator's cap)")
            for member in members:
                if member.name.lstrip("./") == name.lstrip("./") and member.isfile():
                    if member.size > limit:
                        raise LimitExceeded(f"{name} in model.tar.gz is {member.size} bytes, over the cap {limit}")
                    handle = tar.extractfile(member)
                    return handle.read(limit + 1) if handle is not None else b""
    except tarfile.TarError as exc:
        raise ValueError(f"model.tar.gz is not a valid tar archive ({exc})") from None
    raise ValueError(f"model.tar.gz has no {name}")


def check_time_scale(value) -> float:
    """A usable time scale: a finite number from 0 to MAX_TIME_SCALE (NaN or inf would hang the clock)."""
    if isinstance(value, bool):
        raise ValueError(f"time_scale must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"time_scale must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or number > MAX_TIME_SCALE:
        raise ValueError(f"time_scale must be a finite number from 0 to {MAX_TIME_SCALE:g}, got {value!r}")
    return number


DRAIN_MAX_BYTES = 64 * MiB  # an over-cap body is read and dropped up to here, so the client sees the error


def read_body(request, limit: int) -> bytes:
    """A werkzeug request's body, refused (LimitExceeded) before it is held in memory if over ``limit``.

    ``Content-Length`` is checked first; a body without one is read up to ``limit`` + 1 bytes. An
    over-cap body is drained in chunks (never stored, at most DRAIN_MAX_BYTES) so the client reads
    the error instead of a broken connection.
    """
    length = request.content_length
    stream = request.stream
    if length is not None and length > limit:
        _drain(stream, min(length, DRAIN_MAX_BYTES))
        raise LimitExceeded(f"Request body of {length} bytes exceeds the maximum of {limit} bytes.")
    data = stream.read(limit + 1)
    if len(data) > limit:
        _drain(stream, DRAIN_MAX_BYTES)
        raise LimitExceeded(f"Request body exceeds the maximum of {limit} bytes.")
    return data


def _drain(stream, budget: int) -> None:
    while budget > 0:
        chunk = stream.read(min(budget, 1 * MiB))
        if not chunk:
            return
        budget -= len(chunk)

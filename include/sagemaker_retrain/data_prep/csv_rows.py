"""Turn CSV text into validated float rows: the header's names, then each chunk of lines.

Two paths through a chunk, with the same result:

* the **fast path** (plain numeric CSV: digits, ``.eE+-``, commas, newlines, one field per
  column on every line): pandas' C parser converts the chunk to floats for validation, and the
  output rows are the input's own bytes, rearranged label-first and gathered with numpy (no
  number is formatted back to text, so nothing is rounded);
* the **careful path** (quotes, blanks, spaces, ragged lines, anything unusual): Python's csv
  module, one line at a time, which names the first bad line and column exactly.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import re
import threading

import numpy as np
import pandas as pd

from sagemaker_retrain.data_prep.errors import DataValidationError

# Bytes allowed on the fast path: what plain numbers, commas and newlines are made of.
_FAST_BYTES = b"0123456789.eE+-,\n"
_COMMA, _NEWLINE = ord(","), ord("\n")


def parse_header(raw: bytes) -> list[str]:
    """The header's column names, validated (binary, blank, duplicate, wrong delimiter)."""
    if raw.startswith(b"\x1f\x8b") or b"\x00" in raw:
        raise DataValidationError("Line 1 is binary, not text: the data set must be an uncompressed, "
                                  "comma-separated CSV file (is it gzip or another binary format?)")
    try:
        line = raw.decode("utf-8-sig").strip("\r\n")
    except UnicodeDecodeError as err:
        raise DataValidationError(f"Line 1 is not UTF-8 text ({err.reason} at byte {err.start}): the data set "
                                  "must be a comma-separated CSV file") from None
    if not line.strip():
        raise DataValidationError("Line 1 is blank: the first line must be the header row")
    names = next(csv.reader([line]))
    if len(names) == 1 and any(sep in line for sep in (";", "\t", "|")):
        # The line itself is not shown: a file that is not CSV may hold anything (a password file, say).
        raise DataValidationError("The header has a single column: the file must be comma-separated")
    stripped = [name.strip() for name in names]
    for position, name in enumerate(stripped, start=1):
        if not name:
            raise DataValidationError(f"Column {position} of the header has a blank name")
    seen: set[str] = set()
    for name in stripped:
        if name in seen:
            raise DataValidationError(f"Column name {name!r} appears more than once in the header")
        seen.add(name)
    return stripped


_COLUMN_NAME = re.compile(r"^[A-Za-z0-9_ .()%/#-]{1,64}$")


def looks_like_column_names(names: list[str]) -> bool:
    """Whether a header may be echoed in a message: several plain names, so not some other kind of file."""
    return len(names) >= 2 and all(_COLUMN_NAME.match(name) for name in names)


class Rows:
    """One chunk's rows: float values (file column order) and label-first rows or CSV on demand."""

    values: np.ndarray
    order: list[int]
    first_line: int
    line_numbers: np.ndarray | None = None  # per row, when blank lines make them irregular

    def __len__(self) -> int:
        return len(self.values)

    @property
    def labels(self) -> np.ndarray:
        return self.values[:, self.order[0]]

    def take(self, index: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """Rows ``index`` as floats of ``dtype`` (row-major), label first."""
        return self.values[index][:, self.order].astype(dtype, copy=False)

    def line_of(self, row: int) -> int:
        """The file line number of data row ``row`` of this chunk."""
        if self.line_numbers is not None:
            return int(self.line_numbers[row])
        return self.first_line + row

    def csv(self, index: np.ndarray) -> bytes:
        raise NotImplementedError


class _FastRows(Rows):
    """Rows of plain numeric CSV: the output is the input's bytes, gathered with numpy.

    A row ``P,T,S\\n`` (``T`` the target field) is three byte segments written as ``T,`` + ``P,``
    + ``S\\n``; when the target is the last field (``P,T\\n``) two separators are swapped after.
    ``ends`` are the lines' newlines; every line has ``width - 1`` commas (pandas read it so).
    The floats stay pandas' columns: a row-major copy of them is only made if ``values`` is asked for.
    """

    def __init__(self, raw: np.ndarray, ends: np.ndarray, columns: list[np.ndarray], order: list[int],
                 first_line: int):
        self.raw, self.columns, self.order, self.first_line = raw, columns, order, first_line
        target, width = order[0], len(columns)
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        if width == 1:
            t_start, t_end = starts, ends
        elif target == width - 1:
            t_start, t_end = _nearest_comma(raw, ends - 1, -1) + 1, ends
        elif target == 0:
            t_start, t_end = starts, _nearest_comma(raw, starts, 1)
        else:
            commas = np.flatnonzero(raw == _COMMA).reshape(len(ends), width - 1)
            t_start, t_end = commas[:, target - 1] + 1, commas[:, target]
        # Each row's segments T, P, S (source start, length); P is empty when the target is the
        # first field and S when it is the last, so those are left out rather than skipped per call.
        segments = [(t_start, t_end + 1 - t_start)]
        if target > 0:
            segments.append((starts, t_start - starts))
        if target < width - 1:
            segments.append((t_end + 1, ends - t_end))
        # int32 when the chunk allows: half the bytes for every per-row gather below.
        dtype = np.int32 if len(raw) < 1 << 31 else np.int64
        self.seg_src = np.stack([src for src, _ in segments], axis=1, dtype=dtype)
        self.seg_len = np.stack([length for _, length in segments], axis=1, dtype=dtype)
        self.target_len = (t_end - t_start).astype(dtype)
        self.row_len = (ends + 1 - starts).astype(dtype)
        self.swap = target == width - 1

    def __len__(self) -> int:
        return len(self.row_len)

    @functools.cached_property
    def values(self) -> np.ndarray:
        return np.column_stack(self.columns)

    @property
    def labels(self) -> np.ndarray:
        return self.columns[self.order[0]]

    def take(self, index: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        # Column by column into one array: about 3x faster than np.column_stack of the gathered columns.
        out = np.empty((len(index), len(self.order)), dtype)
        for j, column in enumerate(self.order):
            out[:, j] = self.columns[column][index]
        return out

    def csv(self, index: np.ndarray) -> bytes:
        if len(index) == 0:
            return b""
        lens = np.take(self.seg_len, index, axis=0).ravel()  # take: rows as whole items, faster than []
        out_start = np.cumsum(lens) - lens
        total = int(out_start[-1] + lens[-1])
        out = _scratch("out", total, np.uint8)
        _copy_segments(self.raw, np.take(self.seg_src, index, axis=0).ravel(), lens, out, out_start)
        if self.swap:
            row_start = out_start[::self.seg_len.shape[1]]
            out[row_start + self.target_len[index]] = _COMMA
            out[row_start + self.row_len[index] - 1] = _NEWLINE
        return out.tobytes()


_SCRATCH = threading.local()


def _scratch(name: str, size: int, dtype) -> np.ndarray:
    """A reused array of ``size`` items for this thread's gathers.

    A fresh array of tens of megabytes per call costs its page faults every time (the allocator
    hands such blocks back to the kernel); one kept per thread is faulted in once.
    """
    arrays = _SCRATCH.__dict__
    array = arrays.get(name)
    if array is None or len(array) < size or array.dtype != dtype:
        array = arrays[name] = np.empty(max(size, 1), dtype=dtype)
    return array[:size]


def _copy_segments(raw: np.ndarray, src: np.ndarray, lens: np.ndarray, out: np.ndarray, dst: np.ndarray) -> None:
    """Copy segments ``raw[src[k]:src[k]+lens[k]]`` to ``out[dst[k]:...]`` (they do not overlap in ``out``).

    Segments of one length are copied together, each as one item of a ``V<length>`` view that
    starts at every byte: numpy then moves a whole field or row per index instead of needing an
    8-byte index per byte (building that index cost more than the copy). A chunk has a few dozen
    distinct lengths; sorting by length is a radix sort when lengths fit 16 bits.
    """
    if not lens.all():
        keep = np.flatnonzero(lens)
        src, lens, dst = src[keep], lens[keep], dst[keep]
    if len(lens) == 0:
        return
    by_length = np.argsort(lens.astype(np.uint16) if lens.max() < 1 << 16 else lens, kind="stable")
    lens = lens[by_length]
    firsts = np.flatnonzero(lens[1:] != lens[:-1]) + 1
    for start, end in zip([0, *firsts.tolist()], [*firsts.tolist(), len(lens)], strict=True):
        group = by_length[start:end]
        width = int(lens[start])
        _windows(out, width)[dst[group]] = _windows(raw, width)[src[group]]


def _windows(buffer: np.ndarray, width: int) -> np.ndarray:
    """``buffer``'s bytes as overlapping ``width``-byte items, one starting at each byte (no copy)."""
    return np.ndarray(shape=(len(buffer) - width + 1,), dtype=np.dtype(f"V{width}"), buffer=buffer, strides=(1,))


class _FormattedRows(Rows):
    """Rows that came through the careful path: written back as shortest round-trip floats."""

    def __init__(self, values: np.ndarray, order: list[int], first_line: int, line_numbers: list[int]):
        self.values, self.order, self.first_line = values, order, first_line
        self.line_numbers = np.asarray(line_numbers, dtype=np.int64)

    def csv(self, index: np.ndarray) -> bytes:
        if len(index) == 0:
            return b""
        lines = [",".join(map(repr, row)) for row in self.take(index).tolist()]
        return ("\n".join(lines) + "\n").encode()


_SCAN = 16  # bytes looked at at once for a comma: numeric fields are rarely longer
_PACK = np.uint64(0x0102040810204080)  # (8 bytes of 0 or 1) * _PACK >> 56 has byte i as bit i


def _nearest_comma(raw: np.ndarray, positions: np.ndarray, step: int) -> np.ndarray:
    """For each position, the first comma at or after it (``step`` 1) or at or before it (-1).

    The ``_SCAN`` bytes from each position are compared at once (one gather of a ``V16`` view)
    and the matches packed into 16 bits, whose lowest or highest set bit is the comma; the few
    lines without a comma there, or too near an end of the chunk, go on byte by byte. Finding
    the first or last field so is cheaper than listing every comma of the chunk.
    """
    positions = positions.copy()
    found = np.zeros(len(positions), dtype=bool)
    if len(raw) >= _SCAN:
        first = positions if step > 0 else positions - (_SCAN - 1)
        inside = np.flatnonzero((first >= 0) & (first <= len(raw) - _SCAN))
        first = first[inside]
        words = (_windows(raw, _SCAN)[first].view(np.uint8) == _COMMA).view("<u8").reshape(-1, 2)
        packed = (words * _PACK) >> np.uint64(56)
        bits = (packed[:, 0] | packed[:, 1] << np.uint64(8)).astype(np.int32)
        if step > 0:
            bits &= -bits  # keep the lowest set bit
        offset = np.frexp(bits.astype(np.float32))[1] - 1  # the highest set bit
        hit = bits > 0
        positions[inside[hit]] = first[hit] + offset[hit]
        found[inside[hit]] = True
    looking = np.flatnonzero(~found)
    while len(looking):
        looking = looking[raw[positions[looking]] != _COMMA]
        positions[looking] += step
    return positions


def _fast_rows(data: bytes, width: int, order: list[int], first_line: int) -> Rows | None:
    """The fast path, or None when the chunk needs the careful path (or has an error to name).

    pandas checks the shape: a line with a missing or empty field fails to convert (no NA
    strings are looked for: none is made of the fast path's bytes but the empty one), one with
    an extra field is a ParserError, a blank one is skipped (so rows fall short of newlines).
    """
    if data.translate(None, _FAST_BYTES):
        return None
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == _NEWLINE)
    try:
        frame = pd.read_csv(io.BytesIO(data), header=None, dtype=np.float64, engine="c", na_filter=False)
    except (ValueError, pd.errors.ParserError):
        return None
    if frame.shape != (len(ends), width):
        return None
    columns = [frame[column].to_numpy(dtype=np.float64) for column in frame.columns]
    if not all(np.isfinite(column).all() for column in columns):
        return None
    return _FastRows(raw, ends, columns, order, first_line)


def _careful_rows(data: bytes, names: list[str], first_line: int, order: list[int]) -> Rows:
    """Parse line by line; raise DataValidationError naming the first bad line and column."""
    width = len(names)
    out: list[list[float]] = []
    line_numbers: list[int] = []
    for offset, line in enumerate(data.decode("utf-8", errors="replace").split("\n")):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        lineno = first_line + offset
        fields = next(csv.reader([line])) if '"' in line else line.split(",")
        if len(fields) != width:
            hint = " (is the delimiter a comma?)" if len(fields) == 1 and width > 1 else " (ragged row)"
            raise DataValidationError(
                f"Line {lineno} has {len(fields)} field(s) but the header has {width} columns{hint}"
            )
        row = []
        for name, cell in zip(names, fields, strict=True):
            token = cell.strip()
            if not token:
                raise DataValidationError(f"Line {lineno}, column {name!r} is empty or missing")
            try:
                value = float(token)
            except ValueError:
                raise DataValidationError(f"Line {lineno}, column {name!r} is not numeric: {token!r}") from None
            if not math.isfinite(value):
                raise DataValidationError(f"Line {lineno}, column {name!r} is not finite: {token!r}")
            row.append(value)
        out.append(row)
        line_numbers.append(lineno)
    values = np.asarray(out, dtype=np.float64).reshape(-1, width)
    return _FormattedRows(values, order, first_line, line_numbers)


def parse_chunk(data: bytes, names: list[str], first_line: int, order: list[int]) -> Rows:
    """Validate one chunk of whole lines; its values and text come back in ``order`` (label first)."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    rows = _fast_rows(data, len(names), order, first_line) if data else None
    return rows if rows is not None else _careful_rows(data, names, first_line, order)

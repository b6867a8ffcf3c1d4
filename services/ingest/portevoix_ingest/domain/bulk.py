"""Bulk import parsing (the ``portevoix`` import CLI): JSONL or CSV lines -> contract dicts.

Each record comes out as ``(line_no, dict | Rejection)``: one bad line never stops an import, and
its line number lets the operator fix the file. Records are raw contract dicts; the caller still
validates them with ``parse_ingest_event``. ``line_no`` is the 1-based line where the record
starts, and ``start_line=N`` skips every record starting on lines 1..N, so the CLI resumes by
storing the last line_no it committed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import orjson

from portevoix.contracts.ingest import Rejection

__all__ = [
    "Format",
    "Record",
    "count_lines",
    "csv_row_to_record",
    "detect_format",
    "iter_lines",
    "iter_records",
    "parse_bool",
    "parse_handles",
    "parse_jsonl_line",
    "records_from_text",
]

Format = Literal["jsonl", "csv"]
Record = tuple[int, dict[str, Any] | Rejection]

_SUFFIXES: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "csv"}
_TRUE = frozenset({"true", "1", "oui", "yes", "vrai", "y", "o"})
_FALSE = frozenset({"false", "0", "non", "no", "faux", "n"})
_INT_FIELDS = frozenset({"followers"})
_BOOL_FIELDS = frozenset({"consent"})


def detect_format(path: str | Path) -> Format:
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"{path}: unknown import format (expected {', '.join(_SUFFIXES)})")
    return _SUFFIXES[suffix]


# ---- field parsers -------------------------------------------------------------------------


def parse_bool(value: str) -> bool | None:
    """true/false, 1/0, oui/non, yes/no, vrai/faux (any case); None if unrecognised."""
    v = value.strip().casefold()
    return True if v in _TRUE else False if v in _FALSE else None


def parse_handles(value: str) -> dict[str, str] | Rejection:
    """``linkedin:alice;x:alice2`` or a JSON object ``{"linkedin": "alice"}``.

    Only the first ':' separates network from handle: LinkedIn handles are member URNs
    (``linkedin:urn:li:person:abc``).
    """
    text = value.strip()
    if text.startswith("{"):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return Rejection(field="handles", rule="json_invalid", message=str(exc), value=text)
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return Rejection(
                field="handles",
                rule="handles_format",
                message='handles JSON must be an object of strings, e.g. {"linkedin": "alice"}',
            )
        return {str(k): v for k, v in data.items()}
    out: dict[str, str] = {}
    for part in text.replace(",", ";").split(";"):
        if not part.strip():
            continue
        network, sep, handle = part.partition(":")
        if not sep or not network.strip() or not handle.strip():
            return Rejection(
                field="handles",
                rule="handles_format",
                message="expected network:handle pairs separated by ';' (linkedin:alice;x:alice2)",
                value=part.strip(),
            )
        out[network.strip().lower()] = handle.strip()
    return out


# ---- JSONL ---------------------------------------------------------------------------------


def parse_jsonl_line(line: str) -> dict[str, Any] | Rejection:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Rejection(field="(line)", rule="json_invalid", message=str(exc))
    if not isinstance(data, dict):
        return Rejection(
            field="(line)",
            rule="json_object",
            message=f"each line must be one JSON object, got {type(data).__name__}",
        )
    return data


def _jsonl_records(lines: Iterable[str], start_line: int) -> Iterator[Record]:
    for line_no, line in enumerate(lines, start=1):
        # Skipped lines are not even decoded: resuming a large import is a fast scan.
        if line_no <= start_line or not line.strip():
            continue
        yield line_no, parse_jsonl_line(line)


# ---- CSV -----------------------------------------------------------------------------------


def csv_row_to_record(row: dict[str, str | None]) -> dict[str, Any] | Rejection:
    """One CSV row (header -> cell) to a contract dict; empty cells are missing fields."""
    out: dict[str, Any] = {}
    for raw_key, raw_value in row.items():
        key = (raw_key or "").strip().lower()
        value = (raw_value or "").strip()
        if not key or not value:
            continue
        if key == "handles":
            handles = parse_handles(value)
            if isinstance(handles, Rejection):
                return handles
            out[key] = handles
        elif key in _BOOL_FIELDS:
            flag = parse_bool(value)
            if flag is None:
                return Rejection(
                    field=key,
                    rule="bool_parsing",
                    message="expected true/false, 1/0, oui/non or yes/no",
                    value=value,
                )
            out[key] = flag
        elif key in _INT_FIELDS:
            try:
                out[key] = int(value.replace(" ", "").replace("\u202f", "").replace("\u00a0", ""))
            except ValueError:
                return Rejection(
                    field=key, rule="int_parsing", message="expected a whole number", value=value
                )
        else:
            # Text cells keep their inner spacing; normalisation happens on the domain side.
            out[key] = raw_value if key == "text" else value
    return out


def _sniff_delimiter(header: str) -> str:
    # French spreadsheets export with ';' (',' is the decimal separator there).
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _csv_records(lines: Iterable[str], start_line: int) -> Iterator[Record]:
    it = iter(lines)
    header_line = next(it, None)
    if header_line is None:
        return
    delimiter = _sniff_delimiter(header_line)
    header = next(csv.reader([header_line], delimiter=delimiter))
    fields = [h.strip().lower() for h in header]
    if len(set(fields)) != len(fields):
        yield (
            1,
            Rejection(
                field="(header)", rule="duplicate_column", message="a column name appears twice"
            ),
        )
        return
    # Re-feed the remaining physical lines; csv joins quoted multi-line cells itself.
    reader = csv.reader(it, delimiter=delimiter)
    consumed = 1  # physical lines read so far (the header)
    for cells in reader:
        line_no = consumed + 1
        consumed = reader.line_num + 1
        if line_no <= start_line or not any(c.strip() for c in cells):
            continue
        if len(cells) > len(fields):
            yield (
                line_no,
                Rejection(
                    field="(line)",
                    rule="too_many_cells",
                    message=f"{len(cells)} cells for {len(fields)} columns (unquoted delimiter?)",
                ),
            )
            continue
        row: dict[str, str | None] = dict(zip(fields, cells, strict=False))
        yield line_no, csv_row_to_record(row)


# ---- entry points --------------------------------------------------------------------------


def iter_lines(lines: Iterable[str], fmt: Format, start_line: int = 0) -> Iterator[Record]:
    """Records from already-opened text lines (pure: used by iter_records and by tests)."""
    if fmt == "jsonl":
        return _jsonl_records(lines, start_line)
    return _csv_records(lines, start_line)


def iter_records(
    path: str | Path, start_line: int = 0, *, fmt: Format | None = None
) -> Iterator[Record]:
    """``(line_no, dict | Rejection)`` for each record of a .jsonl/.ndjson or .csv/.tsv file."""
    fmt = fmt or detect_format(path)
    # utf-8-sig: spreadsheets prepend a BOM that would otherwise stick to the first column name.
    # newline="" lets csv see "\r\n" inside quoted cells intact.
    with open(path, encoding="utf-8-sig", newline="" if fmt == "csv" else None) as fh:
        yield from iter_lines(fh, fmt, start_line)


def count_lines(path: str | Path) -> int:
    """Physical line count, for a progress bar's total (reads bytes, no decoding)."""
    count = 0
    last = b"\n"
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (0 if last == b"\n" else 1)


def records_from_text(text: str, fmt: Format, start_line: int = 0) -> list[Record]:
    """Convenience for tests and small uploads."""
    newline = "" if fmt == "csv" else None
    return list(iter_lines(io.StringIO(text, newline=newline), fmt, start_line))

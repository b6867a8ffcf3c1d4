"""Pagination shared by list routes: `limit` + an opaque `cursor`, answered with `next_cursor`
(absent/null on the last page). Cursors are URL-safe base64 of `<kind>:<value>`; a cursor this
API did not issue is a 422 problem (`invalid-cursor`)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Query

from portevoix_api.problems import Problem

Limit = Annotated[int, Query(ge=1, le=500, description="items per page (1–500)")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page")
]


def encode_cursor(kind: str, value: str | int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        found, value = raw.split(":", 1)
        if found != kind:
            raise ValueError(raw)
        return value
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Problem(
            422, "Invalid request", "cursor is not one this API returned", kind="invalid-cursor"
        ) from exc


def decode_offset(cursor: str | None) -> int:
    """An offset cursor (`o:<n>`), 0 without one."""
    if not cursor:
        return 0
    value = decode_cursor(cursor, "o")
    if not value.isdigit():
        raise Problem(
            422, "Invalid request", "cursor is not one this API returned", kind="invalid-cursor"
        )
    return int(value)


def offset_cursor(offset: int) -> str:
    return encode_cursor("o", offset)

"""Opening sealed personal fields (crypto-shredding) at the moment a response is built.

Read models keep what the services stored: sealed values stay sealed at rest, so an erasure
(which deletes the owner's data key) leaves nothing readable behind. Here, and only in memory,
the fields a caller is allowed to see are opened; a shredded one reads as null.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from fastapi import Request

from portevoix.runtime.vault import Vault


async def open_fields(
    request: Request, records: Iterable[MutableMapping[str, Any]], fields: Iterable[str]
) -> None:
    """Open `fields` of every record in place (one Redis round trip for the keys it needs)."""
    vault: Vault = request.app.state.vault
    rows, names = list(records), tuple(fields)
    values = [r.get(f) for r in rows for f in names]
    opened = await vault.open_values(v for v in values if isinstance(v, str))
    for r in rows:
        for f in names:
            v = r.get(f)
            if isinstance(v, str):
                r[f] = opened.get(v, v)

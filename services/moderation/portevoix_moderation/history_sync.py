"""The stateful detectors' history shared by every moderation instance through Redis.

Each instance keeps the engine's fast in-memory history (the engine's calls are synchronous) and
mirrors it through one Redis stream: after a batch it appends the signatures it recorded; before
a batch it reads what the other instances appended since. A new instance loads the last window
at start. What this misses: posts another instance is checking in the same instant (at most one
pulled batch per instance, typically < 100 ms) are not yet visible — a burst spread over several
instances is seen one batch later, never lost.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from portevoix.contracts.readmodels import MOD_HISTORY
from portevoix.runtime.redis import text
from portevoix_moderation.charter import HistoryEntry, InMemoryPostHistory
from portevoix_moderation.charter.similarity import (
    Signature,
    signature_bytes,
    signature_from_bytes,
)
from portevoix_moderation.metrics import HISTORY_SYNC_ENTRIES


class SharedPostHistory:
    """A `PostHistory`: reads and records in memory; `pull`/`push` keep instances in step."""

    def __init__(
        self,
        redis: Redis,
        *,
        local: InMemoryPostHistory | None = None,
        max_entries: int = 20_000,
        window: timedelta = timedelta(hours=24),
        instance: str | None = None,
    ) -> None:
        self._r = redis
        self.local = local or InMemoryPostHistory(max_global=max_entries, window=window)
        self._max = max_entries
        self._window = window
        self.instance = instance or f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._pending: list[HistoryEntry] = []
        self._last_id = "0-0"

    # -- PostHistory ---------------------------------------------------------------------------
    def recent_by_author(self, ambassador_id: str) -> list[HistoryEntry]:
        return self.local.recent_by_author(ambassador_id)

    def similar_authors(
        self,
        sig: Signature,
        since: datetime,
        threshold: float,
        *,
        exclude_post: str | None = None,
        stop_at: int | None = None,
    ) -> set[str]:
        return self.local.similar_authors(
            sig, since, threshold, exclude_post=exclude_post, stop_at=stop_at
        )

    def templates(self, campaign: str | None) -> list[tuple[str, Signature]]:
        return self.local.templates(campaign)

    def register_template(self, campaign: str, text: str) -> None:
        self.local.register_template(campaign, text)

    def record(self, entry: HistoryEntry) -> None:
        self.local.record(entry)
        self._pending.append(entry)

    # -- synchronisation -----------------------------------------------------------------------
    async def load(self) -> int:
        """At start: the shared window, oldest first. Returns the number of entries loaded."""
        since = int((datetime.now(UTC) - self._window).timestamp() * 1000)
        self._last_id = f"{since}-0"
        return await self.pull(count=self._max)

    async def pull(self, count: int = 10_000) -> int:
        n = 0
        while True:
            reply: Any = await self._r.xread({MOD_HISTORY: self._last_id}, count=count)
            if not reply:
                return n
            entries = reply[0][1]
            for entry_id, fields in entries:
                self._last_id = text(entry_id)
                if text(fields[b"i"]) == self.instance:
                    continue  # recorded locally already
                self.local.record(_decode(fields))
                n += 1
            HISTORY_SYNC_ENTRIES.labels("pulled").inc(n)
            if len(entries) < count:
                return n

    async def push(self) -> int:
        if not self._pending:
            return 0
        todo, self._pending = self._pending, []
        pipe = self._r.pipeline(transaction=False)
        for e in todo:
            pipe.xadd(MOD_HISTORY, _encode(e, self.instance), maxlen=self._max, approximate=True)
        await pipe.execute()
        HISTORY_SYNC_ENTRIES.labels("pushed").inc(len(todo))
        return len(todo)


def _encode(e: HistoryEntry, instance: str) -> dict[Any, Any]:
    return {
        "i": instance,
        "p": e.post_id,
        "a": e.ambassador_id or "",
        "t": int(e.occurred_at.timestamp() * 1000),
        "c": e.campaign or "",
        "s": signature_bytes(e.signature),
    }


def _decode(f: dict[bytes, bytes]) -> HistoryEntry:
    return HistoryEntry(
        post_id=text(f[b"p"]),
        ambassador_id=text(f[b"a"]) or None,
        occurred_at=datetime.fromtimestamp(int(f[b"t"]) / 1000, UTC),
        signature=signature_from_bytes(f[b"s"]),
        campaign=text(f[b"c"]) or None,
    )

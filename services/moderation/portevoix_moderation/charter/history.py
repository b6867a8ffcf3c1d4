"""What the stateful detectors remember: recent posts per author and overall, and templates.

``PostHistory`` is a protocol so the service can back it with Redis; the in-memory version
is bounded (per-author deque, global time window + size cap) and is what tests, the CLI and
the benchmark use. ``CharterEngine.check`` records every checked post (``record=True``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from datasketch.lsh import _optimal_param

from .similarity import NUM_PERM, Signature, signature, similarity
from .text import fold, words


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    post_id: str
    ambassador_id: str | None
    occurred_at: datetime
    signature: Signature
    campaign: str | None = None


class PostHistory(Protocol):
    def recent_by_author(self, ambassador_id: str) -> list[HistoryEntry]: ...

    def similar_authors(
        self,
        sig: Signature,
        since: datetime,
        threshold: float,
        *,
        exclude_post: str | None = None,
        stop_at: int | None = None,
    ) -> set[str]: ...

    def templates(self, campaign: str | None) -> list[tuple[str, Signature]]: ...

    def register_template(self, campaign: str, text: str) -> None: ...

    def record(self, entry: HistoryEntry) -> None: ...


class InMemoryPostHistory:
    """Bounded in-memory history (not thread-safe: one engine per worker)."""

    def __init__(
        self,
        *,
        per_author: int = 20,
        max_global: int = 20_000,
        window: timedelta = timedelta(hours=24),
        lsh_threshold: float = 0.6,
    ) -> None:
        self._per_author = per_author
        self._max_global = max_global
        self._window = window
        self._authors: dict[str, deque[HistoryEntry]] = {}
        self._global: deque[tuple[str, HistoryEntry]] = deque()
        self._entries: dict[str, HistoryEntry] = {}
        # LSH keeps the burst check sub-linear in the number of recent posts: bands of hash
        # values as dict keys, with datasketch's MinHashLSH parameters but not its per-call
        # storage layers (3× cheaper to insert and query).
        self._lsh = _Bands(lsh_threshold)
        self._templates: dict[str, list[tuple[str, Signature]]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._global)

    def recent_by_author(self, ambassador_id: str) -> list[HistoryEntry]:
        return list(self._authors.get(ambassador_id, ()))

    def similar_authors(
        self,
        sig: Signature,
        since: datetime,
        threshold: float,
        *,
        exclude_post: str | None = None,
        stop_at: int | None = None,
    ) -> set[str]:
        """Ambassadors who posted a text similar to ``sig`` since ``since``.

        Stops as soon as ``stop_at`` authors are found: a burst check needs no more."""
        authors: set[str] = set()
        for key in self._lsh.query(sig):
            e = self._entries.get(key)
            if (
                e is None
                or e.ambassador_id is None
                or e.ambassador_id in authors
                or e.post_id == exclude_post
                or e.occurred_at < since
            ):
                continue
            if similarity(sig, e.signature) >= threshold:
                authors.add(e.ambassador_id)
                if stop_at is not None and len(authors) >= stop_at:
                    break
        return authors

    def templates(self, campaign: str | None) -> list[tuple[str, Signature]]:
        if campaign is not None:
            return list(self._templates.get(campaign, ()))
        return [t for ts in self._templates.values() for t in ts]

    def register_template(self, campaign: str, text: str) -> None:
        self._templates.setdefault(campaign, []).append((campaign, signature(words(fold(text)))))

    def record(self, entry: HistoryEntry) -> None:
        if entry.ambassador_id is not None:
            dq = self._authors.setdefault(entry.ambassador_id, deque(maxlen=self._per_author))
            dq.append(entry)
        self._seq += 1
        key = f"{self._seq}"
        self._entries[key] = entry
        self._lsh.insert(key, entry.signature)
        self._global.append((key, entry))
        self._evict(entry.occurred_at)

    def _evict(self, latest: datetime) -> None:
        horizon = latest - self._window
        while self._global and (
            len(self._global) > self._max_global or self._global[0][1].occurred_at < horizon
        ):
            key, old = self._global.popleft()
            del self._entries[key]
            self._lsh.remove(key, old.signature)


class _Bands:
    """Locality-sensitive hashing of MinHash signatures by bands of rows."""

    def __init__(self, threshold: float) -> None:
        self.b, self.r = _optimal_param(threshold, NUM_PERM, 0.5, 0.5)
        self._tables: list[dict[bytes, set[str]]] = [{} for _ in range(self.b)]

    def _keys(self, sig: Signature) -> list[bytes]:
        raw = sig.hashvalues.tobytes()
        step = self.r * sig.hashvalues.itemsize
        return [raw[i * step : (i + 1) * step] for i in range(self.b)]

    def insert(self, key: str, sig: Signature) -> None:
        for table, band in zip(self._tables, self._keys(sig), strict=True):
            found = table.get(band)
            if found is None:
                table[band] = {key}
            else:
                found.add(key)

    def query(self, sig: Signature) -> set[str]:
        out: set[str] = set()
        for table, band in zip(self._tables, self._keys(sig), strict=True):
            found = table.get(band)
            if found:
                out |= found
        return out

    def remove(self, key: str, sig: Signature) -> None:
        for table, band in zip(self._tables, self._keys(sig), strict=True):
            found = table.get(band)
            if found is not None:
                found.discard(key)
                if not found:
                    del table[band]

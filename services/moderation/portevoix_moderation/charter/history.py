"""What the stateful detectors remember: recent posts per author and overall, and templates.

``PostHistory`` is a protocol so the service can back it with Redis; the in-memory version
is bounded (per-author deque, global time window + size cap) and is what tests, the CLI and
the benchmark use. ``CharterEngine.check`` records every checked post (``record=True``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Protocol

from .similarity import NUM_PERM, SIGNATURE_BYTES, Signature, signature, similarity
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
    """Bounded in-memory history (not thread-safe: one engine per worker).

    Burst queries go through an exact band index (see ``BandIndex``): every recorded post
    whose estimated similarity reaches ``lsh_threshold`` is found without scanning the
    window. A query with a lower threshold scans the window instead (correct, slower)."""

    def __init__(
        self,
        *,
        per_author: int = 20,
        max_global: int = 20_000,
        window: timedelta = timedelta(hours=24),
        lsh_threshold: float = 0.8,
    ) -> None:
        self._per_author = per_author
        self._max_global = max_global
        self._window = window
        self._authors: dict[str, deque[HistoryEntry]] = {}
        self._global: deque[HistoryEntry] = deque()
        self._index = BandIndex(lsh_threshold)
        self._templates: dict[str, list[tuple[str, Signature]]] = {}

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
        if threshold >= self._index.threshold:
            candidates: Iterable[HistoryEntry] = self._index.candidates(sig)
        else:
            candidates = reversed(self._global)
        for e in candidates:
            author = e.ambassador_id
            if (
                author is None
                or author in authors
                or e.occurred_at < since
                or e.post_id == exclude_post
            ):
                continue
            if similarity(sig, e.signature) >= threshold:
                authors.add(author)
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
            dq = self._authors.get(entry.ambassador_id)
            if dq is None:
                dq = self._authors[entry.ambassador_id] = deque(maxlen=self._per_author)
            dq.append(entry)
        self._global.append(entry)
        self._index.insert(entry)
        self._evict(entry.occurred_at)

    def _evict(self, latest: datetime) -> None:
        horizon = latest - self._window
        glob = self._global
        while glob and (len(glob) > self._max_global or glob[0].occurred_at < horizon):
            self._index.remove(glob.popleft())


_Slot = HistoryEntry | list[HistoryEntry]


class BandIndex:
    """Exact candidate index of signatures by bands of MinHash slots (pigeonhole banding).

    Two signatures with an estimated similarity >= ``threshold`` differ in at most
    ``d = NUM_PERM - ceil(threshold * NUM_PERM)`` of their slots; cut into ``d + 1``
    contiguous bands, at least one band is identical in both. So every entry at or above
    the threshold shares a band with the query: no false negatives (datasketch's banding,
    tuned for a threshold, misses some), and unrelated posts, which share no 4-5 slot band,
    are never looked at. 13 bands at 0.8.

    A band is stored under the hash of its bytes (an int is smaller than the slice; a hash
    collision only adds a candidate, which the caller verifies). A band's entries are kept
    in insertion order, usually time order, and returned newest first."""

    def __init__(self, threshold: float) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be within (0, 1]")
        self.threshold = threshold
        n_bands = NUM_PERM - math.ceil(threshold * NUM_PERM - 1e-9) + 1
        width = SIGNATURE_BYTES // NUM_PERM
        edges = [round(i * NUM_PERM / n_bands) * width for i in range(n_bands + 1)]
        self.bands: list[tuple[int, int]] = list(pairwise(edges))
        self._tables: list[dict[int, _Slot]] = [{} for _ in self.bands]
        self._last: tuple[Signature | None, list[int]] = (None, [])

    def _keys(self, sig: Signature) -> list[int]:
        # A post's signature is queried then recorded: compute its band keys once.
        if sig is self._last[0]:
            return self._last[1]
        raw = sig.raw
        keys = [hash(raw[s:e]) for s, e in self.bands]
        self._last = (sig, keys)
        return keys

    def insert(self, entry: HistoryEntry) -> None:
        for table, key in zip(self._tables, self._keys(entry.signature), strict=True):
            found = table.get(key)
            if found is None:
                table[key] = entry  # most bands hold one post: no list for it
            elif isinstance(found, list):
                found.append(entry)
            else:
                table[key] = [found, entry]

    def remove(self, entry: HistoryEntry) -> None:
        for table, key in zip(self._tables, self._keys(entry.signature), strict=True):
            found = table.get(key)
            if found is entry:
                del table[key]
            elif isinstance(found, list):
                for i, e in enumerate(found):  # evictions are oldest first: usually i == 0
                    if e is entry:
                        del found[i]
                        break
                if len(found) == 1:
                    table[key] = found[0]

    def candidates(self, sig: Signature) -> Iterator[HistoryEntry]:
        """Entries sharing at least one band with ``sig``, each once, newest first per band."""
        seen: set[int] = set()
        for table, key in zip(self._tables, self._keys(sig), strict=True):
            found = table.get(key)
            if found is None:
                continue
            if not isinstance(found, list):
                if id(found) not in seen:
                    seen.add(id(found))
                    yield found
                continue
            for e in reversed(found):
                if id(e) not in seen:
                    seen.add(id(e))
                    yield e

    def __len__(self) -> int:
        return sum(1 if not isinstance(v, list) else len(v) for v in self._tables[0].values())

"""States this instance wrote last, kept decoded in memory: a batch touching them again skips
reading and decoding them.

Safe because the atomic step checks every state's version anyway: an entry is (version, state)
exactly as Redis holds it after this instance's successful write (versions are unique write
tokens); if another instance or a rebuild wrote the key since, the version differs, the step is
refused (CONFLICT) and recomputed from Redis. A batch *takes* entries out (states are mutated in
place while computing) and puts back only what its successful commit made true, so two batches
in flight never share a state object and a refused batch leaves nothing behind. (The pipeline
also hands states straight from a batch whose script is in flight to the next batch, at the
version that script will write: the same check refuses the next batch if the first one fails.)
"""

from __future__ import annotations

from collections.abc import Container
from itertools import islice
from typing import Any


class StateCache:
    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[str, tuple[str, Any]] = {}  # insertion order ≈ least recently used

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, key: str) -> tuple[str, Any] | None:
        """(version, state) of `key`, removed from the cache (the caller owns it now)."""
        return self._entries.pop(key, None)

    def keep(self, key: str, version: str, state: Any) -> None:
        self.keep_all({key: (version, state)})

    def keep_all(self, entries: dict[str, tuple[str, Any]], but: Container[str] = ()) -> None:
        """`keep` each (key -> (version, state)), except the keys in `but`."""
        if self._size <= 0:
            return
        mine = self._entries
        for key, entry in entries.items():
            if key not in but:
                mine[key] = entry
        excess = len(mine) - self._size
        if excess > 0:  # the least recently kept go
            for key in list(islice(mine, excess)):
                del mine[key]

    def clear(self) -> None:
        self._entries.clear()

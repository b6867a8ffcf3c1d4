"""MinHash signatures of posts (datasketch), built from word 3-gram shingles."""

from __future__ import annotations

import copy
import zlib
from typing import TypeAlias

import numpy as np
from datasketch import MinHash

NUM_PERM = 64
_BASE = MinHash(num_perm=NUM_PERM, seed=7, hashfunc=zlib.crc32)

Signature: TypeAlias = MinHash


def shingles(words: list[str], n: int = 3) -> list[bytes]:
    if len(words) < n:
        return [w.encode() for w in words] or [b""]
    return [" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)]


def signature(words: list[str]) -> Signature:
    # A shallow copy of a prepared empty MinHash skips datasketch's per-object set-up
    # (permutation parsing is most of its cost); only the hash values are per post.
    m = copy.copy(_BASE)
    m.hashvalues = _BASE.hashvalues.copy()
    m.update_batch(shingles(words))
    return m


def similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity (share of equal MinHash slots).

    Same estimate as ``MinHash.jaccard`` without its per-call checks: every signature here
    comes from ``signature()`` (same seed and permutations)."""
    return int(np.count_nonzero(a.hashvalues == b.hashvalues)) / NUM_PERM


def signature_bytes(sig: Signature) -> bytes:
    """The signature's hash values, for sharing the history between instances."""
    return bytes(sig.hashvalues.astype(_BASE.hashvalues.dtype).tobytes())


def signature_from_bytes(raw: bytes) -> Signature:
    m = copy.copy(_BASE)
    m.hashvalues = np.frombuffer(raw, dtype=_BASE.hashvalues.dtype).copy()
    return m

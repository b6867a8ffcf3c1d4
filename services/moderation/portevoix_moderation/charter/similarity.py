"""MinHash signatures of posts (datasketch), built from word 3-gram shingles."""

from __future__ import annotations

import zlib

from datasketch import MinHash

NUM_PERM = 64
_BASE = MinHash(num_perm=NUM_PERM, seed=7, hashfunc=zlib.crc32)
# Precomputed permutations: building them is most of datasketch's per-object cost.
_PERMS = _BASE.permutations
_SCHEME = _BASE.scheme

Signature = MinHash


def shingles(words: list[str], n: int = 3) -> list[bytes]:
    if len(words) < n:
        return [w.encode() for w in words] or [b""]
    return [" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)]


def signature(words: list[str]) -> Signature:
    m = MinHash(num_perm=NUM_PERM, hashfunc=zlib.crc32, permutations=_PERMS, scheme=_SCHEME)
    m.update_batch(shingles(words))
    return m


def similarity(a: Signature, b: Signature) -> float:
    return float(a.jaccard(b))

"""MinHash signatures of posts, built from word 3-gram shingles.

The signatures are bit for bit those of datasketch 2's ``MinHash(num_perm=64, seed=7,
hashfunc=zlib.crc32)`` (scheme ``affine32``: a MurmurHash3 finaliser over each shingle's
CRC-32, then 64 affine permutations modulo 2^32), so signatures already shared through
Redis stay comparable. datasketch itself is not imported: importing it imports its LSH
module and with it scipy (~45 MB of resident memory for a service that needs neither),
and its ``update_batch`` spends most of its time in per-call checks.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

NUM_PERM = 64
SEED = 7
_U32 = np.uint32
SIGNATURE_BYTES = NUM_PERM * 4


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # datasketch 2.0 ``MinHash._init_permutations`` for the affine32 scheme.
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=_U32) * _U32(2) + _U32(1)  # odd: bijective
    b = gen.randint(0, 1 << 32, num_perm, dtype=_U32)
    return a, b


_A, _B = _permutations(NUM_PERM, SEED)
_A_ROW, _B_ROW = _A[None, :], _B[None, :]
_S16, _S13 = np.uint32(16), np.uint32(13)
_M1, _M2 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35)


class Signature:
    """A post's 64 MinHash values (uint32), kept as 256 bytes: compact in the history,
    hashable band slices for the LSH index, cheap to share through Redis."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    @property
    def hashvalues(self) -> np.ndarray:
        return np.frombuffer(self.raw, dtype=_U32)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"Signature({self.raw[:8].hex()}…)"


def shingles(words: Sequence[str], n: int = 3) -> list[bytes]:
    if len(words) < n:
        return [w.encode() for w in words] or [b""]
    return [" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)]


def signature(words: Sequence[str]) -> Signature:
    hv = np.fromiter(map(zlib.crc32, shingles(words)), dtype=_U32)
    # MurmurHash3 fmix32, in place (uint32 arithmetic wraps modulo 2^32, as intended).
    hv ^= hv >> _S16
    hv *= _M1
    hv ^= hv >> _S13
    hv *= _M2
    hv ^= hv >> _S16
    col = hv[:, None]
    phv = col * _A_ROW
    phv += _B_ROW
    return Signature(phv.min(axis=0).tobytes())


def similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity: the share of equal MinHash slots."""
    if a.raw == b.raw:
        return 1.0
    return int(np.count_nonzero(a.hashvalues == b.hashvalues)) / NUM_PERM


def similarities(sig: Signature, others: Sequence[Signature]) -> list[float]:
    """``similarity(sig, o)`` for every ``o``, in one vectorised pass."""
    if not others:
        return []
    rows = np.frombuffer(b"".join(o.raw for o in others), dtype=_U32).reshape(-1, NUM_PERM)
    equal = np.add.reduce(rows == sig.hashvalues, axis=1)
    return [int(n) / NUM_PERM for n in equal.tolist()]


def signature_bytes(sig: Signature) -> bytes:
    """The signature's hash values, for sharing the history between instances."""
    return sig.raw


def signature_from_bytes(raw: bytes) -> Signature:
    if len(raw) != SIGNATURE_BYTES:
        raise ValueError(f"a signature is {SIGNATURE_BYTES} bytes, not {len(raw)}")
    return Signature(bytes(raw))

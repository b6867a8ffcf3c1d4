"""The history's own LSH bands find exactly what datasketch's MinHashLSH finds."""

from __future__ import annotations

import random

from datasketch import MinHashLSH

from portevoix_moderation.charter.history import _Bands
from portevoix_moderation.charter.similarity import NUM_PERM, signature


def test_bands_match_datasketch_lsh_on_insert_query_and_remove() -> None:
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(60)]
    base = [rng.choice(vocab) for _ in range(30)]
    texts = []
    for _ in range(300):  # variants of one text (near-duplicates) and unrelated texts
        if rng.random() < 0.5:
            t = list(base)
            for _ in range(rng.randint(0, 8)):
                t[rng.randrange(len(t))] = rng.choice(vocab)
        else:
            t = [rng.choice(vocab) for _ in range(30)]
        texts.append(t)
    sigs = [signature(t) for t in texts]
    ours, theirs = _Bands(0.6), MinHashLSH(threshold=0.6, num_perm=NUM_PERM)
    for i, s in enumerate(sigs):
        ours.insert(str(i), s)
        theirs.insert(str(i), s)
    for i in range(0, 300, 3):  # evict a third
        ours.remove(str(i), sigs[i])
        theirs.remove(str(i))
    found = 0
    for s in sigs[:100]:
        expected = set(theirs.query(s))
        assert ours.query(s) == expected
        found += len(expected)
    assert found > 100  # the near-duplicates do collide

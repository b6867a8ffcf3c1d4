"""The history's signatures and band index: datasketch-compatible, exact, bounded."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from datasketch import MinHash

from portevoix_moderation.charter.history import BandIndex, HistoryEntry, InMemoryPostHistory
from portevoix_moderation.charter.similarity import (
    NUM_PERM,
    shingles,
    signature,
    similarities,
    similarity,
)

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _texts(n: int, seed: int = 7) -> list[list[str]]:
    """Variants of one text (near-duplicates at every similarity) and unrelated texts."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(60)]
    base = [rng.choice(vocab) for _ in range(30)]
    texts = [base]
    for _ in range(n - 1):
        if rng.random() < 0.6:
            t = list(base)
            for _ in range(rng.randint(0, 8)):
                t[rng.randrange(len(t))] = rng.choice(vocab)
        else:
            t = [rng.choice(vocab) for _ in range(rng.randint(1, 40))]
        texts.append(t)
    return texts


def test_signatures_are_datasketch_minhashes_bit_for_bit() -> None:
    # Signatures shared through Redis by earlier versions stay comparable.
    for words in [*_texts(60), [], ["un"], ["deux", "mots"]]:
        m = MinHash(num_perm=NUM_PERM, seed=7, hashfunc=zlib.crc32)
        m.update_batch(shingles(words))
        assert signature(words).raw == m.hashvalues.tobytes()
        assert (signature(words).hashvalues == m.hashvalues).all()


def test_similarities_match_pairwise_similarity_and_datasketch_jaccard() -> None:
    sigs = [signature(t) for t in _texts(40)]
    batch = similarities(sigs[0], sigs)
    assert batch == [similarity(sigs[0], s) for s in sigs]
    assert batch[0] == 1.0 and min(batch) < 0.5 < max(batch[1:])
    for a, b in itertools.pairwise(sigs):
        ma = MinHash(num_perm=NUM_PERM, seed=7, hashvalues=a.hashvalues, scheme="affine32")
        mb = MinHash(num_perm=NUM_PERM, seed=7, hashvalues=b.hashvalues, scheme="affine32")
        assert similarity(a, b) == ma.jaccard(mb)
    assert similarities(sigs[0], []) == []


@pytest.mark.parametrize("threshold", [0.5, 0.6, 0.8, 0.9])
def test_band_index_finds_exactly_every_entry_at_or_above_its_threshold(threshold: float) -> None:
    sigs = [signature(t) for t in _texts(300)]
    entries = [HistoryEntry(f"p{i}", f"a{i}", T0, s) for i, s in enumerate(sigs)]
    index = BandIndex(threshold)
    for e in entries:
        index.insert(e)
    for e in entries[::3]:  # evict a third
        index.remove(e)
    kept = [e for i, e in enumerate(entries) if i % 3]
    assert len(index) == len(kept)
    close_pairs = 0
    for s in sigs[:100]:
        found = list(index.candidates(s))
        assert len(found) == len({id(e) for e in found})  # each entry once
        expected = {e.post_id for e in kept if similarity(s, e.signature) >= threshold}
        assert expected <= {e.post_id for e in found}  # no false negative, ever
        close_pairs += len(expected)
        if threshold >= 0.8:
            # Bands of 5 slots: a dissimilar post is (nearly) never a candidate.
            unrelated = [e for e in found if similarity(s, e.signature) < 0.2]
            assert len(unrelated) <= 0.02 * len(kept)
    assert close_pairs > 150  # the near-duplicates do collide


def test_band_index_rejects_a_meaningless_threshold() -> None:
    with pytest.raises(ValueError):
        BandIndex(0.0)


def test_queries_below_the_index_threshold_scan_the_window() -> None:
    history = InMemoryPostHistory(lsh_threshold=0.9)
    sigs = [signature(t) for t in _texts(200, seed=3)]
    for i, s in enumerate(sigs):
        history.record(HistoryEntry(f"p{i}", f"a{i}", T0 + timedelta(seconds=i), s))
    for s in sigs[:30]:
        for threshold in (0.6, 0.9):
            expected = {f"a{i}" for i, o in enumerate(sigs) if similarity(s, o) >= threshold}
            assert history.similar_authors(s, T0, threshold) == expected


def test_eviction_empties_the_index() -> None:
    history = InMemoryPostHistory(max_global=50)
    sig = signature(["le", "meme", "texte", "partout", "encore"])
    for i in range(120):
        history.record(HistoryEntry(f"p{i}", f"a{i % 7}", T0 + timedelta(seconds=i), sig))
    assert len(history) == 50 and len(history._index) == 50
    later = T0 + timedelta(days=2)
    history.record(HistoryEntry("late", "b", later, signature(["autre", "chose", "ici"])))
    assert len(history) == 1 and len(history._index) == 1
    assert history.similar_authors(sig, T0, 0.8) == set()


def test_the_engine_does_not_import_scipy_nor_datasketch() -> None:
    code = (
        "import sys\n"
        "from portevoix_moderation.charter import CharterEngine, InMemoryPostHistory,"
        " PostToCheck, default_charter\n"
        "e = CharterEngine(default_charter(), history=InMemoryPostHistory())\n"
        "e.warm_up()\n"
        "e.check(PostToCheck('p', 'Nous recrutons 20 techniciens de maintenance a Lyon,"
        " postulez vite sur notre site', ambassador_id='a'))\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'datasketch'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == ""

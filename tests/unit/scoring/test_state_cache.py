"""The scoring service's cache of the states it wrote last (taken by a batch, kept back)."""

from __future__ import annotations

from portevoix_scoring.state_cache import StateCache


def test_take_moves_the_entry_out() -> None:
    cache = StateCache(10)
    cache.keep("k", "v1", {"n": 1})
    assert cache.take("k") == ("v1", {"n": 1})
    assert cache.take("k") is None
    assert len(cache) == 0


def test_keep_all_skips_the_keys_a_later_batch_read_itself() -> None:
    cache = StateCache(10)
    cache.keep_all({"a": ("1", "A"), "b": ("2", "B"), "c": ("3", "C")}, but={"b"})
    assert cache.take("a") == ("1", "A")
    assert cache.take("b") is None
    assert cache.take("c") == ("3", "C")


def test_keep_all_evicts_the_least_recently_kept_as_keep_does() -> None:
    one_by_one, together = StateCache(3), StateCache(3)
    for cache in (one_by_one, together):
        cache.keep("old1", "1", 1)
        cache.keep("old2", "2", 2)
    fresh = {"old1": ("9", 9), "new1": ("3", 3), "new2": ("4", 4)}
    for key, (version, state) in fresh.items():
        one_by_one.keep(key, version, state)
    together.keep_all(fresh)
    for cache in (one_by_one, together):
        assert len(cache) == 3
        # old1 was kept again in place (still the oldest), so it is the one that went.
        assert cache.take("old1") is None
        assert cache.take("old2") == ("2", 2)
        assert cache.take("new1") == ("3", 3) and cache.take("new2") == ("4", 4)


def test_a_cache_of_size_zero_keeps_nothing() -> None:
    cache = StateCache(0)
    cache.keep("a", "1", 1)
    cache.keep_all({"b": ("2", 2)})
    assert len(cache) == 0

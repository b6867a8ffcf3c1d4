"""The collector settings every service applies once it is up (portevoix.runtime.gc_tuning)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from portevoix.runtime.gc_tuning import (
    SCORING_YOUNG_THRESHOLD,
    YOUNG_THRESHOLD,
    settle_gc,
    tune_gc,
)


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_tune_raises_only_the_young_threshold(restored_gc: None) -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)


def test_tune_never_lowers_a_larger_threshold(restored_gc: None) -> None:
    gc.set_threshold(YOUNG_THRESHOLD * 3, 5, 7)
    tune_gc()
    assert gc.get_threshold() == (YOUNG_THRESHOLD * 3, 5, 7)


def test_settle_freezes_what_is_alive_and_collects_garbage_first(restored_gc: None) -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector frees it

    gc.unfreeze()
    gc.disable()  # so only settle_gc can free the cycle
    try:
        ref = weakref.ref(Node())  # unreachable at once
        settle_gc()
    finally:
        gc.enable()
    assert ref() is None  # collected before the freeze, not kept forever
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] >= YOUNG_THRESHOLD


def test_a_service_may_ask_for_a_larger_young_threshold(restored_gc: None) -> None:
    gc.set_threshold(700, 10, 10)
    settle_gc(SCORING_YOUNG_THRESHOLD)  # scoring's BusWorker passes it (`young_gc`)
    assert gc.get_threshold() == (SCORING_YOUNG_THRESHOLD, 10, 10)
    assert SCORING_YOUNG_THRESHOLD > YOUNG_THRESHOLD


def test_scoring_asks_for_it() -> None:
    from portevoix_scoring import app

    assert app.worker._young_gc == SCORING_YOUNG_THRESHOLD

"""`observe_many` must leave a histogram exactly as one `observe` per amount would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from portevoix.runtime.metrics import observe_many

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def _samples(h: Histogram) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in h.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


# Bounds themselves (le is inclusive), values between them, 0, and beyond the last bound.
AMOUNTS = [0.0, 0.005, 0.0050001, 0.01, 0.75, 1.0, 2.5, 59.0, 60.0, 61.0, 3600.0, 0.3, 0.3]


def test_many_amounts_give_the_buckets_count_and_sum_of_one_observe_each() -> None:
    one, many = (Histogram("lag_seconds", "x", buckets=BUCKETS, registry=CollectorRegistry())
                 for _ in range(2))  # fmt: skip
    for a in AMOUNTS:
        one.observe(a)
    observe_many(many, AMOUNTS)
    observe_many(many, [])  # nothing observed: nothing changes
    got, want = _samples(many), _samples(one)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert got[("lag_seconds_count", ())] == len(AMOUNTS)
    assert got[("lag_seconds_bucket", (("le", "0.005"),))] == 2  # 0.0 and 0.005 (inclusive)
    assert got[("lag_seconds_bucket", (("le", "60.0"),))] == len(AMOUNTS) - 2


def test_labelled_children_are_observed_and_a_labelled_parent_refused() -> None:
    h = Histogram("op_seconds", "x", ["op"], buckets=BUCKETS, registry=CollectorRegistry())
    observe_many(h.labels("award"), [0.2, 7.0])
    assert _samples(h)[("op_seconds_count", (("op", "award"),))] == 2
    with pytest.raises(ValueError):
        observe_many(h, [1.0])  # as `observe` refuses: the values need their labels

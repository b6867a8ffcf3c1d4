"""Scoring's records write their `__init__` (and the states their `dumps`) out by hand, for the
compiled build: these tests keep them equal to what the dataclass declares, so a field added
to the class but not to its `__init__` or `dumps` fails here."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from portevoix_scoring.domain.ambassador_state import AmbassadorState, ColleaguePairs
from portevoix_scoring.domain.post_state import HeldItem, PostState
from portevoix_scoring.domain.scorer import BadgeGrant, Credit, Effects, LedgerEntry, ReachDelta
from portevoix_scoring.pipeline import Outcome
from portevoix_scoring.store import Guard, Versioned

# A value per field, different from its default.
SAMPLES: dict[type, dict[str, Any]] = {
    LedgerEntry: {"ambassador_id": "a1", "op": "award", "points": 150, "rule": "like",
                  "event_id": "e1", "post_key": "linkedin:p1", "at": "2026-11-02T10:00:00+00:00",
                  "cause": "e0"},
    Credit: {"ambassador_id": "a1", "points": 150, "day": "2026-11-02", "team": "Ventes",
             "campaigns": ("c1",)},
    ReachDelta: {"ambassador_id": "a1", "values": {"impressions": 40}},
    BadgeGrant: {"ambassador_id": "a1", "badge": "first-post", "title": {"fr": "Premier"},
                 "reason_event_id": "e1", "at": "2026-11-02T10:00:00+00:00", "level": True},
    HeldItem: {"event_id": "e1", "rule": "like", "points": 150, "at": "2026-11-02T10:00:00Z",
               "actor": "a2", "earned": False, "capped": False},
    Outcome: {"result": -1, "effects": Effects(), "provisional": True},
    Versioned: {"version": "v1", "raw": b"{}"},
    Guard: {"key": "pv:{sc}:1:amb:a1", "version": "v1", "value": b"{}"},
    AmbassadorState: {"ambassador_id": "a1", "team": "Tech", "caps": {"2026-11-02": {"like": 5}},
                      "recv": {"a2": [1, "2026-11-02"]}, "counts": {"posts": 2},
                      "days": ["2026-11-02"], "points": 300, "badges": ["first-post"],
                      "erased": True, "era": 2},
    ColleaguePairs: {"recv": {"a2": [3, "2026-11-02"]}, "pruned": "2026-11-01"},
    PostState: {"post_key": "linkedin:p1", "author": "a1", "kind": "relay", "network": "x",
                "verdict": "review", "review": "approved", "campaigns": ["c1"],
                "multiplier": 2.0, "impressions": 90,
                "held": [HeldItem("e1", "like", 100, "2026-11-02T10:00:00Z")],
                "voided": [HeldItem("e2", "share", 200, "2026-11-02T11:00:00Z")],
                "credited": {"2026-11-02": 100}, "reach": {"impressions": 90}, "era": 1,
                "stored": ([], 1, None, 0), "unread": (2, 3)},
}  # fmt: skip


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda c: c.__name__)
def test_init_sets_every_field_by_position_and_by_name(cls: type) -> None:
    values = SAMPLES[cls]
    names = [f.name for f in dataclasses.fields(cls)]
    assert sorted(names) == sorted(values), "the sample must name every field"
    for record in (cls(*(values[n] for n in names)), cls(**values)):
        assert {n: getattr(record, n) for n in names} == values


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda c: c.__name__)
def test_init_defaults_are_the_declared_ones(cls: type) -> None:
    required = [f for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]  # fmt: skip
    record = cls(**{f.name: SAMPLES[cls][f.name] for f in required})
    for f in dataclasses.fields(cls):
        if f in required:
            continue
        expected = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        assert getattr(record, f.name) == expected, f.name
    if required:  # a fresh container per record, as a default factory gives
        other = cls(**{f.name: SAMPLES[cls][f.name] for f in required})
        for f in dataclasses.fields(cls):
            if f.default_factory is not dataclasses.MISSING:
                assert getattr(record, f.name) is not getattr(other, f.name), f.name


@pytest.mark.parametrize("cls", [AmbassadorState, ColleaguePairs], ids=lambda c: c.__name__)
def test_state_dumps_is_the_dataclass_as_json(cls: type) -> None:
    state = cls(**SAMPLES[cls])
    assert state.dumps() == orjson.dumps(dataclasses.asdict(state))


def test_ambassador_state_reads_back_what_it_dumps() -> None:
    state = AmbassadorState(**SAMPLES[AmbassadorState])
    assert AmbassadorState.loads("a1", state.dumps()) == state
    assert ColleaguePairs.loads(ColleaguePairs(**SAMPLES[ColleaguePairs]).dumps()) == (
        ColleaguePairs(**SAMPLES[ColleaguePairs])
    )

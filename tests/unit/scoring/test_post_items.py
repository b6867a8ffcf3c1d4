"""A post state as stored: a small blob, its held and voided items apart (appended to as they
come, started over only when the rules empty or replace them)."""

from __future__ import annotations

from portevoix_scoring.domain.post_state import (
    HeldItem,
    PostState,
    changed_items,
    item_line,
    item_of,
)


def _item(i: int, actor: str | None = None) -> HeldItem:
    return HeldItem(f"e{i}", "like", 100 * i, "2026-11-16T08:00:00+00:00", actor, True, False)


def _post() -> PostState:
    p = PostState("linkedin:p1", author="a1", kind="original", network="linkedin")
    p.verdict, p.review, p.campaigns, p.multiplier = "review", None, ["rentree"], 1.5
    p.impressions, p.credited, p.reach, p.era = 640, {"2026-11-16": 1500}, {"posts": 1}, 2
    p.held = [_item(1), _item(2, "a2")]
    p.voided = [_item(3)]
    return p


def test_the_blob_leaves_the_items_out_and_says_how_many_there_are() -> None:
    p = _post()
    back = PostState.loads(p.post_key, p.blob())
    assert back.unread == (2, 1) and back.held == [] and back.voided == []
    back.attach([item_of(item_line(i)) for i in p.held], [item_of(item_line(i)) for i in p.voided])
    assert back == p and back.unread == (0, 0)
    assert len(p.blob()) < len(p.dumps()) / 2  # no field names, no items


def test_states_written_before_items_were_kept_apart_still_load() -> None:
    p = _post()
    old = PostState.loads(p.post_key, p.dumps())  # the object form, items inline
    assert old == p and old.unread == (0, 0)


def test_items_are_appended_while_their_list_only_grows() -> None:
    held = [_item(1)]
    assert changed_items(held, None, 0) == (False, held)  # nothing stored yet: all of them
    held.append(_item(2))
    assert changed_items(held, held, 1) == (False, [_item(2)])
    assert changed_items(held, held, 2) == (False, [])


def test_a_list_replaced_or_emptied_by_the_rules_is_started_over() -> None:
    stored = [_item(1), _item(2)]
    assert changed_items([], stored, 2) == (True, [])  # released: the list goes
    earned = [_item(1, "a2"), _item(2)]  # a post's arrival re-earns its early items
    assert changed_items(earned, stored, 2) == (True, earned)
    # Read from a state whose items were inline (stored before lists): written out in full.
    assert changed_items(stored, None, 0) == (False, stored)

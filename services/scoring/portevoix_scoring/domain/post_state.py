"""What scoring remembers about one post: who earns its points and whether they may be paid."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

import orjson

Status = Literal["unseen", "pending", "released", "held", "blocked", "removed"]


@dataclass(slots=True)  # built several times per event: slots build faster
class HeldItem:
    """Points earned but not paid yet: the post is unseen, awaiting a verdict, or in review.

    `points` is in centipoints, weights and multiplier applied once the item is earned;
    `earned` is False while the post's author is unknown (engagement before its post). The daily
    cap is applied when the item is paid (`capped` False until then): an item held in review or
    blocked never uses up the day's cap, so what the day pays does not depend on the order its
    items arrived in. Items stored before this rule carry no `capped` field: capped at earning."""

    event_id: str
    rule: str
    points: int
    at: str  # when the action happened (ISO, UTC): the period it counts in
    actor: str | None = None  # ambassador id of the engaging colleague, if any
    earned: bool = True
    capped: bool = True

    def __init__(
        self, event_id: str, rule: str, points: int, at: str, actor: str | None = None,
        earned: bool = True, capped: bool = True,
    ) -> None:  # fmt: skip
        # Written out: compiled, a dataclass's generated __init__ stays interpreted (scorer.py).
        self.event_id, self.rule, self.points, self.at = event_id, rule, points, at
        self.actor, self.earned, self.capped = actor, earned, capped


@dataclass
class PostState:
    post_key: str
    author: str | None = None
    kind: str | None = None
    network: str | None = None
    verdict: str | None = None  # latest moderation verdict: allow | nudge | review | block
    review: str | None = None  # a moderator's outcome: approved | rejected | taken_down
    campaigns: list[str] = field(default_factory=list)
    multiplier: float = 1.0
    impressions: int = 0  # estimated impressions of the post (followers × reach rate)
    held: list[HeldItem] = field(default_factory=list)
    voided: list[HeldItem] = field(default_factory=list)  # held items of a blocked post
    # Points paid, by local action day: what a later reversal must take back, period by period.
    credited: dict[str, int] = field(default_factory=dict)
    # Reach paid (impressions, reactions, clicks, emv per currency): what a reversal takes back.
    reach: dict[str, int] = field(default_factory=dict)
    era: int = 0  # the author's era when the post arrived (see AmbassadorState.era)
    # Where `held` and `voided` are stored (the store keeps them in two lists per post, apart
    # from the rest: a post held in review for a month gathers every like it gets, and writing
    # them all again with each like made scoring slower the more the post was liked): the list
    # objects as last written and how many of their items, or as read. Not part of any output.
    stored: tuple[list[HeldItem] | None, int, list[HeldItem] | None, int] = field(
        default=(None, 0, None, 0), repr=False, compare=False
    )
    # Items the stored state says its lists hold, until the store has read them (`attach`).
    unread: tuple[int, int] = field(default=(0, 0), repr=False, compare=False)

    def __init__(
        self, post_key: str, author: str | None = None, kind: str | None = None,
        network: str | None = None, verdict: str | None = None, review: str | None = None,
        campaigns: list[str] | None = None, multiplier: float = 1.0, impressions: int = 0,
        held: list[HeldItem] | None = None, voided: list[HeldItem] | None = None,
        credited: dict[str, int] | None = None, reach: dict[str, int] | None = None,
        era: int = 0,
        stored: tuple[list[HeldItem] | None, int, list[HeldItem] | None, int] = (None, 0, None, 0),
        unread: tuple[int, int] = (0, 0),
    ) -> None:  # fmt: skip
        # Written out: compiled, a dataclass's generated __init__ stays interpreted (HeldItem).
        self.post_key, self.author, self.kind, self.network = post_key, author, kind, network
        self.verdict, self.review = verdict, review
        self.campaigns = [] if campaigns is None else campaigns
        self.multiplier, self.impressions = multiplier, impressions
        self.held = [] if held is None else held
        self.voided = [] if voided is None else voided
        self.credited = {} if credited is None else credited
        self.reach = {} if reach is None else reach
        self.era, self.stored, self.unread = era, stored, unread

    @property
    def status(self) -> Status:
        if self.author is None:
            return "unseen"
        # A moderator's decision overrides the automated verdict.
        if self.review == "approved":
            return "released"
        if self.review == "rejected":
            return "blocked"
        if self.review == "taken_down":
            return "removed"
        if self.verdict is None:
            return "pending"
        if self.verdict in ("allow", "nudge"):
            return "released"
        if self.verdict == "review":
            return "held"
        return "blocked"

    def dumps(self) -> bytes:
        """The whole state, items included (offline use, tests; `loads` reads it back)."""
        return orjson.dumps({f.name: getattr(self, f.name) for f in fields(self) if f.compare})

    def blob(self) -> bytes:
        """The state as the store keeps it: a JSON array of its fields in the order they are
        declared, the items (kept in lists) replaced by their counts; half the size of the
        object form."""
        return orjson.dumps(
            (BLOB_FORMAT, self.author, self.kind, self.network, self.verdict, self.review,
             self.campaigns, self.multiplier, self.impressions, self.credited, self.reach,
             self.era, len(self.held), len(self.voided))
        )  # fmt: skip

    @classmethod
    def loads(cls, post_key: str, raw: bytes | None) -> PostState:
        """A state from `blob` (its items still to `attach` if it has any) or from `dumps`."""
        if not raw:
            return cls(post_key=post_key)
        if raw[:1] == b"[":
            (_, author, kind, network, verdict, review, campaigns, multiplier, impressions,
             credited, reach, era, n_held, n_voided) = orjson.loads(raw)  # fmt: skip
            state = cls(post_key, author, kind, network, verdict, review, campaigns, multiplier,
                        impressions, [], [], credited, reach, era)  # fmt: skip
            state.unread = (n_held, n_voided)
            return state
        data: dict[str, Any] = orjson.loads(raw)
        data["held"] = [HeldItem(**h) for h in data.get("held", [])]
        data["voided"] = [HeldItem(**h) for h in data.get("voided", [])]
        return cls(**data)

    def attach(self, held: list[HeldItem], voided: list[HeldItem]) -> None:
        """The items read from the store's lists, as they are stored. They are read after the
        state: if another instance wrote the post in between, they may not match it, and its
        version has changed too, so whatever is computed on it is refused (CONFLICT) and
        recomputed from a fresh read."""
        self.held, self.voided = held, voided
        self.stored = (held, len(held), voided, len(voided))
        self.unread = (0, 0)


BLOB_FORMAT = 1  # first element of a `blob`


def item_line(item: HeldItem) -> bytes:
    """A held or voided item as its list stores it: a JSON array in field order."""
    return orjson.dumps(
        (item.event_id, item.rule, item.points, item.at, item.actor, item.earned, item.capped)
    )


def item_of(raw: bytes) -> HeldItem:
    return HeldItem(*orjson.loads(raw))


def changed_items(
    current: list[HeldItem], stored: list[HeldItem] | None, n: int
) -> tuple[bool, list[HeldItem]]:
    """How a list of items must change for the store to hold `current`: (start over, items to
    append). Items are only ever appended to a list object; the rules replace the object when
    they empty it or take its items elsewhere (settle, a post's arrival)."""
    if current is stored and len(current) >= n:
        return False, current[n:]
    if stored is None and n == 0:
        return False, current  # nothing stored yet
    return True, current

"""What scoring remembers about one post: who earns its points and whether they may be paid."""

from __future__ import annotations

from dataclasses import dataclass, field
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
        return orjson.dumps(self)  # orjson serialises dataclasses natively (and fast)

    @classmethod
    def loads(cls, post_key: str, raw: bytes | None) -> PostState:
        if not raw:
            return cls(post_key=post_key)
        data: dict[str, Any] = orjson.loads(raw)
        data["held"] = [HeldItem(**h) for h in data.get("held", [])]
        data["voided"] = [HeldItem(**h) for h in data.get("voided", [])]
        return cls(**data)

"""What scoring remembers about one post: who earns its points and whether they may be paid."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

Status = Literal["unseen", "pending", "released", "held", "blocked"]


@dataclass
class HeldItem:
    """Points earned but not paid yet: the post is unseen, awaiting a verdict, or in review."""

    event_id: str
    rule: str
    points: int
    at: str  # when the action happened (ISO, UTC): the period it counts in
    actor: str | None = None  # ambassador id of the engaging colleague, if any


@dataclass
class PostState:
    post_key: str
    author: str | None = None
    kind: str | None = None
    verdict: str | None = None  # latest moderation verdict: allow | nudge | review | block
    held: list[HeldItem] = field(default_factory=list)
    # Points paid, by local action day: what a later reversal must take back, period by period.
    credited: dict[str, int] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        if self.author is None:
            return "unseen"
        if self.verdict is None:
            return "pending"
        if self.verdict in ("allow", "nudge"):
            return "released"
        if self.verdict == "review":
            return "held"
        return "blocked"

    def dumps(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def loads(cls, post_key: str, raw: bytes | None) -> PostState:
        if not raw:
            return cls(post_key=post_key)
        data: dict[str, Any] = orjson.loads(raw)
        data["held"] = [HeldItem(**h) for h in data.get("held", [])]
        return cls(**data)

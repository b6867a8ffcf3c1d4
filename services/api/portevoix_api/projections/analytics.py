"""Analytics and idea-box projection, pure core: one domain event → one `Step` (a named op of
store.py's batch script, with its keys and arguments) or nothing. No I/O here.

Idempotency is per event id: every step first adds the id to the seen-set of the event's local
day and does nothing if it was already there, so a redelivered or re-published event counts once.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from portevoix.contracts.periods import day_text
from portevoix.contracts.readmodels import (
    ANALYTICS_ACTIVE,
    ANALYTICS_AMBASSADOR,
    ANALYTICS_AMBASSADOR_IDEAS,
    ANALYTICS_DAY,
    ANALYTICS_IDEAS,
    ANALYTICS_POST,
    ANALYTICS_REGISTERED,
    ANALYTICS_SEEN,
    ANALYTICS_TAGS,
)

# Last local day (YYYYMMDD) each consenting registered ambassador (digest) posted or engaged: the
# 30-day active count is one ZCOUNT instead of a union of 30 day sets. API-written, API-read.
LAST_ACTIVE = "pv:{an}:last-active"  # zset: digest -> YYYYMMDD

NO_TEAM = "(none)"
SUBJECTS = [
    "pv.evt.ambassador.registered",
    "pv.evt.ambassador.erased",
    "pv.evt.post.received",
    "pv.evt.engagement.received",
    "pv.evt.post.moderated",
    "pv.evt.post.reviewed",
]
VERDICTS = ("allow", "nudge", "review", "block")
SEVERITY = {v: i for i, v in enumerate(VERDICTS)}
IDEA_DETAIL_FIELDS = (
    "post_key", "network", "post_id", "ambassador_id", "text", "url", "lang", "campaign",
    "hashtags", "occurred_at", "kind",
)  # fmt: skip


class InvalidEvent(ValueError):
    """An event this projection cannot use (missing field, bad timestamp)."""


@dataclass(frozen=True)
class Step:
    op: str  # name of the op in store.py's batch script
    keys: list[str]
    args: list[str | int]


# Both are pure and see the same few thousand values again and again (active ambassadors, the
# programme's hashtags): remembered, a hit costs a tenth of a SHA-256 or of a normalisation.
@lru_cache(maxsize=16_384)
def person(ambassador_id: str) -> str:
    """The pseudonymous form of an ambassador id kept in counters (survives erasure harmlessly)."""
    return hashlib.sha256(b"pv-an:" + ambassador_id.encode()).hexdigest()[:20]


@lru_cache(maxsize=4_096)
def fold(tag: str) -> str:
    """A hashtag compared without '#', case or accents: '#Idées' → 'idees'."""
    decomposed = unicodedata.normalize("NFKD", tag.lstrip("#").casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=4_096)
def day_keys(day: str) -> tuple[str, str, str, str]:
    """The seen-set, counters, active set and hashtags of a local day: formatted once per day."""
    return (
        ANALYTICS_SEEN.format(day=day),
        ANALYTICS_DAY.format(day=day),
        ANALYTICS_ACTIVE.format(day=day),
        ANALYTICS_TAGS.format(day=day),
    )


def local_day(occurred_at: str, zone: ZoneInfo) -> str:
    try:
        at = datetime.fromisoformat(occurred_at)
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"occurred_at is not a timestamp: {occurred_at!r}") from exc
    if at.tzinfo is None:
        raise InvalidEvent("occurred_at has no time zone")
    return day_text(at.astimezone(zone))


def _field(event: dict[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{event.get('type')!r} event without {name}")
    return value


def worst_per_principle(findings: Iterable[dict[str, Any]]) -> dict[str, str]:
    """A decision counts once per principle, at its most severe finding (shadow rules excluded)."""
    worst: dict[str, str] = {}
    for f in findings:
        if f.get("shadow") or not isinstance(f.get("principle"), str):
            continue
        verdict = f.get("verdict")
        if verdict not in SEVERITY:
            continue
        principle = f["principle"]
        if principle not in worst or SEVERITY[verdict] > SEVERITY[worst[principle]]:
            worst[principle] = verdict
    return worst


class AnalyticsPlanner:
    def __init__(self, zone: ZoneInfo, idea_hashtags: Iterable[str], retention_days: int) -> None:
        self.zone = zone
        self.idea_tags = {fold(t) for t in idea_hashtags}
        self.ttl_s = retention_days * 86_400

    def is_idea(self, hashtags: Iterable[str]) -> bool:
        return any(fold(t) in self.idea_tags for t in hashtags)

    def plan(self, event: dict[str, Any]) -> Step | None:
        kind = event.get("type")
        event_id = _field(event, "event_id")
        day = local_day(_field(event, "occurred_at"), self.zone)
        seen, day_key, active, day_tags = day_keys(day)
        head: list[str | int] = [event_id, self.ttl_s]
        if kind == "post.received":
            post_key = _field(event, "post_key")
            ambassador_id = _field(event, "ambassador_id")
            tags = sorted({fold(t) for t in event.get("hashtags") or [] if isinstance(t, str)})
            tags = [t for t in tags if t]
            idea = self.is_idea(tags)
            detail = {k: event.get(k) for k in IDEA_DETAIL_FIELDS} if idea else {}
            return Step(
                "post",
                [seen, ANALYTICS_POST.format(post_key=post_key),
                 ANALYTICS_AMBASSADOR.format(ambassador_id=ambassador_id), day_key, active,
                 day_tags, ANALYTICS_IDEAS,
                 ANALYTICS_AMBASSADOR_IDEAS.format(ambassador_id=ambassador_id),
                 ANALYTICS_REGISTERED, LAST_ACTIVE],
                [*head, post_key, _field(event, "network"), str(event.get("kind") or "original"),
                 day, "1" if idea else "0", orjson.dumps(detail).decode() if idea else "",
                 person(ambassador_id), *tags],
            )  # fmt: skip
        if kind == "engagement.received":
            post_key = _field(event, "post_key")
            actor = event.get("actor_ambassador_id")
            return Step(
                "engagement",
                [seen, ANALYTICS_POST.format(post_key=post_key), day_key, active,
                 ANALYTICS_IDEAS, ANALYTICS_REGISTERED, LAST_ACTIVE],
                [*head, post_key, _field(event, "engagement"), _field(event, "network"),
                 person(actor) if isinstance(actor, str) and actor else "", day],
            )  # fmt: skip
        if kind == "post.moderated":
            post_key = _field(event, "post_key")
            verdict = _field(event, "verdict")
            if verdict not in SEVERITY:
                raise InvalidEvent(f"unknown verdict {verdict!r}")
            worst = worst_per_principle(event.get("findings") or [])
            return Step(
                "moderated",
                [seen, ANALYTICS_POST.format(post_key=post_key), day_key, ANALYTICS_IDEAS],
                [*head, post_key, verdict, *(f"{p}:{v}" for p, v in sorted(worst.items()))],
            )  # fmt: skip
        if kind == "post.reviewed":
            post_key = _field(event, "post_key")
            return Step(
                "reviewed",
                [seen, ANALYTICS_POST.format(post_key=post_key), day_key, ANALYTICS_IDEAS],
                [*head, post_key, _field(event, "outcome")],
            )  # fmt: skip
        if kind == "ambassador.registered":
            ambassador_id = _field(event, "ambassador_id")
            return Step(
                "registered",
                [seen, ANALYTICS_AMBASSADOR.format(ambassador_id=ambassador_id),
                 ANALYTICS_REGISTERED, LAST_ACTIVE],
                [*head, person(ambassador_id), str(event.get("team") or NO_TEAM),
                 "1" if event.get("consent") is True else "0"],
            )  # fmt: skip
        if kind == "ambassador.erased":
            ambassador_id = _field(event, "ambassador_id")
            return Step(
                "erased",
                [seen, ANALYTICS_AMBASSADOR.format(ambassador_id=ambassador_id),
                 ANALYTICS_REGISTERED,
                 ANALYTICS_AMBASSADOR_IDEAS.format(ambassador_id=ambassador_id), ANALYTICS_IDEAS,
                 LAST_ACTIVE],
                [*head, person(ambassador_id), ANALYTICS_POST.format(post_key="")],
            )  # fmt: skip
        return None

"""Moderation: the review queue, moderators' decisions and takedowns, ambassadors' appeals, the
audit trail and per-rule fire/overturn counters.

Reads come from the moderation service's read models (Redis, `portevoix.contracts.readmodels`);
writes are events (`PostReviewed`, `AppealFiled`) the moderation and scoring services apply, so
they answer 202 and show in the queue / trail within moments. Event ids derive from the request,
so a retried request is recognised as a duplicate.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from portevoix.contracts.events import EVENT_SUBJECTS, AppealFiled, PostReviewed
from portevoix.contracts.readmodels import (
    MOD_AUDIT_ALL,
    MOD_QUEUE,
    MOD_RULE_STATS,
    decision_key,
    mod_audit_key,
    mod_post_key,
    mod_queue_by_key,
)
from portevoix.runtime.publisher import Outgoing
from portevoix.runtime.redis import text
from portevoix_api.auth import Authenticated, Moderator, Principal
from portevoix_api.problems import Problem
from portevoix_api.routes.events import publish_or_503
from portevoix_api.sealed_fields import open_fields

router = APIRouter(prefix="/v1/moderation", tags=["moderation"])

PostKey = Annotated[
    str, Path(description="`network:post_id`", min_length=3, max_length=300, pattern=r"^[^\s/]+$")
]
PUBLISHED = ("allowed", "nudged", "approved")
PRODUCER = "api"


# -- read helpers (also used by routes/posts.py) -------------------------------------------------
async def load_record(redis: Redis, post_key: str) -> dict[str, Any] | None:
    raw = await redis.hget(mod_post_key(post_key), "s")
    return orjson.loads(raw) if raw else None


async def require_record(redis: Redis, post_key: str) -> dict[str, Any]:
    rec = await load_record(redis, post_key)
    if rec is None:
        raise Problem(404, "Not found", f"no moderation decision for post {post_key!r} (yet)")
    return rec


def _iso_ms(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]


# -- models ----------------------------------------------------------------------------------------
class RuleHitOut(BaseModel):
    rule: str
    principle: str
    verdict: str


class QueueItem(BaseModel):
    post_key: str
    ambassador_id: str | None
    team: str | None
    network: str | None
    status: str
    verdict: str
    decision_id: str
    charter_version: str
    waiting_since: str
    age_s: float
    appeals: int
    rules: list[RuleHitOut]
    text: str | None
    findings: list[dict[str, Any]] = Field(
        default_factory=list, description="The decision's findings, messages in FR and EN."
    )


class QueuePage(BaseModel):
    items: list[QueueItem]
    total: int
    next_cursor: str | None = None


class QueueStats(BaseModel):
    depth: int
    oldest_age_s: float


class ReviewBody(BaseModel):
    outcome: Literal["approved", "rejected"]
    note: str | None = Field(default=None, max_length=2000)


class TakedownBody(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


class AppealBody(BaseModel):
    message: str = Field(min_length=1, max_length=2000)


class Accepted(BaseModel):
    event_id: str
    status: Literal["accepted", "duplicate"]
    review_id: str | None = None
    appeal_id: str | None = None


class RuleStats(BaseModel):
    rule: str
    fires: int
    overturns: int
    confirms: int
    overturn_rate: float | None = Field(description="overturns / (overturns + confirms)")


# -- queue -----------------------------------------------------------------------------------------
@router.get(
    "/queue",
    response_model=QueuePage,
    summary="Posts waiting for a moderator, oldest first",
    description="Filters combine (AND): `rule`, `principle`, `network`, `team`. Held posts and "
    "appealed stopped posts wait here until a moderator approves or rejects them.",
)
async def queue(
    request: Request,
    _who: Moderator,
    rule: str | None = None,
    principle: str | None = None,
    network: str | None = None,
    team: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Any:
    redis: Redis = request.app.state.redis
    offset = int(cursor) if cursor and cursor.isdigit() else 0
    facets = [(f, v) for f, v in (("rule", rule), ("principle", principle),
                                   ("network", network), ("team", team)) if v]  # fmt: skip
    rows: list[tuple[bytes, float]]
    if len(facets) <= 1:
        key = mod_queue_by_key(*facets[0]) if facets else MOD_QUEUE
        pipe = redis.pipeline(transaction=False)
        pipe.zrange(key, offset, offset + limit - 1, withscores=True)
        pipe.zcard(key)
        page, total = await pipe.execute()
        rows = [(m, float(s)) for m, s in page]
    else:
        # Every post in one facet is in the queue; the intersection is small (a queue).
        both: list[Any] = await redis.zinter(
            [mod_queue_by_key(f, v) for f, v in facets], aggregate="MIN", withscores=True
        )
        everything = sorted(((m, float(s)) for m, s in both), key=lambda r: (r[1], r[0]))
        total, rows = len(everything), everything[offset : offset + limit]
    items: list[dict[str, Any]] = []
    if rows:
        pipe = redis.pipeline(transaction=False)
        for member, _ in rows:
            pipe.hget(mod_post_key(text(member)), "s")
            pipe.get(decision_key(text(member)))
        replies: list[Any] = await pipe.execute()
        now = datetime.now(UTC).timestamp() * 1000
        for i, (member, score) in enumerate(rows):
            raw, decision = replies[2 * i], replies[2 * i + 1]
            if not raw:
                continue
            rec = orjson.loads(raw)
            items.append(
                {
                    **{
                        k: rec.get(k)
                        for k in (
                            "ambassador_id",
                            "team",
                            "network",
                            "status",
                            "verdict",
                            "decision_id",
                            "charter_version",
                            "appeals",
                            "rules",
                            "text",
                        )
                    },
                    "post_key": text(member),
                    "waiting_since": _iso_ms(score),
                    "age_s": round(max(0.0, now - score) / 1000, 3),
                    "findings": orjson.loads(decision)["findings"] if decision else [],
                }
            )
    await open_fields(request, items, ("text",))
    more = offset + limit < int(total)
    return {
        "items": items,
        "total": int(total),
        "next_cursor": str(offset + limit) if more else None,
    }


@router.get("/queue/stats", response_model=QueueStats, summary="Queue depth and oldest wait")
async def queue_stats(request: Request, _who: Moderator) -> Any:
    redis: Redis = request.app.state.redis
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(MOD_QUEUE)
    pipe.zrange(MOD_QUEUE, 0, 0, withscores=True)
    depth, oldest = await pipe.execute()
    age = (datetime.now(UTC).timestamp() * 1000 - float(oldest[0][1])) / 1000 if oldest else 0.0
    return {"depth": int(depth), "oldest_age_s": round(max(0.0, age), 3)}


# -- human decisions ---------------------------------------------------------------------------------
async def _publish(request: Request, event: PostReviewed | AppealFiled) -> str:
    result = await publish_or_503(
        request, request.app.state.publisher,
        [Outgoing.of_event(EVENT_SUBJECTS[event.type], event)],
    )  # fmt: skip
    return "duplicate" if result.duplicates else "accepted"


async def _review(
    request: Request,
    who: Principal,
    post_key: str,
    outcome: Literal["approved", "rejected", "taken_down"],
    note: str | None,
) -> dict[str, Any]:
    rec = await require_record(request.app.state.redis, post_key)
    if outcome in ("approved", "rejected") and not rec.get("queued"):
        raise Problem(
            409, "Conflict", f"post {post_key!r} is not waiting for review (status "
            f"{rec['status']}); a published post can be taken down instead",
            kind="not-in-review-queue", status_now=rec["status"],
        )  # fmt: skip
    if outcome == "taken_down" and rec["status"] not in PUBLISHED:
        raise Problem(
            409, "Conflict", f"post {post_key!r} is not published (status {rec['status']})",
            kind="not-published", status_now=rec["status"],
        )  # fmt: skip
    # Same moderator, same outcome on the same decision and appeal round: the same event.
    review_id = _digest(post_key, rec["decision_id"], rec.get("appeals", 0), outcome, who.subject)
    event = PostReviewed(
        event_id=f"review:{review_id}", occurred_at=datetime.now(UTC), producer=PRODUCER,
        review_id=review_id, post_key=post_key, ambassador_id=rec.get("ambassador_id"),
        outcome=outcome, moderator=who.subject, note=note, decision_id=rec["decision_id"],
    )  # fmt: skip
    status = await _publish(request, event)
    return {"event_id": event.event_id, "status": status, "review_id": review_id}


@router.post(
    "/posts/{post_key}/review",
    status_code=202,
    response_model=Accepted,
    summary="Approve or reject a held post",
    description="Only for a post in the review queue (409 otherwise). Approving releases its "
    "held points; rejecting voids them. Recorded in the audit trail with the note.",
)
async def review(request: Request, post_key: PostKey, body: ReviewBody, who: Moderator) -> Any:
    return await _review(request, who, post_key, body.outcome, body.note)


@router.post(
    "/posts/{post_key}/takedown",
    status_code=202,
    response_model=Accepted,
    summary="Take down a published post",
    description="For a post that was allowed, nudged or approved (409 otherwise): its points "
    "are reversed. A note (the reason) is required.",
)
async def takedown(request: Request, post_key: PostKey, body: TakedownBody, who: Moderator) -> Any:
    return await _review(request, who, post_key, "taken_down", body.note)


@router.post(
    "/posts/{post_key}/appeals",
    status_code=202,
    response_model=Accepted,
    summary="Appeal a decision on one's own post",
    description="Ambassadors only, on their own post (403 otherwise). A held, blocked, rejected "
    "or taken-down post goes back to the review queue.",
)
async def appeal(request: Request, post_key: PostKey, body: AppealBody, who: Authenticated) -> Any:
    rec = await require_record(request.app.state.redis, post_key)
    if who.role != "ambassador" or who.ambassador_id != rec.get("ambassador_id"):
        raise Problem(403, "Forbidden", "only the post's author may appeal its decision")
    if rec["status"] in ("allowed", "approved"):
        raise Problem(
            409, "Conflict", f"post {post_key!r} is published without remarks: nothing to appeal",
            kind="nothing-to-appeal",
        )  # fmt: skip
    appeal_id = _digest(post_key, rec["decision_id"], who.ambassador_id, body.message)
    event = AppealFiled(
        event_id=f"appeal:{appeal_id}", occurred_at=datetime.now(UTC), producer=PRODUCER,
        appeal_id=appeal_id, post_key=post_key, ambassador_id=who.ambassador_id,
        message=body.message,
    )  # fmt: skip
    status = await _publish(request, event)
    return {"event_id": event.event_id, "status": status, "appeal_id": appeal_id}


# -- audit and counters --------------------------------------------------------------------------------
@router.get(
    "/posts/{post_key}/audit",
    summary="Audit trail of a post",
    description="Append-only, oldest first: the engine's decisions, holds, moderators' reviews "
    "and takedowns (who, when, note), appeals.",
)
async def post_audit(request: Request, post_key: PostKey, _who: Moderator) -> Any:
    raw: list[bytes] = await request.app.state.redis.lrange(mod_audit_key(post_key), 0, -1)
    return {"post_key": post_key, "items": [orjson.loads(r) for r in raw]}


@router.get(
    "/audit",
    summary="Global audit trail, newest first",
    description="Holds, reviews, takedowns, appeals and charter changes. Page with `before` = "
    "the `next_cursor` of the previous page.",
)
async def audit(
    request: Request,
    _who: Moderator,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    # A stream id (ms-seq), as returned in next_cursor: anything else is a 422, not a 500.
    before: Annotated[str | None, Query(pattern=r"^\d{1,20}-\d{1,20}$")] = None,
) -> Any:
    redis: Redis = request.app.state.redis
    top = f"({before}" if before else "+"
    rows: Any = await redis.xrevrange(MOD_AUDIT_ALL, max=top, min="-", count=limit)
    items = [{"id": text(i), **orjson.loads(f[b"e"])} for i, f in rows]
    return {"items": items, "next_cursor": items[-1]["id"] if len(items) == limit else None}


@router.get(
    "/rules",
    response_model=list[RuleStats],
    summary="Per-rule fires and human overturns",
    description="`fires`: decisions where the rule had a finding. `overturns`: a moderator "
    "approved a post the rule sent to review/block, or rejected/took down a post it let "
    "through (`_missed`: no rule fired). `confirms`: a moderator agreed with the rule.",
)
async def rules(request: Request, _who: Moderator) -> Any:
    raw: dict[bytes, bytes] = await request.app.state.redis.hgetall(MOD_RULE_STATS)
    stats: dict[str, dict[str, int]] = {}
    for k, v in raw.items():
        kind, _, rule = text(k).partition(":")
        stats.setdefault(rule, {"fires": 0, "overturns": 0, "confirms": 0})[kind] = int(v)
    out = []
    for rule, s in sorted(stats.items()):
        judged = s["overturns"] + s["confirms"]
        out.append({"rule": rule, **s,
                    "overturn_rate": round(s["overturns"] / judged, 4) if judged else None})  # fmt: skip
    return out

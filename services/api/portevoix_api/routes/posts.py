"""A post's moderation: status, the decision and its explanation (FR/EN, naming the charter
principle), earlier decisions, the moderator's review and appeals."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from redis.asyncio import Redis

from portevoix.contracts.charter import PRINCIPLE_LABELS
from portevoix.contracts.readmodels import decision_key, mod_decisions_key
from portevoix_api.auth import Authenticated
from portevoix_api.problems import Problem
from portevoix_api.routes.moderation import PostKey, require_record
from portevoix_api.sealed_fields import open_fields

router = APIRouter(prefix="/v1/posts", tags=["posts"])


def _language(request: Request, lang: str | None, decided: str | None) -> str:
    if lang:
        return lang
    accept = request.headers.get("accept-language", "")
    for part in accept.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in ("fr", "en"):
            return code
    return decided if decided in ("fr", "en") else "fr"


@router.get(
    "/{post_key}",
    summary="A post's moderation status and explanation",
    description="`explanation` lists every finding in the reader's language (`lang`, else "
    "Accept-Language, else the post's language) with the charter principle it belongs to and "
    "how to fix it; `decision.findings` carries both languages. Ambassadors see only their own "
    "posts.",
)
async def post_detail(
    request: Request,
    post_key: PostKey,
    who: Authenticated,
    lang: Annotated[Literal["fr", "en"] | None, Query()] = None,
) -> Any:
    redis: Redis = request.app.state.redis
    rec = await require_record(redis, post_key)
    if who.role == "ambassador" and who.ambassador_id != rec.get("ambassador_id"):
        raise Problem(403, "Forbidden", "ambassadors may only read their own posts")
    pipe = redis.pipeline(transaction=False)
    pipe.get(decision_key(post_key))
    pipe.lrange(mod_decisions_key(post_key), 0, -1)
    latest, history = await pipe.execute()
    decision = orjson.loads(latest) if latest else None
    chosen = _language(request, lang, decision.get("lang") if decision else None)
    explanation = [
        {
            "rule": f["rule"],
            "principle": f["principle"],
            "principle_label": PRINCIPLE_LABELS.get(f["principle"], {}).get(chosen, f["principle"]),
            "verdict": f["verdict"],
            "message": f["message"].get(chosen) or next(iter(f["message"].values()), ""),
            "remediation": f["remediation"].get(chosen, ""),
        }
        for f in (decision or {}).get("findings", [])
        if not f.get("shadow")
    ]
    await open_fields(request, [rec], ("text",))
    return {
        "post_key": post_key,
        "ambassador_id": rec.get("ambassador_id"),
        "network": rec.get("network"),
        "team": rec.get("team"),
        "text": rec.get("text"),
        "status": rec["status"],
        "verdict": rec["verdict"],
        "in_review_queue": bool(rec.get("queued")),
        "appeals": rec.get("appeals", 0),
        "review": rec.get("review"),
        "lang": chosen,
        "explanation": explanation,
        "decision": decision,
        "decisions": [
            {
                k: d.get(k)
                for k in (
                    "decision_id",
                    "verdict",
                    "charter_version",
                    "engine_version",
                    "content_hash",
                    "occurred_at",
                )
            }
            for d in map(orjson.loads, history)
        ],
    }

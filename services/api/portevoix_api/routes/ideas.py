"""`GET /v1/ideas`: the idea box. Posts tagged as ideas (#idée, #idee, #idea, #ideas — see
`PORTEVOIX_IDEA_HASHTAGS`; compared without case or accents), most engaging first.

Held or blocked posts leave the box until a moderator approves them; a taken-down post leaves it
for good; an erased ambassador's ideas leave it at once.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from portevoix_api.auth import Staff
from portevoix_api.pagination import Cursor, Limit, decode_offset, offset_cursor
from portevoix_api.problems import error_responses
from portevoix_api.projections.store import AnalyticsStore
from portevoix_api.sealed_fields import open_fields

router = APIRouter(prefix="/v1", tags=["ideas"])


class Idea(BaseModel):
    post_key: str
    network: str
    post_id: str
    ambassador_id: str
    team: str | None = None
    text: str
    url: str | None = None
    lang: str | None = None
    campaign: str | None = None
    hashtags: list[str] = Field(default_factory=list)
    occurred_at: str
    verdict: str | None = Field(default=None, description="latest moderation verdict")
    engagement: dict[str, int] = Field(description="total and per type (like, comment, …)")


class IdeaPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"post_key": "linkedin:p-9", "network": "linkedin", "post_id": "p-9",
                         "ambassador_id": "a-1", "team": "Ventes",
                         "text": "Et si on ouvrait l'atelier aux écoles ? #idée",
                         "hashtags": ["idee"], "occurred_at": "2026-11-20T09:00:00Z",
                         "verdict": "allow", "engagement": {"total": 12, "like": 9, "comment": 3}}
                    ],
                    "next_cursor": None,
                }
            ]
        }
    )  # fmt: skip

    items: list[Idea]
    next_cursor: str | None = None


@router.get(
    "/ideas",
    response_model=IdeaPage,
    summary="The idea box: idea posts ranked by engagement",
    description="Engagement = likes + shares + comments + clicks received. Moderators, admins, "
    "services.",
    responses=error_responses(422),
)
async def ideas(request: Request, _who: Staff, limit: Limit = 20, cursor: Cursor = None) -> Any:
    store: AnalyticsStore = request.app.state.analytics_store
    offset = decode_offset(cursor)
    items, more = await store.ideas(offset, limit)
    await open_fields(request, items, ("text", "url"))
    return {"items": items, "next_cursor": offset_cursor(offset + limit) if more else None}

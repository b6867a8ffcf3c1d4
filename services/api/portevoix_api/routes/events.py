"""`POST /v1/events`: the HTTP door of ingest contract v1 (JSON object, JSON array or NDJSON)."""

from __future__ import annotations

from typing import Any, Literal

import nats.errors
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from portevoix.contracts.ingest import describe_validation_error, parse_ingest_event
from portevoix.runtime.publisher import EventPublisher, Outgoing, PublishError, PublishResult
from portevoix.runtime.streams import RAW_SUBJECT
from portevoix_api.auth import Admin
from portevoix_api.problems import Problem

router = APIRouter(prefix="/v1", tags=["events"])

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/ndjson")


class ItemError(BaseModel):
    field: str
    rule: str
    message: str
    value: Any = None


class ItemResult(BaseModel):
    index: int
    event_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    errors: list[ItemError] = []


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[ItemResult]


EXAMPLE = [
    {
        "type": "ambassador", "ambassador_id": "a-1", "display_name": "Alice Martin",
        "team": "Ventes", "handles": {"linkedin": "alice-martin"}, "consent": True,
    },
    {
        "type": "post", "event_id": "evt-1", "network": "linkedin", "post_id": "p-1",
        "author": "alice-martin", "text": "Fière de notre nouvelle usine ! #collaboratrice",
        "kind": "original", "occurred_at": "2026-11-21T09:30:00Z",
    },
    {
        "type": "comment", "event_id": "evt-2", "network": "linkedin", "post_id": "p-1",
        "actor": "bob", "occurred_at": "2026-11-21T09:45:00Z", "text": "Bravo !",
    },
]  # fmt: skip


def _split(body: bytes, content_type: str) -> list[Any]:
    if content_type.split(";")[0].strip() in NDJSON_TYPES:
        items = []
        for n, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise Problem(
                    422, "Invalid request", f"line {n} is not valid JSON: {exc}",
                    kind="invalid-json", line=n,
                ) from exc  # fmt: skip
        return items
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(
            422, "Invalid request", f"body is not valid JSON: {exc}", kind="invalid-json"
        ) from exc
    return data if isinstance(data, list) else [data]


@router.post(
    "/events",
    status_code=202,
    response_model=IngestResult,
    summary="Ingest activity (contract v1)",
    description="One event object, a JSON array of events, or NDJSON (`application/x-ndjson`). "
    "Each event is validated, then published with its `event_id` as `Nats-Msg-Id`: a resent "
    "event is reported as `duplicate`. Results are per item; if every item is invalid the "
    "answer is a 422 problem naming the bad fields. At most `PORTEVOIX_MAX_BATCH_EVENTS` "
    "(10,000) events and `PORTEVOIX_MAX_BODY_BYTES` (10 MiB) per request (413 beyond). If the "
    "event bus is down the answer is a 503 problem with `Retry-After`: re-send the same "
    "events, their ids make it safe.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}},
                                     "example": EXAMPLE},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)  # fmt: skip
async def ingest_events(request: Request, _who: Admin) -> Any:
    settings = request.app.state.settings
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise Problem(413, "Payload too large", f"body over {settings.max_body_bytes} bytes")
    body = await request.body()
    if len(body) > settings.max_body_bytes:
        raise Problem(413, "Payload too large", f"body over {settings.max_body_bytes} bytes")
    items = _split(body, request.headers.get("content-type", "application/json"))
    if not items:
        raise Problem(422, "Invalid request", "no event in the body", kind="empty-batch")
    if len(items) > settings.max_batch_events:
        raise Problem(
            413, "Payload too large", f"{len(items)} events; at most {settings.max_batch_events}"
        )
    # Plain dicts on this path: a 10,000-event batch must not build 10,000 response models.
    results: list[dict[str, Any]] = []
    outgoing: list[tuple[int, Outgoing]] = []
    for i, raw in enumerate(items):
        try:
            event = parse_ingest_event(raw)
        except ValidationError as exc:
            errors = [r.model_dump(mode="json") for r in describe_validation_error(exc)]
            eid = raw.get("event_id") if isinstance(raw, dict) else None
            results.append(
                {"index": i, "event_id": eid if isinstance(eid, str) else None,
                 "status": "rejected", "errors": errors}
            )  # fmt: skip
            continue
        key = event.idempotency_key()
        results.append({"index": i, "event_id": key, "status": "accepted", "errors": []})
        outgoing.append((i, Outgoing(RAW_SUBJECT, key, orjson.dumps(raw))))
    if not outgoing:
        fields = sorted({e["field"] for r in results for e in r["errors"]})
        raise Problem(
            422, "Invalid request", f"no valid event; invalid field(s): {', '.join(fields)}",
            kind="invalid-events", results=results,
        )  # fmt: skip
    publisher: EventPublisher = request.app.state.publisher
    published = await publish_or_503(request, publisher, [o for _, o in outgoing])
    for (i, _), dup in zip(outgoing, published.duplicate_flags, strict=True):
        if dup:
            results[i]["status"] = "duplicate"
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for r in results:
        counts[r["status"]] += 1
    summary = {
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "results": results,
    }
    return Response(orjson.dumps(summary), status_code=202, media_type="application/json")


async def publish_or_503(
    request: Request, publisher: EventPublisher, messages: list[Outgoing]
) -> PublishResult:
    """Publish with PubAcks; a bus that is down or slow is a 503 the caller can retry (the
    event ids make the retry safe), never a 500."""
    nc = request.app.state.nc
    if nc.is_closed:
        raise _unavailable("the event bus connection is closed")
    try:
        return await publisher.publish_many(messages)
    except (PublishError, nats.errors.Error, TimeoutError, OSError) as exc:
        detail = f"the event bus did not acknowledge the events ({type(exc).__name__})"
        raise _unavailable(detail) from exc


def _unavailable(detail: str) -> Problem:
    return Problem(
        503, "Service unavailable", detail + "; retry later with the same event ids",
        kind="bus-unavailable", headers={"Retry-After": "5"},
    )  # fmt: skip

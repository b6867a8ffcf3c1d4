"""Ingest contract v1: what producers send (HTTP `POST /v1/events`, subject `pv.raw.v1`).

One JSON object per event. `event_id` is the idempotency key everywhere (also `Nats-Msg-Id`).
Validation errors name the field, the value and the rule, so a producer can fix its payload.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

CONTRACT_VERSION = 1

NETWORKS = ("linkedin", "x", "mastodon", "facebook", "instagram", "threads", "bluesky", "other")
Network = Literal[
    "linkedin", "x", "mastodon", "facebook", "instagram", "threads", "bluesky", "other"
]
EngagementType = Literal["like", "share", "comment", "click"]
ENGAGEMENT_TYPES: tuple[str, ...] = ("like", "share", "comment", "click")

# Ids are opaque but bounded: they become Redis keys and NATS header values.
Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\s]+$")
]
Handle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
MAX_TEXT_CHARS = 20_000


def _aware_utc(value: datetime) -> datetime:
    # A timestamp without a zone is ambiguous across the organisation's offices: refuse it.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a time zone (e.g. 2026-11-21T09:30:00Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00: a ValueError (explained), not a crash
        raise ValueError("timestamp out of range once converted to UTC") from None


Timestamp = Annotated[datetime, AfterValidator(_aware_utc)]


def normalise_handle(handle: str) -> str:
    """Handles compare case-insensitively and without a leading '@' on every network."""
    return handle.strip().lstrip("@").casefold()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class AmbassadorIn(_Strict):
    type: Literal["ambassador"]
    ambassador_id: Identifier
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    team: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    handles: dict[Network, Handle] = Field(min_length=1)
    consent: bool
    # Optional: lets producers give ambassador updates an idempotency key of their own.
    event_id: Identifier | None = None

    @field_validator("handles")
    @classmethod
    def _normalise_handles(cls, v: dict[str, str]) -> dict[str, str]:
        return {net: normalise_handle(h) for net, h in v.items()}

    def idempotency_key(self) -> str:
        if self.event_id:
            return self.event_id
        # Same registration content -> same key, so a resent directory entry is a duplicate.
        handles = ",".join(f"{k}={v}" for k, v in sorted(self.handles.items()))
        content = (
            f"{self.ambassador_id}|{self.team}|{int(self.consent)}|{handles}|{self.display_name}"
        )
        return f"amb:{hashlib.sha256(content.encode()).hexdigest()[:32]}"


class PostIn(_Strict):
    type: Literal["post"]
    event_id: Identifier
    network: Network
    post_id: Identifier
    author: Handle
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
    kind: Literal["original", "relay"]
    occurred_at: Timestamp
    url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    lang: Annotated[str, StringConstraints(min_length=2, max_length=8)] | None = None
    campaign: Identifier | None = None
    followers: Annotated[int, Field(ge=0, le=1_000_000_000)] | None = None

    @field_validator("author")
    @classmethod
    def _norm_author(cls, v: str) -> str:
        return normalise_handle(v)

    def idempotency_key(self) -> str:
        return self.event_id


class EngagementIn(_Strict):
    type: EngagementType
    event_id: Identifier
    network: Network
    post_id: Identifier
    actor: Handle
    occurred_at: Timestamp
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] | None = None

    @field_validator("actor")
    @classmethod
    def _norm_actor(cls, v: str) -> str:
        return normalise_handle(v)

    def idempotency_key(self) -> str:
        return self.event_id


class ErasureRequested(BaseModel):
    """Input on `pv.raw.erasure.v1` (GDPR art. 17): erase everything about one ambassador.
    On the raw stream, so it is ordered after every registration and activity already queued."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["ambassador.erasure_requested"] = "ambassador.erasure_requested"
    request_id: Identifier
    ambassador_id: Identifier
    requested_by: Literal["self", "admin", "service"]
    requested_at: Timestamp


IngestEvent = Annotated[AmbassadorIn | PostIn | EngagementIn, Field(discriminator="type")]
INGEST_EVENT: TypeAdapter[AmbassadorIn | PostIn | EngagementIn] = TypeAdapter(IngestEvent)


class Rejection(BaseModel):
    """Why an input event was refused: the field, the offending value and the rule it broke."""

    field: str
    rule: str
    message: str
    value: Any = None


def describe_validation_error(exc: ValidationError) -> list[Rejection]:
    out: list[Rejection] = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        # Drop pydantic's union-tag segment ("post", "like"...) so the field path is the user's.
        if loc and loc[0] in {"ambassador", "post", *ENGAGEMENT_TYPES}:
            loc = loc[1:]
        value = err.get("input")
        if isinstance(value, str) and len(value) > 120:
            value = value[:117] + "..."
        elif isinstance(value, dict | list):
            value = None  # whole objects are echoed back nowhere: they can hold personal data
        out.append(
            Rejection(
                field=".".join(loc) or "(root)", rule=err["type"], message=err["msg"], value=value
            )
        )
    return out


def parse_ingest_event(data: Any) -> AmbassadorIn | PostIn | EngagementIn:
    """Validate one decoded JSON value against contract v1 (raises ValidationError)."""
    return INGEST_EVENT.validate_python(data)


def utcnow() -> datetime:
    return datetime.now(UTC)

"""Dead letter: what a service could not process, why, and the original bytes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class DeadLetter(BaseModel):
    schema_version: int = 1
    type: str = "dead_letter"
    event_id: str
    service: str
    consumer: str
    reason_code: str = Field(description="Stable machine code: invalid_json, invalid_event, ...")
    reason: str = Field(description="Human explanation naming the field, value and rule.")
    detail: dict[str, Any] = Field(default_factory=dict)
    original_subject: str
    original_msg_id: str | None = None
    original_stream_seq: int
    attempts: int
    failed_at: datetime
    payload: str | None = Field(default=None, description="Original payload when it is UTF-8.")
    payload_base64: str | None = Field(default=None, description="Original bytes otherwise.")

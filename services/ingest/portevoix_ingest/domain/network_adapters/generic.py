"""Generic webhook format: events already in ingest contract v1.

Accepted: one event object, ``{"events": [event, …]}``, or a bare list of events.
Events pass through untouched; ``parse_ingest_event`` validates them one by one, so a bad event
is rejected with its own reason without failing its neighbours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._common import ContractDict, WebhookPayloadError

__all__ = ["MAX_EVENTS_PER_REQUEST", "adapt_generic"]

# A webhook request is not a bulk import: the CLI handles large files with resumable progress.
MAX_EVENTS_PER_REQUEST = 1000


def adapt_generic(payload: Any) -> list[ContractDict]:
    if isinstance(payload, Mapping) and "events" in payload and "type" not in payload:
        items: Any = payload["events"]
        if not isinstance(items, list):
            raise WebhookPayloadError("generic payload.events: expected a list of events")
    elif isinstance(payload, Mapping):
        if "type" not in payload:
            raise WebhookPayloadError(
                'generic payload: expected an ingest event with "type" or {"events": [...]}'
            )
        items = [payload]
    elif isinstance(payload, list):
        items = payload
    else:
        raise WebhookPayloadError(
            f"generic payload: expected a JSON object or list, got {type(payload).__name__}"
        )
    if len(items) > MAX_EVENTS_PER_REQUEST:
        raise WebhookPayloadError(
            f"generic payload: {len(items)} events, at most {MAX_EVENTS_PER_REQUEST} per request"
        )
    out: list[ContractDict] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise WebhookPayloadError(f"generic payload.events[{i}]: expected a JSON object")
        out.append(dict(item))
    return out

"""Asking the service that owns a rule set to validate it (NATS request/reply), so the API
never imports another service's code."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from portevoix_api.problems import Problem


async def validate_with(request: Request, subject: str, body: bytes, *, owner: str) -> Any:
    """The owner's verdict ({"ok": …}); 503 problem when no instance of it answers."""
    try:
        reply = await request.app.state.nc.request(subject, body, timeout=10)
    except Exception as exc:  # no responder, timeout, reconnecting
        raise Problem(
            503, "Service unavailable", f"{owner} could not validate it: {type(exc).__name__}",
            kind=f"{owner}-unavailable", headers={"Retry-After": "5"},
        ) from exc  # fmt: skip
    return orjson.loads(reply.data)

"""What moderators' chat tools receive when a post is held, reviewed or appealed.

The body is Slack- and Teams-compatible (`text` is what both incoming webhooks display; the
other fields are for programs). It is signed like Porte-Voix's inbound webhooks:
`X-PV-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>` with the unix time in
`X-PV-Timestamp`, so a receiver rejects forged or replayed calls.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from portevoix_moderation.domain.lifecycle import PostRecord

EVENTS = ("post.held", "post.reviewed", "appeal.filed")
_TITLES = {
    "post.held": "Post held for review",
    "post.reviewed": "Post reviewed",
    "appeal.filed": "Appeal filed",
}


def notification(event: str, rec: PostRecord, *, delivery_id: str, **extra: Any) -> dict[str, Any]:
    rules = ", ".join(f"{r.rule} ({r.principle})" for r in rec.rules) or "—"
    excerpt = (rec.text or "")[:280]
    lines = [
        f"*{_TITLES.get(event, event)}* — `{rec.post_key}` by {rec.ambassador_id or '?'}"
        + (f" ({rec.team})" if rec.team else ""),
        f"Verdict: {rec.verdict} · status: {rec.status} · rules: {rules}",
    ]
    if excerpt:
        lines.append(f"> {excerpt}")
    lines += [f"{k}: {v}" for k, v in extra.items() if v]
    return {
        "text": "\n".join(lines),
        "event": event,
        "delivery_id": delivery_id,
        "post_key": rec.post_key,
        "ambassador_id": rec.ambassador_id,
        "team": rec.team,
        "network": rec.network,
        "verdict": rec.verdict,
        "status": rec.status,
        "rules": [r.rule for r in rec.rules],
        "principles": sorted({r.principle for r in rec.rules}),
        "decision_id": rec.decision_id,
        **{k: v for k, v in extra.items() if v is not None},
    }


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_request(
    secret: str, payload: dict[str, Any], timestamp: int
) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    headers = {
        "Content-Type": "application/json",
        "X-PV-Timestamp": str(timestamp),
        "X-PV-Signature": sign(secret, timestamp, body),
        "X-PV-Event": str(payload.get("event", "")),
        "X-PV-Delivery": str(payload.get("delivery_id", "")),
    }
    return body, headers


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (used by the tests and documented for subscribers)."""
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)

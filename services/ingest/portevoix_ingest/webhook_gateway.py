"""Signed webhooks, answered by ingest over NATS request/reply for the API's
`POST|GET /v1/webhooks/{network}`.

Why here and not in the API: the secrets, the signature schemes and the payload adapters are
ingest's; the API stays a thin gateway that forwards the exact body bytes (the MAC covers them)
and the signature headers. Request: subject `pv.rpc.ingest.webhook.v1` (queue group `ingest`),
headers `Pv-Network`, `Pv-Op` (`deliver` | `handshake`), `Pv-Query` (JSON of the query string,
handshakes) and the signature headers; data = the raw body. Reply: JSON
`{"status": <http status>, "body": {...}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from portevoix.contracts.ingest import describe_validation_error, parse_ingest_event
from portevoix.runtime.publisher import EventPublisher, Outgoing
from portevoix.runtime.streams import RAW_SUBJECT, WEBHOOK_RPC_SUBJECT
from portevoix_ingest.domain.webhooks import (
    ADAPTERS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookAuthError,
    WebhookPayloadError,
    adapt,
    linkedin_challenge_response,
    verify_linkedin_signature,
    verify_signature,
    verify_x_signature,
    x_crc_response,
)
from portevoix_ingest.metrics import WEBHOOKS
from portevoix_ingest.settings import IngestSettings

LINKEDIN_SIGNATURE = "X-LI-Signature"
X_SIGNATURE = "x-twitter-webhooks-signature"
FORWARDED_HEADERS = (SIGNATURE_HEADER, TIMESTAMP_HEADER, LINKEDIN_SIGNATURE, X_SIGNATURE)
# In-flight requests per ingest process: each waits for its PubAcks, so they overlap.
CONCURRENCY = 64

log = logging.getLogger("portevoix.ingest.webhooks")
Reply = tuple[int, dict[str, Any]]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


class WebhookGateway:
    def __init__(self, settings: IngestSettings, publisher: EventPublisher) -> None:
        self._settings = settings
        self._pub = publisher
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the decisions (no NATS here: unit-testable with a publisher) ----------------------
    def handshake(self, network: str, query: Mapping[str, str]) -> Reply:
        secrets = self._settings.secrets_for(network)
        if network not in ADAPTERS or not secrets:
            return 404, {"reason": "unknown_source", "detail": _unknown(network)}
        if network == "x" and query.get("crc_token"):
            return 200, x_crc_response(query["crc_token"], secrets[0])
        if network == "linkedin" and query.get("challengeCode"):
            return 200, linkedin_challenge_response(query["challengeCode"], secrets[0])
        return 400, {
            "reason": "no_challenge",
            "detail": "expected crc_token (x) or challengeCode (linkedin) in the query string",
        }

    def authenticate(self, network: str, headers: Mapping[str, str], body: bytes) -> None:
        """Raise WebhookAuthError with the precise reason unless the request is authentic."""
        secrets = self._settings.secrets_for(network)
        pv_sig, pv_ts = _header(headers, SIGNATURE_HEADER), _header(headers, TIMESTAMP_HEADER)
        li_sig, x_sig = _header(headers, LINKEDIN_SIGNATURE), _header(headers, X_SIGNATURE)
        if pv_sig is None and pv_ts is None and network == "linkedin" and li_sig is not None:
            _any_secret(lambda s: verify_linkedin_signature(body, li_sig, s), secrets)
        elif pv_sig is None and pv_ts is None and network == "x" and x_sig is not None:
            _any_secret(lambda s: verify_x_signature(body, x_sig, s), secrets)
        else:
            verify_signature(
                body, pv_ts, pv_sig, secrets, time.time(), self._settings.webhook_window_s
            )

    async def deliver(self, network: str, headers: Mapping[str, str], body: bytes) -> Reply:
        if network not in ADAPTERS or not self._settings.secrets_for(network):
            WEBHOOKS.labels("unknown", "unknown_source").inc()
            return 404, {"reason": "unknown_source", "detail": _unknown(network)}
        try:
            self.authenticate(network, headers, body)
        except WebhookAuthError as exc:
            WEBHOOKS.labels(network, "unauthorized").inc()
            return 401, {"reason": exc.reason, "detail": exc.detail or exc.reason}
        try:
            items = adapt(network, orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            WEBHOOKS.labels(network, "invalid").inc()
            return 422, {"reason": "invalid_json", "detail": f"body is not valid JSON: {exc}"}
        except WebhookPayloadError as exc:
            WEBHOOKS.labels(network, "invalid").inc()
            return 422, {"reason": "unknown_payload", "detail": exc.reason}
        results: list[dict[str, Any]] = []
        outgoing: list[tuple[int, Outgoing]] = []
        for i, item in enumerate(items):
            try:
                event = parse_ingest_event(item)
            except ValidationError as exc:
                eid = item.get("event_id")
                results.append(
                    {
                        "index": i,
                        "event_id": eid if isinstance(eid, str) else None,
                        "status": "rejected",
                        "errors": [
                            r.model_dump(mode="json") for r in describe_validation_error(exc)
                        ],
                    }
                )
                continue
            key = event.idempotency_key()
            results.append({"index": i, "event_id": key, "status": "accepted", "errors": []})
            outgoing.append((i, Outgoing(RAW_SUBJECT, key, orjson.dumps(item))))
        try:
            published = await self._pub.publish_many([o for _, o in outgoing])
        except Exception as exc:  # PublishError, connection errors: the caller retries
            WEBHOOKS.labels(network, "unavailable").inc()
            return 503, {"reason": "bus_unavailable", "detail": f"{type(exc).__name__}: {exc}"}
        for (i, _), dup in zip(outgoing, published.duplicate_flags, strict=True):
            if dup:
                results[i]["status"] = "duplicate"
        WEBHOOKS.labels(network, "accepted").inc()
        counts = {s: sum(r["status"] == s for r in results) for s in ("accepted", "duplicate")}
        return 200, {
            "accepted": counts["accepted"],
            "duplicates": counts["duplicate"],
            "rejected": sum(r["status"] == "rejected" for r in results),
            "results": results,
        }

    # -- NATS adapter ----------------------------------------------------------------------
    async def subscribe(self, nc: NatsClient) -> Subscription:
        return await nc.subscribe(WEBHOOK_RPC_SUBJECT, queue="ingest", cb=self._on_request)

    async def _on_request(self, msg: Msg) -> None:
        # One task per request so a slow PubAck does not queue the next webhook behind it.
        await self._slots.acquire()
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        try:
            headers = dict(msg.headers or {})
            network = headers.get("Pv-Network", "")
            if headers.get("Pv-Op") == "handshake":
                query = orjson.loads(headers.get("Pv-Query") or "{}")
                status, body = self.handshake(network, query if isinstance(query, dict) else {})
            else:
                status, body = await self.deliver(network, headers, msg.data)
            with contextlib.suppress(Exception):
                await msg.respond(orjson.dumps({"status": status, "body": body}))
        except Exception:
            log.exception("webhook request failed")
            with contextlib.suppress(Exception):
                await msg.respond(
                    orjson.dumps({"status": 500, "body": {"reason": "internal_error"}})
                )
        finally:
            self._slots.release()


def _unknown(network: str) -> str:
    return f"no webhook source {network!r} is configured (known: {', '.join(sorted(ADAPTERS))})"


def _any_secret(check: Any, secrets: list[bytes]) -> None:
    """Native schemes take one secret: try each (rotation), keep the last precise failure."""
    failure: WebhookAuthError | None = None
    for secret in secrets:
        try:
            check(secret)
            return
        except WebhookAuthError as exc:
            failure = exc
            if exc.reason != "bad_signature":
                raise
    raise failure or WebhookAuthError("bad_signature", "no secret configured")

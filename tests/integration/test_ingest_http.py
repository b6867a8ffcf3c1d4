"""The API's ingest doors in-process (ASGI) over a real nats-server and Valkey, with ingest's
webhook gateway and pipeline running in the same loop: signed webhooks, handshakes, the
ambassador directory, GDPR export/erasure, and 503 (never 500) when the bus is down."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis

from portevoix.runtime.publisher import EventPublisher
from portevoix.runtime.streams import RAW
from portevoix_api.app import create_app
from portevoix_api.auth import APIKEY, token_digest
from portevoix_api.settings import ApiSettings
from portevoix_ingest.domain.webhooks import sign
from portevoix_ingest.settings import IngestSettings
from portevoix_ingest.webhook_gateway import WebhookGateway
from tests.infra import Server
from tests.integration.test_ingest_pipeline import Harness, act, post

pytestmark = pytest.mark.integration
PAYLOADS = Path(__file__).resolve().parents[1] / "unit" / "ingest" / "payloads"
SECRETS = {"generic": "g-old,g-new", "linkedin": "li-secret", "x": "x-secret", "mastodon": "m"}


def _settings(nats_url: str, redis_url: str, **extra: Any) -> ApiSettings:
    return ApiSettings(NATS_URL=nats_url, REDIS_URL=redis_url, admin_token="admin-t", **extra)


@pytest.fixture
async def api(
    nats_server: Server, redis_server: Server, nc: NatsClient, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(nats_server.url, redis_server.url))
    gateway = WebhookGateway(
        IngestSettings(webhook_secrets=SECRETS), EventPublisher(nc.jetstream())
    )
    sub = await gateway.subscribe(nc)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers={"Authorization": "Bearer admin-t"}
        ) as client:
            yield client
    await sub.unsubscribe()


def signed(body: bytes, secret: bytes = b"g-new", at: int | None = None) -> dict[str, str]:
    ts = str(at if at is not None else int(time.time()))
    return {"X-PV-Timestamp": ts, "X-PV-Signature": sign(body, ts, secret),
            "Content-Type": "application/json"}  # fmt: skip


async def raw_ids(nc: NatsClient) -> list[str]:
    js = nc.jetstream()
    last = (await js.stream_info(RAW.name)).state.last_seq
    out = []
    for seq in range(1, last + 1):
        msg = await js.get_msg(RAW.name, seq)
        out.append((msg.headers or {}).get("Nats-Msg-Id", ""))
    return out


async def test_signed_generic_webhook_publishes_contract_events_with_their_ids(
    api: httpx.AsyncClient, nc: NatsClient
) -> None:
    body = (PAYLOADS / "generic_batch.json").read_bytes()
    r = await api.post("/v1/webhooks/generic", content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (3, 0, 0)
    ids = [i["event_id"] for i in result["results"]]
    assert ids[1:] == ["crm-like-1", "bitly-9f2"]
    assert await raw_ids(nc) == ids
    # The old secret still verifies (rotation); a resend is reported as duplicates.
    r = await api.post("/v1/webhooks/generic", content=body, headers=signed(body, b"g-old"))
    assert r.json()["duplicates"] == 3 and len(await raw_ids(nc)) == 3
    # Per item: one bad event does not sink the others.
    mixed = orjson.dumps([act("like", "w1", "p", "fan"), {**act("like", "w2", "p", "f"),
                          "occurred_at": "yesterday"}])  # fmt: skip
    r = await api.post("/v1/webhooks/generic", content=mixed, headers=signed(mixed))
    assert [i["status"] for i in r.json()["results"]] == ["accepted", "rejected"]
    assert r.json()["results"][1]["errors"][0]["field"] == "occurred_at"


async def test_signature_failures_are_401_problems_naming_the_reason(
    api: httpx.AsyncClient,
) -> None:
    body = b'{"type": "like"}'
    cases = {
        "missing_timestamp": {"X-PV-Signature": "sha256=" + "0" * 64},
        "bad_signature": signed(body, b"wrong"),
        "stale_timestamp": signed(body, at=int(time.time()) - 3600),
        "future_timestamp": signed(body, at=int(time.time()) + 3600),
        "malformed_signature": {**signed(body), "X-PV-Signature": "md5=abc"},
    }
    for reason, headers in cases.items():
        r = await api.post("/v1/webhooks/generic", content=body, headers=headers)
        assert r.status_code == 401, (reason, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["reason"] == reason
    r = await api.post("/v1/webhooks/myspace", content=body, headers=signed(body))
    assert r.status_code == 404
    bad = b"{not json"
    r = await api.post("/v1/webhooks/generic", content=bad, headers=signed(bad))
    assert r.status_code == 422 and r.json()["reason"] == "invalid_json"
    odd = b'{"hello": 1}'
    r = await api.post("/v1/webhooks/generic", content=odd, headers=signed(odd))
    assert r.status_code == 422 and r.json()["reason"] == "unknown_payload"


async def test_network_native_signatures_and_handshakes(
    api: httpx.AsyncClient, nc: NatsClient
) -> None:
    body = (PAYLOADS / "linkedin_social_actions.json").read_bytes()
    li = hmac.new(b"li-secret", b"hmacsha256=" + body, hashlib.sha256).hexdigest()
    r = await api.post("/v1/webhooks/linkedin", content=body, headers={"X-LI-Signature": li})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] >= 2
    assert all(i.startswith("li") or ":" in i for i in await raw_ids(nc))
    r = await api.post("/v1/webhooks/linkedin", content=body, headers={"X-LI-Signature": "0" * 64})
    assert r.status_code == 401 and r.json()["reason"] == "bad_signature"

    r = await api.get("/v1/webhooks/x", params={"crc_token": "abc"})
    expected = base64.b64encode(hmac.new(b"x-secret", b"abc", hashlib.sha256).digest()).decode()
    assert r.status_code == 200 and r.json() == {"response_token": "sha256=" + expected}
    r = await api.get("/v1/webhooks/linkedin", params={"challengeCode": "c0de"})
    assert r.json()["challengeResponse"] == hmac.new(b"li-secret", b"c0de", "sha256").hexdigest()
    r = await api.get("/v1/webhooks/x")
    assert r.status_code == 400


async def test_webhooks_without_ingest_answer_503(
    nats_server: Server, redis_server: Server, nc: NatsClient
) -> None:
    app = create_app(_settings(nats_server.url, redis_server.url))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        r = await client.post("/v1/webhooks/generic", content=b"{}", headers=signed(b"{}"))
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.headers["content-type"] == "application/problem+json"


async def test_http_batch_answers_503_not_500_when_nats_is_down(
    nats_server: Server, redis_server: Server
) -> None:
    app = create_app(_settings(nats_server.url, redis_server.url, publish_timeout_s=0.5))
    events = [post("n1", "pn1", "someone"), act("like", "n2", "pn1", "fan")]
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api",
        headers={"Authorization": "Bearer admin-t"},
    ) as client:  # fmt: skip
        r = await client.post("/v1/events", json=events)
        assert r.status_code == 202 and r.json()["accepted"] == 2
        nats_server.stop()
        r = await client.post("/v1/events", json=events)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("bus-unavailable")
        assert r.headers["retry-after"] == "5"
        # Invalid input is still judged per item without the bus.
        r = await client.post("/v1/events", json=[{"type": "like"}])
        assert r.status_code == 422
        # NATS back: the client's retry of the same events is safe (JetStream dedupe).
        assert nats_server.embedded is not None
        nats_server.embedded.start()
        for _ in range(100):
            if app.state.nc.is_connected:
                break
            await asyncio.sleep(0.1)
        r = await client.post("/v1/events", json=events)
        assert r.status_code == 202 and r.json()["duplicates"] == 2, r.text


async def test_directory_register_list_consent_export_and_erase(
    api: httpx.AsyncClient, nc: NatsClient, redis: Redis
) -> None:
    ingest = await Harness(nc, redis).start()
    try:
        body = {"ambassador_id": "alice", "display_name": "Alice Martin", "team": "Ventes",
                "handles": {"linkedin": "@Alice-M", "x": "alice_x"}, "consent": True}  # fmt: skip
        r = await api.post("/v1/ambassadors", json=body)
        assert r.status_code == 202 and r.json()["status"] == "accepted", r.text
        r = await api.put("/v1/ambassadors/bob", json={**body, "display_name": "Bob",
                          "team": "Tech", "handles": {"linkedin": "bob"}})  # fmt: skip
        assert r.status_code == 202
        r = await api.post("/v1/ambassadors", json={**body, "handles": {}})
        assert r.status_code == 422
        await ingest.drain()

        r = await api.get("/v1/ambassadors", params={"team": "Ventes"})
        assert [a["ambassador_id"] for a in r.json()["items"]] == ["alice"]
        assert r.json()["items"][0]["handles"] == {"linkedin": "alice-m", "x": "alice_x"}
        r = await api.get("/v1/ambassadors", params={"limit": 1})
        assert [a["ambassador_id"] for a in r.json()["items"]] == ["alice"]
        r = await api.get("/v1/ambassadors", params={"limit": 1, "cursor": r.json()["next_cursor"]})
        assert [a["ambassador_id"] for a in r.json()["items"]] == ["bob"]
        assert r.json()["next_cursor"] is None

        # An ambassador manages their own consent and data, nobody else's.
        await redis.hset(APIKEY.format(digest=token_digest("alice-key")),
                         mapping={"role": "ambassador", "subject": "alice", "ambassador_id": "alice"})  # fmt: skip
        me = {"Authorization": "Bearer alice-key"}
        assert (await api.get("/v1/ambassadors/bob", headers=me)).status_code == 403
        assert (await api.get("/v1/ambassadors", headers=me)).status_code == 403
        r = await api.put("/v1/ambassadors/alice/consent", json={"consent": False}, headers=me)
        assert r.status_code == 202
        await ingest.drain()
        r = await api.get("/v1/ambassadors/alice", headers=me)
        assert r.json()["consent"] is False and r.json()["consent_changed_at"]

        r = await api.get("/v1/ambassadors/alice/export", headers=me)
        assert r.status_code == 200
        assert r.headers["content-disposition"].startswith("attachment")
        doc = r.json()
        assert doc["ambassador"]["display_name"] == "Alice Martin"
        assert doc["ambassador"]["handles"]["x"] == "alice_x"
        assert doc["parked_activity"] == []

        r = await api.put("/v1/ambassadors/carol", json={**body, "handles": {"linkedin": "carol"}})
        # Writes are asynchronous: until ingest has applied it, the entry does not exist.
        assert (await api.get("/v1/ambassadors/carol/export")).status_code == 404

        r = await api.delete("/v1/ambassadors/alice", headers=me)
        assert r.status_code == 202
        receipt_url = r.json()["status_url"]
        assert (await api.get(receipt_url)).json()["status"] == "pending"
        await ingest.drain()
        assert (await api.get("/v1/ambassadors/alice")).status_code == 404
        receipt = (await api.get(receipt_url, headers=me)).json()
        assert receipt["status"] == "done" and receipt["existed"] is True
        assert receipt["networks"] == ["linkedin", "x"]
        r = await api.get("/v1/ambassadors", params={"team": "Ventes"})
        assert [a["ambassador_id"] for a in r.json()["items"]] == ["carol"]
        assert not await redis.keys("pv:handle:*alice*")
    finally:
        await ingest.stop()

"""Ingest through the real processes: directory API, signed webhooks answered by the ingest
process, parked-activity gauge, and GDPR erasure down to the leaderboard's display name."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import nats.js.errors
import orjson
import pytest
from redis.asyncio import Redis

from portevoix.contracts.readmodels import VAULT_KEY
from portevoix.runtime.platform import Platform
from portevoix_ingest.domain.webhooks import sign
from tests.e2e.helpers import act, eventually, post
from tests.infra import running_platform, start_nats, start_redis

pytestmark = pytest.mark.e2e
SECRETS = {"generic": "e2e-generic", "linkedin": "e2e-li"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The shared platform, plus webhook secrets for the ingest process."""
    root: Path = tmp_path_factory.mktemp("platform-ingest")
    nats, redis = start_nats(root / "nats"), start_redis(root / "valkey")
    p = Platform(
        run_dir=root, nats_url=nats.url, redis_url=redis.url, log_dir=root / "logs",
        admin_token="test-admin-token",
        extra_env={"PORTEVOIX_ACK_WAIT_S": "2", "PORTEVOIX_LOG_LEVEL": "WARNING",
                   "PORTEVOIX_WEBHOOK_SECRETS": orjson.dumps(SECRETS).decode(),
                   "PORTEVOIX_WEBHOOK_SECRET_X": "e2e-x", "PORTEVOIX_PARKED_POLL_S": "0.5",
                   # Readers forget a shredded data key within a second (default 60 s).
                   "PORTEVOIX_VAULT_CACHE_S": "1"},
    )  # fmt: skip
    with running_platform(p, nats, redis):
        yield p


def signed_post(api: httpx.Client, network: str, payload: object) -> httpx.Response:
    body = orjson.dumps(payload)
    ts = str(int(time.time()))
    headers = {"X-PV-Timestamp": ts, "X-PV-Signature": sign(body, ts, SECRETS[network].encode()),
               "Content-Type": "application/json"}  # fmt: skip
    return api.post(f"/v1/webhooks/{network}", content=body, headers=headers)


def standing(api: httpx.Client, aid: str) -> dict | None:
    items = api.get("/v1/leaderboards/all-time", params={"limit": 500}).json()["items"]
    return next((i for i in items if i["ambassador_id"] == aid), None)


def test_register_via_api_ingest_via_webhook_then_erase(
    platform: Platform, api: httpx.Client
) -> None:
    r = api.post("/v1/ambassadors", json={
        "ambassador_id": "lea", "display_name": "Léa Fontaine", "team": "Marketing",
        "handles": {"linkedin": "lea-f"}, "consent": True,
    })  # fmt: skip
    assert r.status_code == 202, r.text
    eventually(lambda: api.get("/v1/ambassadors/lea").status_code == 200)

    text = "Ravie d'annoncer l'ouverture de notre agence de Bordeaux ! #collaboratrice"
    batch = {"events": [post("w-e1", "w-p1", "lea-f", text), act("like", "w-l1", "w-p1", "fan1"),
                        act("like", "w-l1b", "w-p1", "FAN1")]}  # fmt: skip
    r = signed_post(api, "generic", batch)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 3
    # The second like is the same fact under another id: scored once (10 + 1).
    eventually(lambda: ((s := standing(api, "lea")) and s["points"] == 11) or None)
    assert standing(api, "lea")["display_name"] == "Léa Fontaine"  # type: ignore[index]

    r = signed_post(api, "generic", batch)
    assert r.json()["duplicates"] == 3
    bad = httpx.post(f"{platform.api_url}/v1/webhooks/generic", content=b"{}",
                     headers={"X-PV-Timestamp": str(int(time.time())),
                              "X-PV-Signature": "sha256=" + "0" * 64})  # fmt: skip
    assert bad.status_code == 401 and bad.json()["reason"] == "bad_signature"
    crc = httpx.get(f"{platform.api_url}/v1/webhooks/x", params={"crc_token": "t"})
    assert crc.status_code == 200 and crc.json()["response_token"].startswith("sha256=")

    # Unknown author: parked, visible in the ingest gauge.
    r = api.post("/v1/events", json=[post("w-e2", "w-p2", "nobody-yet", text)])
    assert r.status_code == 202

    def parked_gauge() -> float | None:
        metrics = httpx.get(platform.metrics_url("ingest")).text
        for line in metrics.splitlines():
            if line.startswith("pv_ingest_parked_items "):
                return float(line.split()[1]) or None
        return None

    assert eventually(parked_gauge) == 1.0

    # Personal data travels and rests sealed: no name, handle or text in the domain event log;
    # the API opens the text for a reader allowed to see it.
    secrets_of_lea = (b"L\xc3\xa9a Fontaine", b"lea-f", b"agence de Bordeaux")
    log = asyncio.run(event_log(platform))
    assert any(b'"ambassador_id":"lea"' in m for m in log)
    assert not [m for m in log if any(s in m for s in secrets_of_lea)]
    detail = eventually(lambda: (r := api.get("/v1/posts/linkedin:w-p1")).status_code == 200 and r)
    assert detail.json()["text"] == text

    r = api.delete("/v1/ambassadors/lea")
    assert r.status_code == 202
    status_url = r.json()["status_url"]
    eventually(lambda: api.get(status_url).json()["status"] == "done")
    assert api.get("/v1/ambassadors/lea").status_code == 404
    assert api.get("/v1/ambassadors", params={"team": "Marketing"}).json()["items"] == []
    # The person is gone from the per-person boards; their points stay in the team's total.
    eventually(lambda: standing(api, "lea") is None)
    teams = api.get("/v1/leaderboards/all-time/teams").json()["items"]
    assert {t["team"]: t["points"] for t in teams}.get("Marketing") == 11

    # Crypto-shredding: the data key is gone, so every sealed copy — in the year-long log and in
    # the moderation read model — is noise; the post's verdict and points remain, anonymous.
    assert asyncio.run(vault_key_exists(platform, "lea")) is False
    eventually(lambda: api.get("/v1/posts/linkedin:w-p1").json()["text"] is None, timeout_s=10)
    gone = api.get("/v1/posts/linkedin:w-p1").json()
    assert gone["verdict"] and gone["ambassador_id"] == "lea"
    log = asyncio.run(event_log(platform))
    assert not [m for m in log if any(s in m for s in secrets_of_lea)]


async def event_log(platform: Platform) -> list[bytes]:
    """Every message of PV_EVENTS, raw."""
    nc = await nats.connect(str(platform.nats_url))
    try:
        js = nc.jetstream()
        info = await js.stream_info("PV_EVENTS")
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                out.append((await js.get_msg("PV_EVENTS", seq)).data or b"")
        return out
    finally:
        await nc.close()


async def vault_key_exists(platform: Platform, owner: str) -> bool:
    redis = Redis.from_url(str(platform.redis_url))
    try:
        return bool(await redis.exists(VAULT_KEY.format(owner=owner)))
    finally:
        await redis.aclose()

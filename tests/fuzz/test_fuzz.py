"""Fuzzing the two doors of the platform with hypothesis-generated junk (wrong types, huge
strings, invalid UTF-8, missing fields, future dates):
- the bus: every raw subject ingest consumes (`pv.raw.v1`, `pv.raw.webhook.<network>`,
  `pv.raw.erasure.v1`), junk mixed with valid events: each junk message becomes a dead letter
  with a reason_code and a reason, and every valid event is scored;
- HTTP: every POST/PUT/PATCH route the API publishes in its OpenAPI document: never a 5xx, every
  refusal a 4xx problem+json that says what is wrong.
The services stay up throughout. Bounded (PORTEVOIX_FUZZ_EXAMPLES) and derandomized for CI;
PORTEVOIX_FUZZ_RANDOM=1 explores new inputs on each run.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from portevoix.contracts.ingest import parse_ingest_event
from portevoix.runtime.platform import SERVICES, Platform
from portevoix.runtime.streams import DLQ
from tests.fuzz.junk import RECENT, broken_event, dumps, json_values, junk_bytes
from tests.infra import start_nats, start_redis

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("PORTEVOIX_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("PORTEVOIX_FUZZ_RANDOM") != "1",
    database=None,
    suppress_health_check=list(HealthCheck),
)
RAW_SUBJECTS = ["pv.raw.v1", "pv.raw.webhook.linkedin", "pv.raw.webhook.x", "pv.raw.erasure.v1"]
TOKEN = "fuzz-admin-token"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    nats_srv, redis_srv = start_nats(root / "nats"), start_redis(root / "valkey")
    p = Platform(
        run_dir=root, nats_url=nats_srv.url, redis_url=redis_srv.url, log_dir=root / "logs",
        admin_token=TOKEN, extra_env={"PORTEVOIX_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    try:
        p.start(wait_ready_s=90)
        yield p
    finally:
        p.stop()
        nats_srv.stop()
        redis_srv.stop()


def _all_alive(platform: Platform) -> None:
    dead = [n for n in SERVICES if not platform.children[n].alive()]
    assert not dead, f"services died under fuzzing: {dead}"


def _contract_rejects(data: bytes) -> bool:
    """What ingest must refuse: not JSON, not contract v1, or outside the accepted time range."""
    try:
        event = parse_ingest_event(orjson.loads(data))
    except (orjson.JSONDecodeError, ValidationError):
        return True
    at = getattr(event, "occurred_at", None)
    now = datetime.now(UTC)
    return at is not None and not (now - timedelta(days=400) <= at <= now + timedelta(minutes=5))


# -- the bus ---------------------------------------------------------------------------------


def test_bus_junk_is_dead_lettered_with_a_reason_and_valid_events_are_all_scored(
    platform: Platform,
) -> None:
    junk: list[tuple[str, bytes]] = []

    @FUZZ
    @given(subject=st.sampled_from(RAW_SUBJECTS), data=junk_bytes)
    def collect(subject: str, data: bytes) -> None:
        # The generator's own property: everything it makes is refused by the contract.
        assert subject == "pv.raw.erasure.v1" or _contract_rejects(data), data[:200]
        junk.append((subject, data))

    collect()
    assert len(junk) >= min(EXAMPLES, 50)
    # Valid events interleaved with the junk: one author, one post, one like per fan.
    valid: list[dict[str, Any]] = [
        {"type": "ambassador", "ambassador_id": "fz-amb", "display_name": "Fuzz Target",
         "team": "QA", "handles": {"linkedin": "fz-author"}, "consent": True},
        {"type": "post", "event_id": "fz-post", "network": "linkedin", "post_id": "fz-p",
         "author": "fz-author", "kind": "original", "occurred_at": RECENT,
         "text": "Merci à toute l'équipe pour cette belle journée à Lyon ! #collaborateur"},
    ]  # fmt: skip
    likes = max(20, len(junk) // 2)
    valid += [
        {"type": "like", "event_id": f"fz-like-{i}", "network": "linkedin", "post_id": "fz-p",
         "actor": f"fz-fan-{i}", "occurred_at": RECENT}
        for i in range(likes)
    ]  # fmt: skip

    async def publish() -> None:
        nc = await nats.connect(str(platform.nats_url))
        js = nc.jetstream(timeout=10)
        for e in valid[:2]:
            await js.publish(
                "pv.raw.v1",
                orjson.dumps(e),
                headers={"Nats-Msg-Id": e.get("event_id", "fz-amb-reg")},
            )
        for i, (subject, data) in enumerate(junk):
            await js.publish(subject, data, headers={"Nats-Msg-Id": f"fz-junk-{i}"})
            if i % 2 == 0 and 2 + i // 2 < len(valid):
                e = valid[2 + i // 2]
                await js.publish(
                    "pv.raw.v1", orjson.dumps(e), headers={"Nats-Msg-Id": e["event_id"]}
                )
        for e in valid[2 + (len(junk) + 1) // 2 :]:
            await js.publish("pv.raw.v1", orjson.dumps(e), headers={"Nats-Msg-Id": e["event_id"]})
        await nc.close()

    asyncio.run(publish())
    expected_points = 10 + likes  # the original post, and one point per like
    api = httpx.Client(base_url=platform.api_url, headers={"Authorization": f"Bearer {TOKEN}"})
    deadline = time.monotonic() + 45
    points = None
    while time.monotonic() < deadline:
        r = api.get("/v1/leaderboards/all-time", params={"limit": 50})
        points = {i["ambassador_id"]: i["points"] for i in r.json()["items"]}.get("fz-amb")
        if points == expected_points:
            break
        time.sleep(0.3)
    assert points == expected_points, "valid events were lost among the junk"

    async def dead_letters() -> list[dict[str, Any]]:
        nc = await nats.connect(str(platform.nats_url))
        js = nc.jetstream(timeout=10)
        out = []
        for seq in range(1, (await js.stream_info(DLQ.name)).state.messages + 1):
            out.append(orjson.loads((await js.get_msg(DLQ.name, seq)).data or b"{}"))
        await nc.close()
        return out

    by_id: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(by_id) < len(junk):
        by_id = {d["original_msg_id"]: d for d in asyncio.run(dead_letters())}
        time.sleep(0.3)
    missing = [(i, junk[i][1][:120]) for i in range(len(junk)) if f"fz-junk-{i}" not in by_id]
    assert not missing, f"junk neither dead-lettered nor explained: {missing[:5]}"
    valid_ids = {str(e.get("event_id", "fz-amb-reg")) for e in valid}
    assert not valid_ids & set(by_id), "a valid event was refused"
    for d in by_id.values():
        assert d["reason_code"] and len(d["reason"]) > 5, d
        assert d["payload"] is not None or d["payload_base64"] is not None  # original kept
    _all_alive(platform)


# -- HTTP ------------------------------------------------------------------------------------


def _writing_routes(api: httpx.Client) -> list[tuple[str, str]]:
    spec = api.get("/openapi.json").json()
    routes = []
    for path, ops in spec["paths"].items():
        for method in ("post", "put", "patch"):
            if method in ops:
                # A real network name, so webhooks reach their signature check, not a 404.
                concrete = re.sub(r"\{network\}", "linkedin", path)
                concrete = re.sub(r"\{[^}]+\}", "fz-1", concrete)
                routes.append((method.upper(), concrete))
    return sorted(routes)


BODY_TYPES = [
    "application/json",
    "application/x-ndjson",
    "text/plain",
    "application/json; charset=latin-1",
]


def _bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        junk_bytes,
        json_values.map(dumps),
        st.lists(junk_bytes.map(lambda b: b.replace(b"\n", b" ")), min_size=1, max_size=5).map(
            b"\n".join
        ),  # NDJSON of junk lines
    )


def test_http_junk_gets_an_explained_4xx_and_never_a_5xx(platform: Platform) -> None:
    api = httpx.Client(
        base_url=platform.api_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    routes = _writing_routes(api)
    assert ("POST", "/v1/events") in routes
    seen: dict[tuple[str, str], set[int]] = {}

    @FUZZ
    @given(route=st.sampled_from(routes), body=_bodies(), ctype=st.sampled_from(BODY_TYPES))
    def probe(route: tuple[str, str], body: bytes, ctype: str) -> None:
        method, path = route
        r = api.request(method, path, content=body, headers={"content-type": ctype})
        seen.setdefault(route, set()).add(r.status_code)
        assert r.status_code < 500, f"{method} {path} -> {r.status_code}: {r.text[:300]}"
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/problem+json"), r.text[:200]
            problem = r.json()
            assert problem["status"] == r.status_code and problem["detail"], problem
            # A validation refusal names the field(s) at fault.
            for error in problem.get("errors", []):
                assert "field" in error and error.get("message"), problem

    probe()
    print({f"{m} {p}": sorted(codes) for (m, p), codes in seen.items()})
    _all_alive(platform)
    assert api.get("/v1/health").status_code == 200
    # /v1/events refused the junk with the item's field named.
    r = api.post("/v1/events", json=[{"type": "like", "event_id": "x"}])
    assert r.status_code == 422
    fields = {e["field"] for item in r.json()["results"] for e in item["errors"]}
    assert {"network", "post_id", "actor", "occurred_at"} <= fields
    assert 202 in seen[("POST", "/v1/events")] or 422 in seen[("POST", "/v1/events")]


def test_http_batches_mixing_junk_and_valid_events_lose_nothing_valid(platform: Platform) -> None:
    api = httpx.Client(
        base_url=platform.api_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    setup = [
        {"type": "ambassador", "ambassador_id": "fz-http", "display_name": "Fuzz HTTP",
         "team": "QA", "handles": {"linkedin": "fz-http-author"}, "consent": True},
        {"type": "post", "event_id": "fz-http-post", "network": "linkedin", "post_id": "fz-hp",
         "author": "fz-http-author", "kind": "original", "occurred_at": RECENT,
         "text": "Belle journée portes ouvertes à Nantes, merci à tous ! #collaborateur"},
    ]  # fmt: skip
    assert api.post("/v1/events", json=setup).status_code == 202
    likes = [0]

    @FUZZ
    @given(junk=st.lists(broken_event(), min_size=1, max_size=6), valid=st.integers(0, 4))
    def probe(junk: list[dict[str, Any]], valid: int) -> None:
        items: list[dict[str, Any]] = list(junk)
        for _ in range(valid):
            likes[0] += 1
            items.append(
                {"type": "like", "event_id": f"fz-http-like-{likes[0]}", "network": "linkedin",
                 "post_id": "fz-hp", "actor": f"fz-http-fan-{likes[0]}", "occurred_at": RECENT}
            )  # fmt: skip
        r = api.post(
            "/v1/events", content=dumps(items), headers={"content-type": "application/json"}
        )
        body = r.json()
        results = body["results"]
        assert r.status_code == (202 if any(_schema_ok(i) for i in items) else 422), body
        for item, result in zip(items, results, strict=True):
            if _schema_ok(item):
                assert result["status"] in ("accepted", "duplicate"), result
            else:
                assert result["status"] == "rejected" and result["errors"], result
                assert all(e["field"] and e["message"] for e in result["errors"]), result

    probe()
    expected = 10 + likes[0]
    deadline = time.monotonic() + 45
    points = None
    while time.monotonic() < deadline:
        items = api.get("/v1/leaderboards/all-time", params={"limit": 50}).json()["items"]
        points = {i["ambassador_id"]: i["points"] for i in items}.get("fz-http")
        if points == expected:
            break
        time.sleep(0.3)
    assert points == expected, "valid events sent beside junk over HTTP were lost"
    _all_alive(platform)


def _schema_ok(item: Any) -> bool:
    """What the HTTP door accepts: contract v1 (the time window is ingest's, on the bus)."""
    try:
        parse_ingest_event(item)
    except ValidationError:
        return False
    return True

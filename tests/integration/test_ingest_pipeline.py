"""The ingest pipeline on a real nats-server and a real Valkey: natural-key dedupe, parking
(bounded, TTL, replay), consent, precise dead letters, erasure."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import TimeoutError as NatsTimeout
from redis.asyncio import Redis

from portevoix.contracts.readmodels import (
    AMBASSADOR_INDEX,
    VAULT_KEY,
    ambassador_key,
    erasure_key,
    handle_key,
    parked_key,
    team_key,
)
from portevoix.contracts.sealed import is_sealed
from portevoix.runtime.delivery import BatchProcessor
from portevoix.runtime.publisher import EventPublisher, Outgoing
from portevoix.runtime.streams import (
    DLQ,
    EVENTS,
    RAW,
    RAW_SUBJECT,
    durable_consumer,
    ensure_streams,
)
from portevoix.runtime.vault import Vault
from portevoix_ingest.directory import AmbassadorDirectory
from portevoix_ingest.pipeline import ERASURE_SUBJECT, IngestPipeline
from portevoix_ingest.settings import IngestSettings

pytestmark = pytest.mark.integration


def amb(aid: str, handles: dict[str, str], consent: bool = True, team: str = "Ventes") -> dict:
    return {"type": "ambassador", "ambassador_id": aid, "display_name": f"Name {aid}",
            "team": team, "handles": handles, "consent": consent}  # fmt: skip


def post(eid: str, pid: str, author: str, text: str = "Bonjour à toutes et à tous, belle "
         "journée à Lyon ! #fierté", at: str = "2026-11-20T10:00:00+02:00",
         network: str = "linkedin") -> dict:  # fmt: skip
    return {"type": "post", "event_id": eid, "network": network, "post_id": pid,
            "author": author, "text": text, "kind": "original", "occurred_at": at}  # fmt: skip


def act(kind: str, eid: str, pid: str, actor: str, **extra: Any) -> dict:
    return {"type": kind, "event_id": eid, "network": "linkedin", "post_id": pid,
            "actor": actor, "occurred_at": "2026-11-20T11:00:00Z", **extra}  # fmt: skip


class Harness:
    """Ingest as the service runs it (pull consumer → BatchProcessor → IngestPipeline)."""

    def __init__(
        self, nc: NatsClient, redis: Redis, vault: Vault | None = None, **overrides: Any
    ) -> None:
        self.nc, self.redis = nc, redis
        self.js = nc.jetstream()
        self.settings = IngestSettings(**overrides)
        self.pub = EventPublisher(self.js)
        self.directory = AmbassadorDirectory.from_settings(redis, self.settings)
        self.pipeline = IngestPipeline(self.directory, self.pub, self.settings, vault)
        self.proc = BatchProcessor(
            service="ingest", consumer="ingest", handler=self.pipeline.handle,
            publisher=self.pub, max_deliver=3,
        )  # fmt: skip
        self._sub: Any = None
        self._n = 0

    async def start(self) -> Harness:
        await ensure_streams(self.js)
        self._sub = await self.js.pull_subscribe(
            "pv.raw.>", durable="ingest", stream=RAW.name,
            config=durable_consumer("ingest", filter_subjects=["pv.raw.>"], max_deliver=3,
                                    ack_wait_s=30),
        )  # fmt: skip
        return self

    async def send(self, *events: dict | bytes, subject: str = RAW_SUBJECT) -> None:
        out = []
        for e in events:
            self._n += 1
            data = e if isinstance(e, bytes) else orjson.dumps(e)
            msg_id = e.get("event_id") or e.get("request_id") if isinstance(e, dict) else None
            out.append(Outgoing(subject, str(msg_id or f"raw-{self._n}"), data))
        await self.pub.publish_many(out)

    async def drain(self) -> None:
        """Process until the consumer has acknowledged everything the stream holds now (its
        pending count alone can read 0 before a message just stored is counted: seen once on a
        loaded machine)."""
        last = (await self.js.stream_info(RAW.name)).state.last_seq
        while True:
            info = await self.js.consumer_info(RAW.name, "ingest")
            floor = info.ack_floor.stream_seq if info.ack_floor else 0
            if floor >= last and not info.num_pending and not info.num_ack_pending:
                return
            with contextlib.suppress(NatsTimeout, TimeoutError):
                await self.proc(await self._sub.fetch(500, timeout=0.2))

    async def stop(self) -> None:
        await self._sub.unsubscribe()

    async def _stream(self, name: str) -> list[dict]:
        last = (await self.js.stream_info(name)).state.last_seq
        out = []
        for seq in range(1, last + 1):
            with contextlib.suppress(Exception):
                out.append(orjson.loads((await self.js.get_msg(name, seq)).data))
        return out

    async def events(self, kind: str | None = None) -> list[dict]:
        return [e for e in await self._stream(EVENTS.name) if kind is None or e["type"] == kind]

    async def dead_letters(self) -> list[dict]:
        return await self._stream(DLQ.name)


@pytest.fixture
async def ingest(nc: NatsClient, redis: Redis) -> AsyncIterator[Harness]:
    harness = await Harness(nc, redis, parked_max_per_handle=2).start()
    yield harness
    await harness.stop()


async def test_same_fact_under_another_event_id_yields_one_domain_event(ingest: Harness) -> None:
    await ingest.send(amb("alice", {"linkedin": "alice-m"}), post("e1", "p1", "alice-m"))
    await ingest.send(
        act("like", "l1", "p1", "fan1"),
        act("like", "l1-bis", "p1", "@FAN1"),  # same fact, another producer's id and spelling
        act("share", "s1", "p1", "fan1"),  # another fact by the same actor
        act("comment", "c1", "p1", "fan1", text="Bravo"),
        act("comment", "c2", "p1", "fan1", text="Bravo"),  # comments: only event_id dedupes
        post("e1-webhook", "p1", "alice-m"),  # same post from a webhook, other id
    )
    await ingest.drain()
    engagements = await ingest.events("engagement.received")
    assert sorted(e["event_id"] for e in engagements) == ["c1", "c2", "l1", "s1"]
    assert [p["event_id"] for p in await ingest.events("post.received")] == ["e1"]
    # A redelivery of the first reporter (after JetStream's window) still passes dedupe: the
    # natural key remembers its id; scoring's seen-set absorbs the repeat.
    await ingest.js.publish(RAW_SUBJECT, orjson.dumps(act("like", "l1", "p1", "fan1")),
                            headers={"Nats-Msg-Id": "again-l1"})  # fmt: skip
    await ingest.drain()
    assert await ingest.dead_letters() == []
    assert len(await ingest.events("engagement.received")) == 4
    ttl = await ingest.redis.ttl((await ingest.redis.keys("pv:{nk}:*"))[0])
    assert 0 < ttl <= ingest.settings.natural_key_ttl_s


async def test_timestamps_become_utc_and_posts_are_normalised(ingest: Harness) -> None:
    await ingest.send(
        amb("bob", {"linkedin": "bob"}),
        post("e2", "p2", "BOB", text="Visitez example.com/offres\r\n#Recrutement @Alice\u200b "
             "nous recrutons des ingénieurs à Nantes"),
    )  # fmt: skip
    await ingest.drain()
    (p,) = await ingest.events("post.received")
    assert p["occurred_at"] == "2026-11-20T08:00:00Z"
    assert p["text"].startswith("Visitez example.com/offres\n#Recrutement @Alice nous")
    assert (p["hashtags"], p["mentions"], p["links"]) == (
        ["recrutement"],
        ["alice"],
        ["example.com/offres"],
    )
    assert p["lang"] == "fr" and p["author"] == "bob" and p["ambassador_id"] == "bob"


async def test_unknown_handle_is_parked_bounded_and_replayed_on_registration(
    ingest: Harness,
) -> None:
    await ingest.send(post("z1", "pz1", "zed"), post("z2", "pz2", "zed"), post("z3", "pz3", "zed"))
    await ingest.drain()
    assert await ingest.events("post.received") == []
    assert await ingest.directory.parked_stats() == (1, 2)  # bound: 2 per handle
    assert 0 < await ingest.redis.ttl(parked_key("linkedin", "zed")) <= ingest.settings.parked_ttl_s
    (letter,) = await ingest.dead_letters()
    assert letter["reason_code"] == "parked_limit"
    assert "author" in letter["reason"] and "'zed'" in letter["reason"]
    assert letter["original_msg_id"] == "z3"

    await ingest.send(amb("zed", {"linkedin": "zed"}))
    await ingest.drain()
    replayed = sorted(p["event_id"] for p in await ingest.events("post.received"))
    assert replayed == ["z1", "z2"]
    assert not await ingest.redis.exists(parked_key("linkedin", "zed"))
    assert await ingest.directory.parked_stats() == (0, 0)


async def test_activity_of_a_non_consenting_ambassador_is_neither_published_nor_kept(
    ingest: Harness,
) -> None:
    await ingest.send(
        amb("dave", {"linkedin": "dave"}, consent=False), amb("eve", {"linkedin": "eve"})
    )
    await ingest.send(post("d1", "pd1", "dave"), post("v1", "pv1", "eve"),
                      act("like", "dl1", "pv1", "dave"), act("like", "xl1", "pv1", "stranger"))  # fmt: skip
    await ingest.drain()
    assert [p["event_id"] for p in await ingest.events("post.received")] == ["v1"]
    engagements = await ingest.events("engagement.received")
    assert [(e["event_id"], e["actor_ambassador_id"]) for e in engagements] == [("xl1", None)]
    assert not await ingest.redis.keys("pv:parked:*")  # withheld, not parked


async def test_rejections_name_field_rule_and_value(ingest: Harness) -> None:
    no_actor = act("like", "bad1", "p", "x")
    del no_actor["actor"]
    bad_kind = post("bad2", "p", "x")
    bad_kind["kind"] = "story"
    future = post("bad3", "p", "x", at="2099-01-01T00:00:00Z")
    old = post("bad4", "p", "x", at="2001-01-01T00:00:00Z")
    naive = post("bad5", "p", "x", at="2026-11-20T10:00:00")
    await ingest.send(no_actor, bad_kind, future, old, naive, b"{nope")
    await ingest.send(amb("gil", {"linkedin": "gil"}), amb("imposter", {"linkedin": "GIL"}))
    await ingest.drain()
    by_id = {d["original_msg_id"]: d for d in await ingest.dead_letters()}
    assert by_id["bad1"]["reason_code"] == "invalid_event"
    assert "actor: Field required [rule missing]" in by_id["bad1"]["reason"]
    assert "kind:" in by_id["bad2"]["reason"] and "'story'" in by_id["bad2"]["reason"]
    assert by_id["bad2"]["detail"]["errors"][0]["rule"] == "literal_error"
    assert by_id["bad3"]["reason_code"] == "future_timestamp"
    assert "2099-01-01T00:00:00Z" in by_id["bad3"]["reason"]
    assert by_id["bad4"]["reason_code"] == "too_old"
    assert "time zone" in by_id["bad5"]["reason"]
    assert by_id["raw-6"]["reason_code"] == "invalid_json"
    taken = [d for d in by_id.values() if d["reason_code"] == "handle_taken"]
    assert len(taken) == 1 and "handles.linkedin" in taken[0]["reason"]
    assert "'gil'" in taken[0]["reason"]
    assert await ingest.redis.get(handle_key("linkedin", "gil")) == b"gil"


async def test_erasure_removes_personal_data_and_announces_it(ingest: Harness) -> None:
    await ingest.send(amb("hana", {"linkedin": "hana", "x": "hana_x"}, team="Tech"),
                      amb("ivan", {"linkedin": "ivan"}, team="Tech"))  # fmt: skip
    await ingest.drain()
    assert await ingest.redis.sismember(team_key("Tech"), "hana")
    request = {"type": "ambassador.erasure_requested", "request_id": "erase-1",
               "ambassador_id": "hana", "requested_by": "self",
               "requested_at": "2026-11-21T10:00:00Z"}  # fmt: skip
    await ingest.send(request, subject=ERASURE_SUBJECT)
    await ingest.drain()
    assert not await ingest.redis.exists(ambassador_key("hana"))
    assert not await ingest.redis.exists(handle_key("linkedin", "hana"), handle_key("x", "hana_x"))
    assert not await ingest.redis.sismember(AMBASSADOR_INDEX, "hana")
    assert await ingest.redis.smembers(team_key("Tech")) == {b"ivan"}
    (erased,) = await ingest.events("ambassador.erased")
    assert erased["ambassador_id"] == "hana" and erased["networks"] == ["linkedin", "x"]
    assert erased["existed"] is True and erased["team"] == "Tech"
    assert "hana_x" not in orjson.dumps(erased).decode()  # no handle in the announcement
    assert (await ingest.redis.hgetall(erasure_key("erase-1")))[b"status"] == b"done"

    # Activity of the erased handles still in flight is dropped, not parked or published.
    await ingest.send(post("h1", "ph1", "hana"), act("like", "hl1", "ph1", "hana_x", network="x"))
    await ingest.drain()
    assert not await ingest.redis.keys("pv:parked:*")
    assert [e["event_id"] for e in await ingest.events("engagement.received")] == []

    # A redelivered request is harmless and reports the first run's result.
    again = await ingest.directory.erase("hana", "erase-1", datetime.now(UTC))
    assert again.existed and again.networks == ["linkedin", "x"]

    # Registering again (new consent) brings the handles back to life.
    await ingest.send(amb("hana", {"linkedin": "hana"}, team="Tech"))
    await ingest.send(post("h2", "ph2", "hana"))
    await ingest.drain()
    assert [p["event_id"] for p in await ingest.events("post.received")] == ["h2"]


async def test_personal_fields_leave_ingest_sealed_and_an_erasure_shreds_their_key(
    nc: NatsClient, redis: Redis
) -> None:
    ingest = await Harness(nc, redis, vault=Vault(redis)).start()
    try:
        await ingest.send(amb("june", {"linkedin": "june-l"}, team="RH"),
                          amb("kim", {"linkedin": "kim-l"}, team="RH"))  # fmt: skip
        text = "Fière de notre nouvel atelier à Rennes ! @kim-l #collaboratrice https://ex.fr/a"
        await ingest.send(
            post("j1", "pj1", "june-l", text=text),
            act("comment", "jc1", "pj1", "kim-l", text="Bravo June !"),  # a colleague
            act("like", "jl1", "pj1", "fan-7"),  # a stranger
        )
        await ingest.drain()
        (reg_june, _) = await ingest.events("ambassador.registered")
        assert is_sealed(reg_june["display_name"]) and is_sealed(reg_june["handles"]["linkedin"])
        assert reg_june["team"] == "RH" and reg_june["consent"] is True
        (p,) = await ingest.events("post.received")
        assert all(is_sealed(p[f]) for f in ("author", "text"))
        assert p["mentions"] and all(is_sealed(m) for m in p["mentions"])
        assert p["links"] and all(is_sealed(x) for x in p["links"])
        # What scoring and the aggregates need stays readable.
        assert p["ambassador_id"] == "june" and p["hashtags"] == ["collaboratrice"]
        assert p["lang"] == "fr" and p["kind"] == "original"
        comment, like = sorted(await ingest.events("engagement.received"),
                               key=lambda e: e["event_id"])  # fmt: skip
        assert comment["actor_ambassador_id"] == "kim" and is_sealed(comment["actor"])
        assert is_sealed(comment["text"])
        assert like["actor"] == "fan-7"  # a stranger's handle is not an ambassador's to seal
        raw_log = b"".join(orjson.dumps(e) for e in await ingest.events())
        for secret in (b"june-l", b"Rennes", b"Bravo June", b"Name june"):
            assert secret not in raw_log
        # Readers open them back.
        assert await Vault(redis).open_events([p, reg_june, comment]) == [True, True, True]
        assert p["text"] == text and reg_june["display_name"] == "Name june"

        await ingest.send({"type": "ambassador.erasure_requested", "request_id": "erase-j",
                           "ambassador_id": "june", "requested_by": "self",
                           "requested_at": "2026-11-21T10:00:00Z"},
                          subject=ERASURE_SUBJECT)  # fmt: skip
        await ingest.drain()
        assert not await redis.exists(VAULT_KEY.format(owner="june"))
        assert await redis.exists(VAULT_KEY.format(owner="kim"))
        (p_again,) = await ingest.events("post.received")
        assert await Vault(redis).open_events([p_again]) == [False]
        assert p_again["text"] == "" and p_again["ambassador_id"] == "june"
    finally:
        await ingest.stop()

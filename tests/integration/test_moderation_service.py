"""Moderation over real NATS (JetStream) and Valkey: decisions → queue, webhooks, reviews,
overturn counters, audit trail, appeals; charter hot reload across instances; shared history."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import orjson
import pytest
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis

from portevoix.contracts.events import (
    EVENT_SUBJECTS,
    AppealFiled,
    CharterPublished,
    PostReceived,
    PostReviewed,
)
from portevoix.contracts.readmodels import (
    MOD_AUDIT_ALL,
    MOD_CHARTER_ACTIVE,
    MOD_QUEUE,
    MOD_RULE_STATS,
    ambassador_key,
    decision_key,
    mod_audit_key,
    mod_post_key,
    mod_queue_by_key,
)
from portevoix.contracts.sealed import is_sealed
from portevoix.runtime.delivery import Delivery
from portevoix.runtime.publisher import EventPublisher, Outgoing
from portevoix.runtime.streams import ensure_streams
from portevoix.runtime.vault import Vault
from portevoix_moderation.charter import (
    Charter,
    CharterEngine,
    HistoryEntry,
    default_charter,
)
from portevoix_moderation.charter.loader import DEFAULT_CHARTER_PATH
from portevoix_moderation.charter.similarity import signature
from portevoix_moderation.charter.text import fold, words
from portevoix_moderation.charter_lifecycle import CharterLifecycle
from portevoix_moderation.domain.notification import verify
from portevoix_moderation.history_sync import SharedPostHistory
from portevoix_moderation.pipeline import ModerationPipeline
from portevoix_moderation.store import ModerationStore
from portevoix_moderation.webhooks import Subscriber, WebhookNotifier

pytestmark = pytest.mark.integration

HELD = "Document confidentiel, ne pas diffuser : nos résultats du troisième trimestre."
BLOCKED = "Ce client est un vrai connard, je ne le supporte plus."
CLEAN = (
    "Retour sur notre journée portes ouvertes à Nantes : merci aux 300 visiteurs ! #collaborateur"
)
SECRET = "s3cret-webhook-key"
NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)


class Receiver(BaseHTTPRequestHandler):
    calls: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.calls.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def _post(eid: str, pid: str, amb: str, text: str) -> PostReceived:
    return PostReceived(
        event_id=eid, occurred_at=NOW, producer="test", post_key=f"linkedin:{pid}",
        network="linkedin", post_id=pid, ambassador_id=amb, author=amb, text=text,
        kind="original",
    )  # fmt: skip


def _deliveries(events: list[Any]) -> list[Delivery]:
    # The handlers read only the decoded body; acks are the BatchProcessor's job (tested apart).
    return [
        Delivery(raw=None, subject="", data=b"", stream_seq=i, attempt=1, msg_id=e.event_id,  # type: ignore[arg-type]
                 body=e.model_dump(mode="json"))
        for i, e in enumerate(events)
    ]  # fmt: skip


async def test_decisions_queue_reviews_overturns_audit_and_webhooks(
    nc: NatsClient, redis: Redis, receiver: str
) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    await redis.hset(ambassador_key("alice"), "team", "Ventes")
    store = ModerationStore(redis)
    notifier = WebhookNotifier(
        [Subscriber(url=receiver, secret=SECRET, events=["post.held", "appeal.filed"])],
        base_delay_s=0.05,
    )
    notifier.start()
    pipe = ModerationPipeline(
        CharterEngine(default_charter()), store, EventPublisher(js), notifier=notifier
    )
    posts = [_post("e1", "p1", "alice", HELD), _post("e2", "p2", "bob", CLEAN),
             _post("e3", "p3", "carol", BLOCKED)]  # fmt: skip
    await pipe.handle(_deliveries(posts))
    await pipe.handle(_deliveries(posts))  # a redelivery changes nothing

    assert await redis.zrange(MOD_QUEUE, 0, -1) == [b"linkedin:p1"]
    assert await redis.zrange(mod_queue_by_key("principle", "correction"), 0, -1) == [
        b"linkedin:p1"
    ]
    assert await redis.zrange(mod_queue_by_key("team", "Ventes"), 0, -1) == [b"linkedin:p1"]
    assert await redis.zcard(mod_queue_by_key("team", "Tech")) == 0
    assert (await store.queue_state())[0] == 1
    latest = orjson.loads(await redis.get(decision_key("linkedin:p1")) or b"{}")
    assert latest["verdict"] == "review"
    rule = latest["findings"][0]["rule"]
    assert int(await redis.hget(MOD_RULE_STATS, f"fires:{rule}") or 0) == 1  # not twice
    info = await js.stream_info("PV_EVENTS")
    assert info.state.messages == 3  # decisions published once (Nats-Msg-Id dedupe)

    await notifier.drain()
    assert len(Receiver.calls) == 1
    headers, body = Receiver.calls[0]
    assert verify(SECRET, headers["X-PV-Timestamp"], body, headers["X-PV-Signature"])
    assert not verify("other-secret", headers["X-PV-Timestamp"], body, headers["X-PV-Signature"])
    payload = orjson.loads(body)
    assert payload["event"] == "post.held" and payload["post_key"] == "linkedin:p1"
    assert "correction" in payload["principles"] and payload["text"]

    approve = PostReviewed(
        event_id="r1", occurred_at=NOW, producer="test", review_id="r1",
        post_key="linkedin:p1", outcome="approved", moderator="mod-ann", note="public figures",
    )  # fmt: skip
    takedown = PostReviewed(
        event_id="r2", occurred_at=NOW, producer="test", review_id="r2",
        post_key="linkedin:p2", outcome="taken_down", moderator="mod-ann", note="off topic",
    )  # fmt: skip
    appeal = AppealFiled(
        event_id="a1", occurred_at=NOW, producer="test", appeal_id="a1",
        post_key="linkedin:p3", ambassador_id="carol", message="I was quoting a film",
    )  # fmt: skip
    await pipe.handle_human(_deliveries([approve, takedown, appeal]))
    await pipe.handle_human(_deliveries([approve, takedown, appeal]))  # redelivered

    raw_stats: dict[Any, Any] = await redis.hgetall(MOD_RULE_STATS)
    stats = {k.decode(): int(v) for k, v in raw_stats.items()}
    assert stats[f"overturns:{rule}"] == 1  # approved what the rule held
    assert stats["overturns:_missed"] == 1  # took down what no rule caught
    # The appealed blocked post waits for a moderator again; the approved one left the queue.
    assert await redis.zrange(MOD_QUEUE, 0, -1) == [b"linkedin:p3"]
    assert await redis.zcard(mod_queue_by_key("principle", "correction")) == 0
    trail = [orjson.loads(e) for e in await redis.lrange(mod_audit_key("linkedin:p1"), 0, -1)]
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("held", "moderation-engine"),
        ("approved", "mod-ann"),
    ]
    assert trail[1]["note"] == "public figures" and trail[1]["overturned"] == [rule]
    trail_all: Any = await redis.xrange(MOD_AUDIT_ALL)
    everything = [orjson.loads(f[b"e"])["action"] for _, f in trail_all]
    assert everything == ["held", "approved", "taken_down", "appealed"]
    await notifier.drain()
    assert [orjson.loads(b)["event"] for _, b in Receiver.calls] == ["post.held", "appeal.filed"]
    await notifier.stop()


async def test_failing_webhook_is_retried_then_counted_and_never_blocks() -> None:
    from portevoix_moderation.metrics import WEBHOOKS

    before = WEBHOOKS.labels("failed")._value.get()
    notifier = WebhookNotifier(
        [Subscriber(url="http://127.0.0.1:9/nowhere", secret=SECRET)], attempts=2,
        base_delay_s=0.01, timeout_s=1,
    )  # fmt: skip
    notifier.start()
    notifier.offer("post.held", {"event": "post.held", "delivery_id": "d1"})
    notifier.offer("post.reviewed", {"event": "post.reviewed"})  # not subscribed: skipped
    await notifier.drain()
    await notifier.stop()
    assert WEBHOOKS.labels("failed")._value.get() == before + 1


def _yaml(version: str) -> str:
    return DEFAULT_CHARTER_PATH.read_text().replace('version: "2026.11.1"', f'version: "{version}"')


async def test_charter_hot_reload_across_instances_and_broken_charter_refused(
    nc: NatsClient, redis: Redis
) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    pub = EventPublisher(js)
    active: dict[str, str] = {}

    def instance(name: str) -> CharterLifecycle:
        def activate(c: Charter) -> None:
            active[name] = c.version

        return CharterLifecycle(ModerationStore(redis), pub, activate, boot=default_charter())

    one, two = instance("one"), instance("two")
    await one.start(js)
    await two.start(js)
    assert active == {"one": "2026.11.1", "two": "2026.11.1"}

    def published(eid: str, yaml: str, version: str, activate: bool = True) -> Outgoing:
        ev = CharterPublished(event_id=eid, occurred_at=NOW, producer="test", version=version,
                              charter_yaml=yaml, activate=activate, published_by="admin")  # fmt: skip
        return Outgoing.of_event(EVENT_SUBJECTS["charter.published"], ev)

    await pub.publish(published("c1", _yaml("2099.1"), "2099.1"))
    for _ in range(100):
        if active == {"one": "2099.1", "two": "2099.1"}:
            break
        await asyncio.sleep(0.05)
    assert active == {"one": "2099.1", "two": "2099.1"}
    assert await redis.get(MOD_CHARTER_ACTIVE) == b"2099.1"

    broken = _yaml("2099.2").replace("principle: correction", "principle: bravado", 1)
    await pub.publish(published("c2", broken, "2099.2"))
    letters: list[Any] = []
    for _ in range(100):
        try:
            letters = [await js.get_msg("PV_DLQ", 1)]
            break
        except Exception:
            await asyncio.sleep(0.05)
    assert letters, "the broken charter was not dead-lettered"
    letter = orjson.loads(letters[0].data)
    assert letter["reason_code"] == "invalid_charter" and "bravado" in letter["reason"]
    await asyncio.sleep(0.2)
    assert (await js.stream_info("PV_DLQ")).state.messages == 1  # once, not once per instance
    assert active == {"one": "2099.1", "two": "2099.1"}  # the running charter stays
    trail_all: Any = await redis.xrange(MOD_AUDIT_ALL)
    refused = [orjson.loads(f[b"e"]) for _, f in trail_all]
    assert [e["action"] for e in refused] == ["charter_activated", "charter_refused"]

    # A stored (not activated) version changes nothing; a restarted instance finds 2099.1.
    await pub.publish(published("c3", _yaml("2099.3"), "2099.3", activate=False))
    await asyncio.sleep(0.3)
    three = instance("three")
    await three.start(js)
    assert active == {"one": "2099.1", "two": "2099.1", "three": "2099.1"}
    for lc in (one, two, three):
        await lc.stop()


async def test_history_is_shared_between_instances(redis: Redis) -> None:
    a, b = SharedPostHistory(redis, instance="a"), SharedPostHistory(redis, instance="b")
    await b.load()
    text = "Rejoignez-nous au salon de Lyon pour découvrir notre nouvelle gamme de produits bio"
    sig = signature(words(fold(text)))
    now = datetime.now(UTC)
    for i in range(4):
        a.record(HistoryEntry(f"p{i}", f"amb{i}", now - timedelta(minutes=i), sig))
    assert await a.push() == 4
    assert b.similar_authors(sig, now - timedelta(hours=1), 0.8) == set()
    assert await b.pull() == 4
    assert b.similar_authors(sig, now - timedelta(hours=1), 0.8) == {f"amb{i}" for i in range(4)}
    assert len(b.recent_by_author("amb2")) == 1
    assert await a.pull() == 0  # its own entries are not recorded twice
    late = SharedPostHistory(redis, instance="c")
    assert await late.load() == 4  # a new instance starts with the shared window


async def test_sealed_posts_are_judged_on_their_text_and_stay_sealed_at_rest(
    nc: NatsClient, redis: Redis, receiver: str
) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    vault = Vault(redis)
    notifier = WebhookNotifier(
        [Subscriber(url=receiver, secret=SECRET, events=["post.held"])], base_delay_s=0.05
    )
    notifier.start()
    pipe = ModerationPipeline(
        CharterEngine(default_charter()), ModerationStore(redis), EventPublisher(js),
        notifier=notifier, vault=Vault(redis),
    )  # fmt: skip
    bodies = [p.model_dump(mode="json") for p in (_post("s1", "q1", "dora", HELD),
                                                   _post("s2", "q2", "erin", BLOCKED))]  # fmt: skip
    await vault.seal_events(bodies)
    assert all(is_sealed(b["text"]) for b in bodies)
    sealed_in_log = bodies[1]["text"]
    deliveries = [
        Delivery(raw=None, subject="", data=b"", stream_seq=i, attempt=1, msg_id=b["event_id"],  # type: ignore[arg-type]
                 body=b)
        for i, b in enumerate(bodies)
    ]  # fmt: skip
    await pipe.handle(deliveries)
    # Judged on the opened text …
    assert (
        orjson.loads(await redis.get(decision_key("linkedin:q1")) or b"{}")["verdict"] == "review"
    )
    assert orjson.loads(await redis.get(decision_key("linkedin:q2")) or b"{}")["verdict"] == "block"
    # … stored sealed (an erasure leaves nothing readable) …
    rec = orjson.loads(await redis.hget(mod_post_key("linkedin:q1"), "s") or b"{}")
    assert is_sealed(rec["text"]) and "confidentiel" not in rec["text"]
    # … and quoted in clear only in the moderators' notification.
    await notifier.drain()
    assert "confidentiel" in orjson.loads(Receiver.calls[0][1])["text"]

    # The author of a post still in the log is erased: a redelivery is acknowledged, not judged.
    await vault.shred("erin")
    again = [_post("s3", "q3", "erin", BLOCKED).model_dump(mode="json")]
    again[0]["text"] = sealed_in_log
    late = Delivery(raw=None, subject="", data=b"", stream_seq=9, attempt=1, msg_id="s3",  # type: ignore[arg-type]
                    body=again[0])  # fmt: skip
    await ModerationPipeline(
        CharterEngine(default_charter()), ModerationStore(redis), EventPublisher(js),
        vault=Vault(redis),
    ).handle([late])  # fmt: skip
    assert late.outcome == "ok"
    assert await redis.get(decision_key("linkedin:q3")) is None
    await notifier.stop()

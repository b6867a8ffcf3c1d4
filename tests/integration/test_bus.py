"""The backbone on a real nats-server: streams, dedupe, acks, delayed retry, dead letters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import orjson
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import BadSubjectError
from nats.js.api import StorageType

from portevoix.runtime.delivery import BatchProcessor, Delivery, Ticket, ack_all, ack_fields
from portevoix.runtime.publisher import EventPublisher, Outgoing, PublishError, read_headers
from portevoix.runtime.streams import DLQ, EVENTS, RAW, STREAMS, durable_consumer, ensure_streams
from portevoix.runtime.worker import PullBatches, PullError, ensure_consumer, pull_loop

pytestmark = pytest.mark.integration


async def test_streams_are_declared_once_with_file_storage_and_retention(nc: NatsClient) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    await ensure_streams(js)  # idempotent: converges, does not fail
    for spec in STREAMS:
        info = await js.stream_info(spec.name)
        assert info.config.storage == StorageType.FILE
        assert info.config.max_age == spec.max_age_s
        assert info.config.duplicate_window == spec.duplicate_window_s
        assert info.config.subjects == list(spec.subjects)


async def test_publisher_uses_event_id_as_msg_id_and_reports_duplicates(nc: NatsClient) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    pub = EventPublisher(js)
    msgs = [Outgoing("pv.raw.v1", f"e{i}", b'{"i":%d}' % i) for i in range(50)]
    first = await pub.publish_many(msgs)
    again = await pub.publish_many(msgs[:10])
    assert (first.published, first.duplicates) == (50, 0)
    assert (again.published, again.duplicates) == (0, 10)
    assert (await js.stream_info(RAW.name)).state.messages == 50
    raw = await js.get_msg(RAW.name, 1)
    assert raw.headers is not None and raw.headers["Nats-Msg-Id"] == "e0"


async def _consume(
    nc: NatsClient, processor: BatchProcessor, durable: str, until: float, max_deliver: int
) -> None:
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        "pv.raw.v1",
        durable=durable,
        stream=RAW.name,
        config=durable_consumer(
            durable, filter_subjects=["pv.raw.v1"], max_deliver=max_deliver, ack_wait_s=30
        ),
    )
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        try:
            msgs = await sub.fetch(100, timeout=0.2)
        except TimeoutError:
            continue
        await processor(msgs)
    await sub.unsubscribe()


async def _dead_letters(nc: NatsClient) -> list[dict[str, object]]:
    js = nc.jetstream()
    n = (await js.stream_info(DLQ.name)).state.messages
    return [orjson.loads((await js.get_msg(DLQ.name, seq)).data) for seq in range(1, n + 1)]


async def test_malformed_and_rejected_messages_are_dead_lettered_and_flow_continues(
    nc: NatsClient,
) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    pub = EventPublisher(js)
    handled: list[int] = []

    async def handler(batch: Sequence[Delivery]) -> None:
        for d in batch:
            if d.body.get("bad"):
                d.reject("invalid_event", "field bad: must be absent", field="bad")
            else:
                handled.append(d.body["i"])

    await pub.publish_many(
        [Outgoing("pv.raw.v1", "a", b'{"i":1}'), Outgoing("pv.raw.v1", "b", b"{not json"),
         Outgoing("pv.raw.v1", "c", b"\xff\xfe"), Outgoing("pv.raw.v1", "d", b'{"bad":1}'),
         Outgoing("pv.raw.v1", "e", b'{"i":2}')]
    )  # fmt: skip
    proc = BatchProcessor(service="t", consumer="t1", handler=handler, publisher=pub, max_deliver=3)
    await _consume(nc, proc, "t1", 1.5, 3)
    assert handled == [1, 2]
    letters = await _dead_letters(nc)
    assert [(x["original_msg_id"], x["reason_code"]) for x in letters] == [
        ("b", "invalid_json"), ("c", "invalid_json"), ("d", "invalid_event"),
    ]  # fmt: skip
    assert letters[0]["payload"] == "{not json"
    assert letters[1]["payload"] is None and letters[1]["payload_base64"] == "//4="
    assert letters[2]["detail"] == {"field": "bad"} and "must be absent" in str(
        letters[2]["reason"]
    )
    info = await js.consumer_info(RAW.name, "t1")
    assert info.num_ack_pending == 0 and info.num_pending == 0  # everything acked


async def test_transient_failures_are_retried_with_delay_then_dead_lettered(
    nc: NatsClient,
) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    pub = EventPublisher(js)
    attempts: list[tuple[str, int, float]] = []

    async def flaky(batch: Sequence[Delivery]) -> None:
        for d in batch:
            attempts.append((d.msg_id or "", d.attempt, time.monotonic()))
            if d.msg_id == "always" or (d.msg_id == "once" and d.attempt == 1):
                raise ConnectionError("redis down")

    # Same batch: the poison one must not drag the other into its retries.
    await pub.publish_many(
        [Outgoing("pv.raw.v1", "once", b"{}"), Outgoing("pv.raw.v1", "always", b"{}")]
    )
    proc = BatchProcessor(
        service="t", consumer="t2", handler=flaky, publisher=pub, max_deliver=3,
        retry_base_delay_s=0.3,
    )  # fmt: skip
    await _consume(nc, proc, "t2", 3.5, 3)
    once = [a for a in attempts if a[0] == "once"]
    always = [a for a in attempts if a[0] == "always"]
    # "once" fails on delivery 1 only; a failing batch is retried one by one, so the poison
    # message beside it never costs it more than its own redelivery.
    assert sorted({a[1] for a in once}) == [1, 2]
    firsts = {}
    for _, attempt, at in always:
        firsts.setdefault(attempt, at)
    assert sorted(firsts) == [1, 2, 3]  # bounded by max_deliver
    # nak(delay): the second delivery waits the back-off, the third waits twice as long.
    assert firsts[2] - firsts[1] >= 0.25
    assert firsts[3] - firsts[2] >= 0.5
    letters = await _dead_letters(nc)
    assert len(letters) == 1
    assert letters[0]["reason_code"] == "max_deliver_exceeded"
    assert "redis down" in str(letters[0]["reason"]) and letters[0]["attempts"] == 3
    await asyncio.sleep(0.1)
    info = await js.consumer_info(RAW.name, "t2")
    assert info.num_ack_pending == 0


async def test_publisher_headers_concurrent_batches_and_refusals(nc: NatsClient) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    pub = EventPublisher(js, timeout_s=2)
    # Concurrent batches share one reply inbox: each gets its own PubAcks, in order.
    batches = [
        [
            Outgoing("pv.raw.v1", f"c{b}-{i}", b"{}", {"Pv-Event-Type": "t\r\nX: y"})
            for i in range(40)
        ]
        for b in range(5)
    ]
    results = await asyncio.gather(*(pub.publish_many(b) for b in batches))
    assert [(r.published, r.duplicates) for r in results] == [(40, 0)] * 5
    mixed = await pub.publish_many([batches[0][0], Outgoing("pv.raw.v1", "new", b"{}")])
    assert mixed.duplicate_flags == [True, False]
    stored = await js.get_msg(RAW.name, 1)
    assert stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] == "c0-0"
    assert stored.headers["content-type"] == "application/json"
    assert stored.headers["Pv-Event-Type"] == "t  X: y"  # no header injection
    # No stream for a subject: the batch fails as a whole and says why.
    with pytest.raises(PublishError, match="1 of 2 publishes failed"):
        await pub.publish_many([Outgoing("pv.raw.v1", "ok", b"{}"), Outgoing("nowhere", "x", b"")])
    with pytest.raises(BadSubjectError):
        await pub.publish_many([Outgoing("pv.raw v1", "x", b"{}")])


def testack_fields_read_both_reply_subject_layouts() -> None:
    v1 = Msg(_client=None, subject="s", reply="$JS.ACK.S.C.3.42.7.1700000000123456789.0")  # type: ignore[arg-type]
    v2 = Msg(
        _client=None,  # type: ignore[arg-type]
        subject="s",
        reply="$JS.ACK.dom.ACCHASH.S.C.2.43.8.1700000000500000000.5.rnd",
    )
    assert ack_fields(v1) == (42, 3, 1700000000.1234567)
    assert ack_fields(v2) == (43, 2, 1700000000.5)
    for m in (v1, v2):  # the same as nats-py's own reading
        md = m.metadata
        seq, attempt, at = ack_fields(m)
        assert (seq, attempt) == (md.sequence.stream, md.num_delivered)
        assert md.timestamp is not None and abs(at - md.timestamp.timestamp()) < 1e-6


async def _pulls(nc: NatsClient, durable: str) -> PullBatches:
    js = nc.jetstream()
    await ensure_streams(js)
    await ensure_consumer(
        js, RAW.name, durable_consumer(durable, filter_subjects=["pv.raw.v1"], max_deliver=3,
                                       ack_wait_s=30),
    )  # fmt: skip
    pulls = PullBatches(nc, RAW.name, durable)
    await pulls.start()
    return pulls


async def test_pull_batches_full_partial_idle_and_prefetched(nc: NatsClient) -> None:
    await ensure_streams(nc.jetstream())
    pub = EventPublisher(nc.jetstream())
    await pub.publish_many([Outgoing("pv.raw.v1", f"m{i}", b"{}") for i in range(25)])
    pulls = await _pulls(nc, "pb")
    got: list[int] = []
    started = time.monotonic()
    for expected in (10, 10, 5):  # full, full (prefetched while the first was handled), partial
        batch = await pulls.fetch(10, 5.0)
        assert len(batch) == expected
        got += [ack_fields(m)[0] for m in batch]
        await ack_all(batch)
    assert got == list(range(1, 26))  # in order, none twice
    assert time.monotonic() - started < 2  # a partial batch does not wait for the poll
    # Idle: the long poll ends as soon as something arrives, not when it expires.
    later = asyncio.create_task(pulls.fetch(10, 5.0))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await pub.publish(Outgoing("pv.raw.v1", "late", b"{}"))
    batch = await later
    assert len(batch) == 1 and time.monotonic() - started < 1.5
    await ack_all(batch)
    with pytest.raises(TimeoutError):
        await pulls.fetch(10, 0.3)
    await pulls.stop()
    await asyncio.sleep(0.2)
    info = await nc.jetstream().consumer_info(RAW.name, "pb")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_pull_batches_stop_hands_buffered_messages_back(nc: NatsClient) -> None:
    await ensure_streams(nc.jetstream())
    pub = EventPublisher(nc.jetstream())
    await pub.publish_many([Outgoing("pv.raw.v1", f"b{i}", b"{}") for i in range(8)])
    pulls = await _pulls(nc, "pc")
    first = await pulls.fetch(4, 2.0)  # full: the next four are prefetched into the buffer
    await ack_all(first)
    await pulls.stop()  # the prefetched four are nak'ed, not left to the ack wait (30 s)
    again = await _pulls(nc, "pc")
    rest = await again.fetch(10, 2.0)
    assert sorted(ack_fields(m)[0] for m in rest) == [5, 6, 7, 8]
    assert all(ack_fields(m)[1] == 2 for m in rest)  # redelivered at once
    await ack_all(rest)
    await again.stop()


async def test_pull_batches_report_a_missing_consumer(nc: NatsClient) -> None:
    await ensure_streams(nc.jetstream())
    pulls = PullBatches(nc, RAW.name, "nobody")
    await pulls.start()
    with pytest.raises((PullError, TimeoutError)):
        await pulls.fetch(10, 0.5)
    await pulls.stop()


async def test_publish_later_is_confirmed_before_the_ack_and_a_refusal_retries(
    nc: NatsClient,
) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    pub = EventPublisher(js, timeout_s=2)
    await pub.publish_many([Outgoing("pv.raw.v1", f"l{i}", b'{"i":%d}' % i) for i in range(4)])

    async def handler(batch: Sequence[Delivery]) -> None:
        out = [Outgoing("pv.evt.engagement.received", f"out-{d.msg_id}", d.data) for d in batch]
        # l3's output goes where no stream listens: refused, so l3 must not be acked.
        out += [Outgoing("nowhere.at.all", "lost", b"{}") for d in batch if d.msg_id == "l3"]
        await pub.publish_later(out)

    proc = BatchProcessor(service="t", consumer="t3", handler=handler, publisher=pub, max_deliver=2,
                          retry_base_delay_s=0.1)  # fmt: skip
    await _consume(nc, proc, "t3", 2.0, 2)
    events = (await js.stream_info("PV_EVENTS")).state.messages
    assert events == 4  # every output once, though the batch was re-run one by one
    letters = await _dead_letters(nc)
    assert [(x["original_msg_id"], x["reason_code"]) for x in letters] == [
        ("l3", "max_deliver_exceeded")
    ]
    assert "publishes failed" in str(letters[0]["reason"])
    info = await js.consumer_info(RAW.name, "t3")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_pull_loop_settles_a_batch_after_the_next_one_was_handled(nc: NatsClient) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    pub = EventPublisher(js)
    await pub.publish_many([Outgoing("pv.raw.v1", f"p{i}", b"{}") for i in range(40)])
    calls: list[tuple[str, int]] = []

    async def handler(batch: Sequence[Delivery]) -> None:
        await pub.publish_later(
            [Outgoing("pv.evt.engagement.received", f"o-{d.msg_id}", b"{}") for d in batch]
        )

    proc = BatchProcessor(service="t", consumer="pl", handler=handler, publisher=pub, max_deliver=3)
    begin, finish = proc.begin, proc.finish
    settled = 0

    async def begin_logged(raws: Sequence[Msg]) -> Ticket:
        ticket = await begin(raws)
        calls.append(("begin", ticket.deliveries[0].stream_seq))
        return ticket

    async def finish_logged(ticket: Ticket) -> None:
        nonlocal settled
        assert not [d for d in ticket.deliveries if d.outcome != "ok"]
        await finish(ticket)
        calls.append(("finish", ticket.deliveries[0].stream_seq))
        settled += len(ticket.deliveries)

    proc.begin, proc.finish = begin_logged, finish_logged  # type: ignore[method-assign]
    pulls = await _pulls(nc, "pl")
    await asyncio.wait_for(
        pull_loop(pulls, proc, batch_size=5, backlog_batch_size=10, idle_wait_s=0.5,
                  stopping=lambda: settled >= 40, log=logging.getLogger("t"), consumer="pl"),
        timeout=20,
    )  # fmt: skip
    await pulls.stop()
    assert settled == 40
    assert (await js.stream_info("PV_EVENTS")).state.messages == 40
    # Backlogged: batch k is settled only after batch k+1 was handled...
    assert calls[:3] == [("begin", 1), ("begin", 6), ("finish", 1)]
    # ...and batches grow while the backlog lasts (5, 10, 10, 10, then the last 5).
    assert [seq for what, seq in calls if what == "begin"] == [1, 6, 16, 26, 36]
    assert calls[-1] == ("finish", 36)  # the last one is settled before waiting for more
    await asyncio.sleep(0.2)
    info = await js.consumer_info(RAW.name, "pl")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_fast_header_reader_agrees_with_nats_py(nc: NatsClient) -> None:
    blocks = [
        b"NATS/1.0\r\nNats-Msg-Id: e1\r\ncontent-type: application/json\r\n\r\n",
        b"NATS/1.0\r\nPv-Reason:  spaced value \r\nX-Name: caf\xc3\xa9\r\n\r\n",
        b"NATS/1.0 404 No Messages\r\n\r\n",
        b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 3\r\n\r\n",
        b"NATS/1.0\r\nbad key: dropped\r\nok: kept\r\n\r\n",
        b"NATS/1.0\r\nno-colon-line\r\nok: kept\r\n\r\n",
        b"NATS/1.0\r\nNats-Msg-Id:  x y \r\ncontent-type: application/json\r\n\r\n",
        b"NATS/1.0\r\nNats-Msg-Id: a\r\nNats-Msg-Id: b\r\n\r\n",
        b"NATS/1.0\r\nNats-Msg-Id: caf\xc3\xa9\r\nk: v\r\n\r\n",
        b"NATS/1.0\r\nNats-Msg-Id: \r\n\r\n",
    ]
    for raw in blocks:
        assert await read_headers(nc, raw) == await nc._process_headers(raw), raw
    assert await read_headers(nc, None) is None


async def test_existing_durable_is_brought_to_the_new_subjects_keeping_its_position(
    nc: NatsClient,
) -> None:
    """An upgrade that subscribes to a new event type (scoring and `ambassador.erased`) must not
    keep an old durable that never delivers it, nor restart it from the beginning."""
    js = nc.jetstream()
    await ensure_streams(js)
    old = durable_consumer("upgr", filter_subjects=["pv.evt.a"], max_deliver=3, ack_wait_s=30)
    await ensure_consumer(js, EVENTS.name, old)
    pub = EventPublisher(js)
    await pub.publish_many([Outgoing("pv.evt.a", "a1", b"{}"), Outgoing("pv.evt.b", "b1", b"{}")])
    sub = await js.pull_subscribe_bind("upgr", stream=EVENTS.name)
    (first,) = await sub.fetch(1, timeout=2)
    await first.ack()
    new = durable_consumer(
        "upgr", filter_subjects=["pv.evt.a", "pv.evt.c"], max_deliver=5, ack_wait_s=10
    )
    await ensure_consumer(js, EVENTS.name, new)
    info = await js.consumer_info(EVENTS.name, "upgr")
    assert sorted(info.config.filter_subjects or []) == ["pv.evt.a", "pv.evt.c"]
    assert info.config.max_deliver == 5 and info.ack_floor.stream_seq == 1  # position kept
    await pub.publish_many([Outgoing("pv.evt.c", "c1", b"{}")])
    (nxt,) = await sub.fetch(1, timeout=2)
    assert nxt.subject == "pv.evt.c" and nxt.data == b"{}"
    await ensure_consumer(js, EVENTS.name, new)  # unchanged: no update needed, still fine

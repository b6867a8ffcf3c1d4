"""Rebuild every scoring projection from the JetStream log into a fresh generation, then swap.

While the service keeps serving from generation G (and its live consumer keeps writing G):
1. fill G+1 from PV_EVENTS, sequence 1 up to the last one, with an ordered consumer (no acks, no
   server-side state), through the very pipeline the service runs (`live=False`: steps into a
   generation that is not live skip the generation check);
2. keep reading as new events arrive, until the rebuild is less than a batch behind;
3. pause live writers (`pv:{sc}:pause`, with a TTL so a crashed rebuild cannot stall them): from
   now on their steps return STALE and they wait. Every event G contains now has a sequence ≤ L,
   the stream's last sequence read *after* setting the pause;
4. apply the events up to L into G+1, then swap atomically (`pv:{sc}:gen` = G+1, pause lifted);
5. live writers see STALE, follow the new generation (and its points table) and recompute their
   in-flight events there: what the rebuild already applied is a duplicate (markers), the rest
   is applied. Nothing lost, nothing counted twice. The pause lasts the final catch-up only.
6. the keys of G are deleted (unless `keep_old`).
Progress is saved after every batch (`pv:{sc}:rebuild`): an interrupted rebuild resumes where it
stopped (markers make the overlap harmless).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import nats
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from redis.asyncio import Redis

from portevoix.contracts.events import DOMAIN_EVENT, EVENT_SUBJECTS, AmbassadorErased
from portevoix.contracts.readmodels import (
    BOARD_INDEX_DONE,
    SCORING_GENERATION,
    SCORING_PAUSE,
    SCORING_REBUILD,
    TEAM_MEMBERS_DONE,
    gen_table_key,
)
from portevoix.runtime.delivery import reply_fields
from portevoix.runtime.redis import text
from portevoix.runtime.streams import EVENTS
from portevoix_scoring.domain.post_state import PostState
from portevoix_scoring.domain.scorer import AmbassadorBook, Scored, Scorer, post_of, reaction_of
from portevoix_scoring.domain.table import PointsTable
from portevoix_scoring.metrics import REBUILD_EVENTS
from portevoix_scoring.pipeline import SCORED_TYPES, ScoringPipeline
from portevoix_scoring.store import CONFLICT, STALE, BatchWrite, Guard, ScoreStore

SCORED_SUBJECTS = {
    EVENT_SUBJECTS[t]
    for t in ("ambassador.registered", "ambassador.erased", "post.received",
              "engagement.received", "post.moderated", "post.reviewed")
}  # fmt: skip
PAUSE_TTL_MS = 30_000

Progress = Callable[[int, int], None]  # (applied up to sequence, target sequence)


def stream_seq(msg: Msg) -> int:
    """The stream sequence of a JetStream message, read off its reply subject (the shared
    reader of the bus runtime); nats-py's metadata for anything unusual."""
    fields = reply_fields(msg.reply)
    return fields[0] if fields is not None else msg.metadata.sequence.stream


@dataclass
class RebuildReport:
    old_generation: str
    generation: str
    table_version: str
    events: int = 0  # scored events applied
    skipped: int = 0  # other subjects, invalid payloads
    last_seq: int = 0
    seconds: float = 0.0
    pause_ms: float = 0.0
    resumed_from: int = 0
    dropped_keys: int = 0
    conflicts: list[int] = field(default_factory=list)


class MemoryWorld:
    """Every state in memory, for the bulk of a rebuild: no Redis read per batch. The states an
    event changed are only marked; each is serialised once per flush (`flush_into`)."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.book = AmbassadorBook()
        self.posts: dict[str, PostState] = {}
        self.reactions: set[tuple[str, str, str]] = set()
        self.seen: set[str] = set()
        self._dirty_posts: set[str] = set()
        self._dirty_ambassadors: set[str] = set()
        self._dirty_pairs: set[str] = set()
        self._new_reactions: list[tuple[str, str, str]] = []

    def apply(self, event: Scored, batch: BatchWrite) -> None:
        if event.event_id in self.seen:
            return
        self.seen.add(event.event_id)
        pk = post_of(event)
        post = None
        if pk is not None:
            post = self.posts.get(pk)
            if post is None:
                post = self.posts[pk] = PostState(pk)
            self._dirty_posts.add(pk)
        reaction = reaction_of(event)
        fx = self.scorer.apply(event, post, self.book, reacted=reaction in self.reactions)
        self._dirty_ambassadors |= fx.wrote
        if fx.pairs:
            self._dirty_pairs.update(a for a, wrote in fx.pairs.items() if wrote)
        for aid in fx.erased:  # their reaction markers go (the erasure step deletes them)
            self.reactions = {r for r in self.reactions if r[2] != aid}
        if reaction is not None and fx.reaction:
            self.reactions.add(reaction)
            self._new_reactions.append(reaction)
        batch.add(0, event.event_id, (), fx)

    def flush_into(self, store: ScoreStore, batch: BatchWrite) -> None:
        """The states changed since the last flush, as the batch's writes."""
        states: list[Guard] = [Guard(store.post_key(pk), "", self.posts[pk])
                               for pk in self._dirty_posts]  # fmt: skip
        states += (Guard(store.ambassador_key(a), "", self.book.ambassador(a))
                   for a in self._dirty_ambassadors)  # fmt: skip
        states += (Guard(store.pairs_key(a), "", self.book.pairs(a)) for a in self._dirty_pairs)
        states += (Guard(store.reaction_key(*r), "", b"1") for r in self._new_reactions)
        batch.put_states(states)
        self._dirty_posts, self._dirty_ambassadors, self._dirty_pairs = set(), set(), set()
        self._new_reactions = []


class Rebuild:
    def __init__(
        self,
        redis: Redis,
        nats_url: str,
        table: PointsTable,
        tz: ZoneInfo,
        *,
        batch: int = 5000,
        keep_old: bool = False,
        flush_every: int = 100_000,
    ) -> None:
        self._r = redis
        self._nats_url = nats_url
        self.table = table
        self.tz = tz
        self.batch = batch
        self.keep_old = keep_old
        self.flush_every = flush_every

    async def run(self, progress: Progress | None = None) -> RebuildReport:
        started = time.perf_counter()
        r = self._r
        await r.set(SCORING_GENERATION, "1", nx=True)
        old = text(await r.get(SCORING_GENERATION) or b"1")
        new = str(int(old) + 1)
        state = {text(k): text(v) for k, v in (await r.hgetall(SCORING_REBUILD)).items()}
        start = 1
        resumable = (
            state.get("gen") == new
            and state.get("table") == self.table.version
            and state.get("status") == "running"
        )
        if resumable:
            start = int(state.get("seq", "0")) + 1
        else:
            await ScoreStore(r, new).drop_generation(new)  # leftovers of an abandoned rebuild
        await r.set(gen_table_key(new), self.table.dumps())
        await r.set(BOARD_INDEX_DONE.format(gen=new), "1")  # its boards index themselves
        await r.set(TEAM_MEMBERS_DONE.format(gen=new), "1")  # and its teams their members
        await r.hset(SCORING_REBUILD, mapping={"gen": new, "table": self.table.version,
                                              "status": "running", "seq": str(start - 1)})  # fmt: skip
        report = RebuildReport(old, new, self.table.version, resumed_from=start - 1)
        store = ScoreStore(r, new, live=False)
        pipeline = ScoringPipeline(Scorer(self.table, self.tz), store)

        nc = await nats.connect(self._nats_url)
        try:
            js = nc.jetstream()
            target = (await js.stream_info(EVENTS.name)).state.last_seq
            # nats-py's per-message cost dominates reading: the callback only queues what the
            # rebuild needs (the stream sequence is read off the reply subject, not through
            # `msg.metadata`, which builds a dataclass and a datetime per message).
            queue: deque[tuple[int, str, bytes]] = deque()
            arrived = asyncio.Event()

            async def on_msg(msg: Msg) -> None:
                queue.append((stream_seq(msg), msg.subject, msg.data))
                arrived.set()

            sub = await js.subscribe(
                "pv.evt.>",
                stream=EVENTS.name,
                ordered_consumer=True,
                cb=on_msg,
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start
                ),
                pending_msgs_limit=-1,
                pending_bytes_limit=-1,
            )
            pos = start - 1

            async def next_events(goal: int, limit: int) -> tuple[list[Scored], int]:
                """Up to `limit` scored events from the stream, not past sequence `goal`."""
                chunk: list[Scored] = []
                seq = pos
                while seq < goal and len(chunk) < limit:
                    if not queue:
                        arrived.clear()
                        try:
                            await asyncio.wait_for(arrived.wait(), 10.0)
                        except TimeoutError:
                            raise RuntimeError(f"stream stalled at sequence {seq}") from None
                        continue
                    seq, subject, data = queue.popleft()
                    if subject not in SCORED_SUBJECTS:
                        report.skipped += 1
                        continue
                    try:
                        event = DOMAIN_EVENT.validate_json(data)
                    except ValidationError:
                        report.skipped += 1
                        continue
                    if isinstance(event, SCORED_TYPES):
                        chunk.append(event)
                return chunk, seq

            async def saved(seq: int, goal: int) -> None:
                nonlocal pos
                pos = seq
                await r.hset(SCORING_REBUILD, "seq", str(pos))
                if progress is not None:
                    progress(pos, goal)

            async def drain_in_memory(goal: int) -> None:
                """The bulk: states in memory, effects aggregated and written unchecked every
                `flush_every` events (nobody else writes this generation yet). A flush is
                written while the next events are computed; progress is saved once it is."""
                world = MemoryWorld(Scorer(self.table, self.tz))
                run_id = secrets.token_hex(4)  # versions unique to this run's writes
                batch = store.batch(publish_badges=False)
                flushes = 0
                writing: asyncio.Task[None] | None = None

                async def write(done: BatchWrite, token: str, seq: int) -> None:
                    await done.write_unchecked(r, token)
                    await r.hset(SCORING_REBUILD, "seq", str(seq))

                async def flush(seq: int) -> None:
                    nonlocal batch, flushes, writing
                    flushes += 1
                    world.flush_into(store, batch)
                    if writing is not None:
                        await writing  # one flush in flight: writes stay in order
                    token = f"rebuild.{run_id}.{flushes}"
                    writing = asyncio.create_task(write(batch, token, seq))
                    batch = store.batch(publish_badges=False)

                try:
                    while pos < goal:
                        chunk, seq = await next_events(goal, self.batch)
                        for event in chunk:
                            world.apply(event, batch)
                            if isinstance(event, AmbassadorErased):
                                # The erasure runs after its flush's writes: it must end it
                                # (progress stays at the previous chunk's end).
                                await flush(pos)
                        report.events += len(chunk)
                        REBUILD_EVENTS.inc(len(chunk))
                        if len(batch.steps) >= self.flush_every or seq >= goal:
                            await flush(seq)
                        pos_progress(seq, goal)
                finally:
                    if writing is not None:
                        await writing

            def pos_progress(seq: int, goal: int) -> None:
                nonlocal pos
                pos = seq
                if progress is not None:
                    progress(pos, goal)

            async def drain_to(goal: int) -> None:
                """Through the service's pipeline (states read from and checked in Redis)."""
                while pos < goal:
                    chunk, seq = await next_events(goal, self.batch)
                    if chunk:
                        outcomes = await pipeline.apply(chunk)
                        bad = [o for o in outcomes if o.result in (CONFLICT, STALE)]
                        if bad:
                            raise RuntimeError(f"rebuild conflicted near sequence {seq}")
                        report.events += len(chunk)
                        REBUILD_EVENTS.inc(len(chunk))
                    await saved(seq, goal)

            if target >= start and not resumable:
                await drain_in_memory(target)
            if target > pos:
                await drain_to(target)
            # Catch up with what arrived meanwhile, until less than a batch behind.
            while True:
                live_last = (await js.stream_info(EVENTS.name)).state.last_seq
                if live_last - pos <= self.batch:
                    break
                await drain_to(live_last)
            # Pause live writers, finish, swap.
            paused = time.perf_counter()
            await r.set(SCORING_PAUSE, new, px=PAUSE_TTL_MS)
            final = (await js.stream_info(EVENTS.name)).state.last_seq
            await drain_to(final)
            if not await store.swap(old, new):
                await r.delete(SCORING_PAUSE)
                raise RuntimeError(f"generation {old} is not live any more: another rebuild won")
            report.pause_ms = (time.perf_counter() - paused) * 1000
            report.last_seq = pos
            await sub.unsubscribe()
        finally:
            await nc.close()
        await r.hset(SCORING_REBUILD, mapping={"status": "done", "seq": str(report.last_seq)})
        if not self.keep_old:
            report.dropped_keys = await ScoreStore(r, old).drop_generation(old)
        report.seconds = time.perf_counter() - started
        return report

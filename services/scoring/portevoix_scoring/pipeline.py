"""Scoring's bus adapter: domain events → the pure scorer → one atomic Redis step per event.

A batch is read in at most two pipelined round trips (post states, reaction markers, ambassador
states and dedupe markers; then the ambassador states the loaded posts point to), computed in
memory in stream order, and written with one pipeline of EVALSHA. A step refused because another
instance changed a state it read (CONFLICT), or because a rebuild swapped generations (STALE), is
recomputed from fresh states, in order, a few times before the message is handed back to
JetStream for a delayed redelivery.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from pydantic import ValidationError

from portevoix.contracts.events import (
    AmbassadorErased,
    AmbassadorRegistered,
    EngagementReceived,
    PointsTablePublished,
    PostModerated,
    PostReceived,
    PostReviewed,
    validate_domain_event,
)
from portevoix.contracts.readmodels import SCORING_PAUSE, SCORING_TABLES, gen_table_key
from portevoix.runtime.delivery import Delivery
from portevoix.runtime.metrics import observe_many
from portevoix.runtime.publisher import UNCONFIRMED, EventPublisher, Outgoing, confirm_later
from portevoix.runtime.redis import text
from portevoix_scoring.domain.ambassador_state import AmbassadorState, ColleaguePairs
from portevoix_scoring.domain.post_state import PostState
from portevoix_scoring.domain.scorer import Effects, Scored, Scorer, post_of, reaction_of
from portevoix_scoring.domain.table import load_table
from portevoix_scoring.metrics import BADGES, EVENTS_SCORED, LEADERBOARD_LAG, POINTS
from portevoix_scoring.state_cache import StateCache
from portevoix_scoring.store import (
    APPLIED,
    CONFLICT,
    DUPLICATE,
    STALE,
    BatchWrite,
    ScoreStore,
    Versioned,
)

log = logging.getLogger("portevoix.scoring")
SCORED_TYPES = (  # engagement first: most events (isinstance tries them in this order)
    EngagementReceived,
    PostReceived,
    PostModerated,
    PostReviewed,
    AmbassadorRegistered,
    AmbassadorErased,
)
BADGE_SUBJECT = "pv.evt.badge.awarded"
YIELD_EVERY = 15  # compute yields every 16 events (mask)


S = TypeVar("S")


class _Slot(Generic[S]):
    """A state in memory, with its key and the version it must still have in Redis. (A plain
    class: mypyc compiles no generic dataclass.)"""

    __slots__ = ("key", "state", "version")

    def __init__(self, version: str, state: S, key: str) -> None:
        self.version = version
        self.state = state
        self.key = key  # built once per batch: guards, hand-off and cache reuse it (and its hash)


class _Holders:
    """Where a batch finds states before Redis: what the batch before it will have written,
    then the one before that (its script in flight), then memory. Taking a state moves it.
    (An object, not a closure: compiled, a closure's environment holds every local of the
    coroutine and refers back to the closure, a cycle only the garbage collector frees.)"""

    __slots__ = ("cache", "earlier", "handoff")

    def __init__(
        self, handoff: dict[str, tuple[str, Any]], earlier: dict[str, tuple[str, Any]],
        cache: StateCache,
    ) -> None:  # fmt: skip
        self.handoff, self.earlier, self.cache = handoff, earlier, cache

    def take(self, key: str) -> tuple[str, Any] | None:
        hit = self.handoff.pop(key, None)
        if hit is None and self.earlier:
            hit = self.earlier.pop(key, None)
        return hit if hit is not None else self.cache.take(key)


class _Loaded:
    """The batch's states in memory, with the versions they must still have in Redis."""

    def __init__(self) -> None:
        self.posts: dict[str, _Slot[PostState]] = {}
        self.ambassadors: dict[str, _Slot[AmbassadorState]] = {}
        self.pairs_of: dict[str, _Slot[ColleaguePairs]] = {}

    def ambassador(self, ambassador_id: str) -> AmbassadorState:
        return self.ambassadors[ambassador_id].state

    def pairs(self, ambassador_id: str) -> ColleaguePairs:
        return self.pairs_of[ambassador_id].state


@dataclass
class Outcome:
    result: int
    effects: Effects | None = None
    # APPLIED once its script, still in flight, succeeds: the batch's pending confirmation says.
    provisional: bool = False

    def __init__(
        self, result: int, effects: Effects | None = None, provisional: bool = False
    ) -> None:
        # Written out: compiled, a dataclass's generated __init__ stays interpreted (scorer.py).
        self.result, self.effects, self.provisional = result, effects, provisional


class ScoringRefused(Exception):
    """A batch's last script, left in flight, was refused: the bus redelivers the batch."""


class _Chunk:
    """One script batch through read → compute → send → finish."""

    def __init__(self, events: list[Scored], positions: list[int], batch: BatchWrite) -> None:
        self.events = events
        self.positions = positions  # where its events are in the caller's list
        self.batch = batch
        self.token = secrets.token_hex(8)
        self.mem = _Loaded()
        self.seen: set[str] = set()
        # Per event: its post's key and its reaction marker's key (a like or share), if any.
        self.about: list[tuple[str | None, str | None]] = []
        self.react_versions: dict[str, str] = {}  # reaction key -> its version (read or set)
        self.staged: list[tuple[int, Effects]] = []
        self.outcomes: list[Outcome] = [Outcome(DUPLICATE)] * len(events)
        self.ids: set[str] = set()  # events it applies
        self.payload: tuple[bytes, bytes] | None = None
        # State key -> (version once applied, state): for the next batch, else kept in memory.
        self.handoff: dict[str, tuple[str, Any]] = {}
        self.react_after: dict[str, str] = {}  # reaction key -> its version once applied
        self.fetched: set[str] = set()  # state keys it read from Redis
        self.erasing = False  # holds an erasure
        self.sending: asyncio.Task[tuple[int, list[int]]] | None = None  # its script in flight
        self.confirmed = False  # left in flight, and its answer awaited through the bus runtime


class _TailConfirmation:
    """A pull's last script batch, in flight: the bus runtime awaits it before acking the
    pull; once it succeeded, its events are counted and its badges published."""

    def __init__(
        self,
        sending: asyncio.Task[tuple[int, list[int]]],
        applied: list[tuple[Scored, Outcome]],
        on_applied: Callable[[list[tuple[Scored, Outcome]]], Awaitable[None]],
    ) -> None:
        self._sending, self._applied, self._on_applied = sending, applied, on_applied

    async def result(self) -> None:
        # Shielded: the next pull's batches wait on the same answer.
        status, _ = await asyncio.shield(self._sending)
        if status != APPLIED:
            raise ScoringRefused(f"a script batch was refused (status {status}): redelivered")
        applied, self._applied = self._applied, []
        await self._on_applied(applied)

    def forget(self) -> None:
        self._applied = []


class ScoringPipeline:
    def __init__(
        self,
        scorer: Scorer,
        store: ScoreStore,
        *,
        publisher: EventPublisher | None = None,
        attempts: int = 4,
        pause_wait_s: float = 60.0,
        cache_size: int = 100_000,
        chunk: int = 125,
    ) -> None:
        self.scorer = scorer
        self.store = store
        self._pub = publisher
        self._attempts = attempts
        self._pause_wait_s = pause_wait_s
        self._outbox_checked = 0.0
        self._cache = StateCache(cache_size)
        self._chunk = max(1, chunk)  # events per script batch (a pulled batch is overlapped)
        # The last script batch of the previous call, its script in flight (see `_run`).
        self._tail: _Chunk | None = None

    # -- bus adapter -----------------------------------------------------------------------
    async def handle(self, batch: Sequence[Delivery]) -> None:
        work: list[tuple[Delivery, Scored]] = []
        tables: list[PointsTablePublished] = []
        for d in batch:
            try:
                event = validate_domain_event(d.body)
            except ValidationError as exc:
                d.reject("invalid_event", f"not a valid domain event: {exc.errors()[0]['msg']}")
                continue
            if isinstance(event, SCORED_TYPES):
                work.append((d, event))
            elif isinstance(event, PointsTablePublished):
                tables.append(event)
            # Other event types carry nothing to score: acked as they are.
        if tables:
            await self._keep_tables(tables)
        if work:
            # First deliveries are not looked up in the dedupe markers (the script checks
            # them anyway; a duplicate costs one refused batch): a redelivery is. (Reaction
            # markers are always read: repeated likes are common enough that guessing costs
            # more refused batches than the reads.)
            redelivered = any(d.attempt > 1 for d, _ in work)
            # Under the bus runtime the last script batch is left in flight: the runtime awaits
            # it before acking, while this service handles the next pull (see `_run`).
            defer = UNCONFIRMED.get() is not None
            events = [e for _, e in work]
            outcomes = await self.apply(events, read_seen=redelivered, defer=defer)
            for (d, _), out in zip(work, outcomes, strict=True):
                if out.result in (CONFLICT, STALE):
                    d.retry("states changed concurrently (another instance or a rebuild)")
            settled = [(e, o) for e, o in zip(events, outcomes, strict=True) if not o.provisional]
            self._account(settled)
            if any(o.effects is not None and o.effects.badges for o in outcomes):
                self._outbox_checked = 0.0
        await self.flush_outbox()

    async def _tail_applied(self, applied: list[tuple[Scored, Outcome]]) -> None:
        """A pull's last script batch succeeded: count it; publish the badges it granted."""
        self._account(applied)
        if any(o.effects is not None and o.effects.badges for _, o in applied):
            self._outbox_checked = 0.0
            await self.flush_outbox()

    @staticmethod
    def _account(done: Sequence[tuple[Scored, Outcome]]) -> None:
        """Metrics of applied, duplicate and refused events (once their script answered)."""
        now = time.time()
        tally: dict[str, int] = {}
        moved: dict[str, float] = {}
        lags: list[float] = []
        for event, out in done:
            if out.result in (CONFLICT, STALE):
                tally["conflict"] = tally.get("conflict", 0) + 1
            elif out.result == APPLIED:
                tally["applied"] = tally.get("applied", 0) + 1
                if out.effects is not None:
                    for entry in out.effects.ledger:
                        moved[entry.op] = moved.get(entry.op, 0) + abs(entry.points)
                    for b in out.effects.badges:
                        BADGES.labels(b.badge).inc()
                lags.append(max(0.0, now - event.occurred_at.timestamp()))
            else:
                tally["duplicate"] = tally.get("duplicate", 0) + 1
        observe_many(LEADERBOARD_LAG, lags)
        for outcome, n in tally.items():
            EVENTS_SCORED.labels(outcome).inc(n)
        for op, cp in moved.items():
            POINTS.labels(op).inc(cp / 100)

    async def _keep_tables(self, tables: list[PointsTablePublished]) -> None:
        """Published tables are kept by version: `portevoix scores rebuild --table VERSION`."""
        valid: dict[str | bytes, str | bytes] = {}
        for t in tables:
            try:
                valid[t.version] = load_table(t.table_yaml).dumps()
            except ValueError as exc:
                log.warning("published points table refused", extra={"pv": {"error": str(exc)}})
        if valid:
            await self.store.redis.hset(SCORING_TABLES, mapping=valid)  # type: ignore[arg-type]

    async def flush_outbox(self, every_s: float = 5.0) -> int:
        """Publish what the outbox holds (badges), then drop it: at least once, deduplicated
        by JetStream on the event id (`Nats-Msg-Id`)."""
        if self._pub is None or time.monotonic() - self._outbox_checked < every_s:
            return 0
        self._outbox_checked = time.monotonic()
        items = await self.store.outbox()
        if not items:
            return 0
        out = []
        for raw in items:
            body = orjson.loads(raw)
            out.append(
                Outgoing(
                    subject=BADGE_SUBJECT,
                    msg_id=str(body["event_id"]),
                    payload=raw,
                    headers={"Pv-Event-Type": "badge.awarded", "Pv-Schema-Version": "1"},
                )
            )
        await self._pub.publish_many(out)
        await self.store.outbox_done(items)
        return len(items)

    # -- core ------------------------------------------------------------------------------
    async def apply(
        self, events: Sequence[Scored], *, read_seen: bool = True, defer: bool = False
    ) -> list[Outcome]:
        """Apply events in order; recompute the ones refused (CONFLICT/STALE) a few times.
        `read_seen`: read the events' dedupe markers first (skip known duplicates before
        computing); without it a duplicate is found by the script (DUPLICATE, recomputed).
        `defer`: leave the last script batch in flight, confirmed through the bus runtime
        (`confirm_later`); its outcomes are provisional."""
        outcomes: list[Outcome] = [Outcome(CONFLICT)] * len(events)
        pending = list(range(len(events)))
        for _ in range(self._attempts):
            carried = self._tail
            results = await self._run([events[i] for i in pending], read_seen, defer=defer)
            tail = self._tail if self._tail is not carried else None
            if tail is not None and any(o.result in (CONFLICT, STALE) for o in results):
                # Recomputing anyway: its answer first, so a refusal is recomputed here too.
                self._tail = None
                assert tail.sending is not None
                self._finish(tail, await tail.sending, None)
                for i, out in zip(tail.positions, tail.outcomes, strict=True):
                    results[i] = out
            read_seen = True  # a recomputation may be due to duplicates
            stale = False
            retry: list[int] = []
            for i, out in zip(pending, results, strict=True):
                outcomes[i] = out
                if out.result in (CONFLICT, STALE):
                    retry.append(i)
                    stale = stale or out.result == STALE
            if stale:
                await self.follow_generation()
            pending = retry
            if not pending:
                break
        tail = self._tail
        if defer and tail is not None and tail.sending is not None and not tail.confirmed:
            tail.confirmed = True
            applied = [(tail.events[i], Outcome(APPLIED, fx)) for i, fx in tail.staged]
            confirm_later(_TailConfirmation(tail.sending, applied, self._tail_applied))
        return outcomes

    async def follow_generation(self) -> None:
        """After STALE: wait out a rebuild's swap pause, then move to the live generation."""
        r = self.store.redis
        deadline = time.monotonic() + self._pause_wait_s
        while time.monotonic() < deadline:
            if not await r.exists(SCORING_PAUSE):
                break
            await asyncio.sleep(0.02)
        gen = await self.store.live_generation()
        if gen != self.store.gen:
            raw = await r.get(gen_table_key(gen))
            if raw:
                self.scorer = Scorer(load_table(text(raw)), self.scorer.tz)
            self.store = ScoreStore(r, gen, live=self.store.live)
            self._cache.clear()
            log.info("scoring moved to a new generation", extra={"pv": {"generation": gen}})

    def _chunks(self, events: Sequence[Scored]) -> list[list[int]]:
        """Positions of the script batches: at most `chunk` events; an erasure ends its batch
        (the script removes the person after the batch's writes, so nothing after it may write
        for them in the same call)."""
        out: list[list[int]] = []
        cur: list[int] = []
        for i, e in enumerate(events):
            cur.append(i)
            if len(cur) >= self._chunk or type(e) is AmbassadorErased:
                out.append(cur)
                cur = []
        if cur:
            out.append(cur)
        return out

    async def _run(
        self, events: Sequence[Scored], read_seen: bool = True, *, defer: bool = False
    ) -> list[Outcome]:
        """Script batches, overlapped. For batch k: its states were read while batch k-1 was
        computed; k-1's script is sent and k is computed while Valkey runs it — on top of
        k-1's states, before k-1 is known to have committed (speculatively); then k+1's read
        and k's script are sent (Valkey runs them after k-1's script) and k-1's answer
        awaited.

        Exactly once still holds: k takes the states k-1 writes with k-1's token as their
        expected version, so if k-1 is refused (CONFLICT, DUPLICATE, STALE) the script refuses
        every step of k that used them, and they are recomputed (next attempt of `apply`).
        k's script is sent once k is computed, behind k-1's, before k-1's answer is in:
        scripts run in order, and the versions, not the timing, decide. A batch holding an
        erasure is read once everything before it is applied (its SCAN must see their
        reaction markers).

        Across calls the same: with `defer`, the last batch's script is sent and left in
        flight (the tail), confirmed to the bus runtime through `confirm_later`, which acks its
        deliveries only once it succeeded; the next call starts on top of it as its batch k-1.
        Without it, Valkey would idle while the next pull is validated and its first batch
        computed, and Python while the last script runs. A refused tail fails its pull, which
        the bus redelivers (markers make the applied part duplicates)."""
        outcomes: list[Outcome] = [Outcome(CONFLICT)] * len(events)
        plan = self._chunks(events)
        carried, self._tail = self._tail, None  # a previous call's: not this call's outcomes
        if carried is not None:
            # Its events are not taken as applied by this call (the in-flight shortcut): if it
            # is refused, this call may be their redelivery. The markers still decide.
            carried.ids = set()
        prev: _Chunk | None = carried  # computed, not answered yet
        reading: asyncio.Task[_Chunk] | None = None
        nxt: _Chunk | None = None
        refused = False  # a batch was: the last one, likely built on it, is answered here

        try:
            for n, positions in enumerate(plan):
                if reading is not None:
                    chunk = await reading
                else:
                    chunk = self._new_chunk([events[i] for i in positions], positions)
                    if prev is not None and chunk.erasing:
                        refused |= await self._settle(prev, carried, outcomes)
                        prev = None
                    await self._read(chunk, prev, read_seen)
                reading = None
                sending = self._send(prev) if prev is not None else None
                if sending is not None:
                    await asyncio.sleep(0)  # the script goes out before the CPU-bound compute
                await self._compute(chunk)
                nxt = None
                if n + 1 < len(plan):
                    nxt = self._new_chunk([events[i] for i in plan[n + 1]], plan[n + 1])
                    if not nxt.erasing:
                        reading = asyncio.create_task(self._read(nxt, chunk, read_seen, prev))
                # Its script goes now, queued behind k+1's read (else Valkey would idle while
                # that read is answered and parsed) and behind k-1's script, not after k-1's
                # answer: Valkey runs them back to back (versions decide, as for the compute).
                self._send(chunk)
                if prev is not None:
                    result = await sending if sending is not None else (APPLIED, [])
                    refused |= self._done(prev, result, nxt, carried, outcomes)
                prev = chunk
        finally:
            if reading is not None and not reading.done():
                reading.cancel()  # an error elsewhere: its states are dropped, nothing else
        if prev is not None:
            if defer and prev.payload is not None and not refused:
                self._leave_in_flight(prev)
                # Out now, not at the next pull's first read: Valkey runs it while this pull is
                # accounted and the next one validated (else it idles through both).
                await asyncio.sleep(0)
                self._record(prev, carried, outcomes)
            else:
                await self._settle(prev, carried, outcomes)
        return outcomes

    # Helpers of `_run` as methods, not closures: compiled (mypyc), a closure shares one
    # environment object with every local of `_run`, chunks included, and that environment
    # refers back to the closures: a cycle per call, which only the garbage collector frees
    # (measured: 4 collections, 0.44-0.56 s per 20,000 awards).
    @staticmethod
    def _record(chunk: _Chunk, carried: _Chunk | None, outcomes: list[Outcome]) -> None:
        if chunk is not carried:
            for i, out in zip(chunk.positions, chunk.outcomes, strict=True):
                outcomes[i] = out

    def _done(
        self,
        chunk: _Chunk,
        result: tuple[int, list[int]],
        later: _Chunk | None,
        carried: _Chunk | None,
        outcomes: list[Outcome],
    ) -> bool:
        """The chunk's answer is in: its outcomes; whether it was refused."""
        self._finish(chunk, result, later)
        self._record(chunk, carried, outcomes)
        return result[0] != APPLIED

    async def _settle(self, chunk: _Chunk, carried: _Chunk | None, outcomes: list[Outcome]) -> bool:
        sending = self._send(chunk)
        result = await sending if sending is not None else (APPLIED, [])
        return self._done(chunk, result, None, carried, outcomes)

    def _send(self, chunk: _Chunk) -> asyncio.Task[tuple[int, list[int]]] | None:
        """The chunk's script, sent once (None: it writes nothing)."""
        if chunk.sending is None and chunk.payload is not None:
            chunk.sending = asyncio.create_task(self.store.send(chunk.batch, chunk.payload))
        return chunk.sending

    def _leave_in_flight(self, chunk: _Chunk) -> None:
        """Send the chunk's script and keep it as the tail: the next call builds on it; `apply`
        has the bus runtime await it before acking. Its outcomes are provisional."""
        self._send(chunk)
        self._tail = chunk
        if not chunk.confirmed:
            for idx, fx in chunk.staged:
                chunk.outcomes[idx] = Outcome(APPLIED, fx, provisional=True)

    async def _apply_once(self, events: Sequence[Scored]) -> list[Outcome]:
        """One script batch, not overlapped (tests)."""
        assert self._tail is None, "a script left in flight by `handle` must be answered first"
        chunk = self._new_chunk(list(events), list(range(len(events))))
        await self._read(chunk, None)
        await self._compute(chunk)
        done = await self.store.send(chunk.batch, chunk.payload) if chunk.payload else None
        self._finish(chunk, done or (APPLIED, []), None)
        return chunk.outcomes

    def _new_chunk(self, events: list[Scored], positions: list[int]) -> _Chunk:
        chunk = _Chunk(events, positions, self.store.batch(publish_badges=self._pub is not None))
        chunk.erasing = any(type(e) is AmbassadorErased for e in events)  # exact: cheaper
        return chunk

    async def _read(
        self,
        chunk: _Chunk,
        prev: _Chunk | None,
        read_seen: bool = True,
        older: _Chunk | None = None,
    ) -> _Chunk:
        """The batch's states: from the batches before it (not applied yet: what they will
        have written, at their tokens: `prev`, then `older`, the batch whose script is in flight
        while `prev` is computed), from memory (what this instance wrote last), else from Redis
        (at most two MGETs, and the item lists of posts that have items; Valkey runs them after
        the script in flight, if any). A state is held by one of these at a time: taking it
        moves it."""
        store = self.store
        events = chunk.events
        take = _Holders(
            prev.handoff if prev is not None else {},
            # Until its answer is in: then `_finish` moves what is left of it to memory.
            older.handoff if older is not None else {},
            self._cache,
        ).take
        mem = chunk.mem
        about = chunk.about = [
            (post_of(e), store.reaction_key(r[0], r[1], r[2]) if (r := reaction_of(e)) else None)
            for e in events  # (not `*r`: compiled, a starred call takes the generic path)
        ]
        post_keys = {pk for pk, _ in about if pk is not None}
        reactions = dict.fromkeys(rk for _, rk in about if rk is not None)
        react_versions = chunk.react_versions
        wanted = Scorer.needs(events)
        # Name -> key of the states to read from Redis (not held by a batch or memory).
        posts_missing = self._held(post_keys, store.post_key, take, mem.posts)
        keys = list(posts_missing.values())
        known = prev.react_after if prev is not None else {}
        for rk in reactions:
            after = known.get(rk)
            if after is None:
                keys.append(rk)
            else:
                react_versions[rk] = after
        ambassadors_missing = self._held(wanted, store.ambassador_key, take, mem.ambassadors)
        keys += ambassadors_missing.values()
        # Events of the batch in flight are not looked up: they are its (speculatively).
        in_flight = prev.ids if prev is not None else set()
        ids = [e.event_id for e in events if read_seen and e.event_id not in in_flight]
        chunk.fetched.update(keys)
        states, chunk.seen = await store.load(keys, ids)
        chunk.seen |= {e.event_id for e in events if e.event_id in in_flight}
        read: list[PostState] = []
        for pk, key in posts_missing.items():
            v = states[key]
            mem.posts[pk] = _Slot(v.version, PostState.loads(pk, v.raw), key)
            read.append(mem.posts[pk].state)
        await store.load_items(read)  # held/voided items, for the posts that have some
        # Second read: ambassadors the loaded posts point to (authors, early colleagues), and
        # the colleague pairs of the batch's colleague engagement.
        more: set[str] = set()
        for slot in mem.posts.values():
            more |= Scorer.post_needs(slot.state)
        more -= wanted  # held, or in the first read already
        more_missing = self._held(more, store.ambassador_key, take, mem.ambassadors)
        more_keys = list(more_missing.values())
        ambassadors_missing |= more_missing
        pair_ids = Scorer.pairs_needed(events, {pk: p.state for pk, p in mem.posts.items()})
        pairs_missing = self._held(pair_ids, store.pairs_key, take, mem.pairs_of)
        more_keys += pairs_missing.values()
        if more_keys:
            chunk.fetched.update(more_keys)
            extra, _ = await store.load(more_keys, ())
            states.update(extra)
        for aid, key in ambassadors_missing.items():
            v = states[key]
            mem.ambassadors[aid] = _Slot(v.version, AmbassadorState.loads(aid, v.raw), key)
        for aid, key in pairs_missing.items():
            v = states[key]
            legacy = mem.ambassadors[aid].state.recv if aid in mem.ambassadors else None
            mem.pairs_of[aid] = _Slot(v.version, ColleaguePairs.loads(v.raw, legacy), key)
        for rk in reactions:
            if rk not in react_versions:
                react_versions[rk] = states[rk].version
        erased = [e.ambassador_id for e in events if type(e) is AmbassadorErased]
        if erased:
            chunk.batch.targets = await store.erasure_targets(erased)
        return chunk

    @staticmethod
    def _held(
        ids: set[str],
        key_of: Callable[[str], str],
        take: Callable[[str], tuple[str, Any] | None],
        into: dict[str, _Slot[S]],
    ) -> dict[str, str]:
        """Put the states already held (hand-off or memory) into `into`; return those still to
        read from Redis (name -> key)."""
        missing: dict[str, str] = {}
        for name in ids:
            key = key_of(name)
            hit = take(key)
            if hit is None:
                missing[name] = key
            else:
                into[name] = _Slot(hit[0], hit[1], key)
        return missing

    async def _compute(self, chunk: _Chunk) -> None:
        """The batch's steps, in order, on the states read; then its payload, serialised now:
        the next batch may take (and change) these very state objects."""
        mem, batch, token = chunk.mem, chunk.batch, chunk.token
        react_versions, about = chunk.react_versions, chunk.about
        in_batch: set[str] = set()
        guard, ambassadors = batch.guard, mem.ambassadors
        for idx, event in enumerate(chunk.events):
            if idx & YIELD_EVERY == YIELD_EVERY:
                # Let the event loop run: it finishes sending the previous batch's script
                # (a large payload leaves the socket in several writes) while this is computed.
                await asyncio.sleep(0)
            eid = event.event_id
            if eid in chunk.seen or eid in in_batch:
                continue  # DUPLICATE (or the batch in flight's: if it fails, its copy retries)
            in_batch.add(eid)
            pk, rk = about[idx]
            slot = mem.posts[pk] if pk is not None else None
            post = slot.state if slot is not None else None
            reacted = rk is not None and react_versions[rk] != ""
            fx = self.scorer.apply(event, post, mem, reacted=reacted)
            # The states the step read and wrote, straight into the batch (no Guard objects).
            pos = batch.step(idx, eid)
            if slot is not None:
                guard(slot.key, slot.version, post, pos)
            for aid in fx.wrote:
                amb = ambassadors[aid]
                guard(amb.key, amb.version, amb.state, pos)
            for aid in fx.read:
                if aid not in fx.wrote:
                    amb = ambassadors[aid]
                    guard(amb.key, amb.version, None, pos)
            if fx.pairs:  # colleague engagement, erasures
                for aid, wrote in fx.pairs.items():
                    pairs = mem.pairs_of[aid]
                    guard(pairs.key, pairs.version, pairs.state if wrote else None, pos)
            if rk is not None:
                guard(rk, react_versions[rk], b"1" if fx.reaction else None, pos)
                if fx.reaction:
                    react_versions[rk] = token  # later steps see the like as given
            batch.record(fx)
            chunk.staged.append((idx, fx))
        # What the batch leaves behind if its script applies it: the next batch starts there.
        # States it read but no step used (duplicates, a post's author its events did not need)
        # are handed on as they were read: else memory would lose them, and they would be read
        # from Redis again, behind the script in flight.
        guarded = batch.guard_steps
        slots: tuple[Iterable[_Slot[Any]], ...] = (
            mem.posts.values(),
            mem.ambassadors.values(),
            mem.pairs_of.values(),
        )
        for held in slots:
            for kept in held:
                key = kept.key
                version = batch.version_of(key, token) if key in guarded else kept.version
                chunk.handoff[key] = (version, kept.state)
        if not chunk.staged:
            return
        chunk.ids = in_batch
        chunk.react_after.update(react_versions)
        chunk.payload = batch.payload(token)

    def _finish(self, chunk: _Chunk, result: tuple[int, list[int]], later: _Chunk | None) -> None:
        """Outcomes of the batch; if applied, what it wrote (and the next batches did not take
        or read themselves: `later`) is kept in memory, at the version Redis now holds."""
        status, where = result
        if status == APPLIED:
            # What a later batch read itself stays out: it holds its own copy.
            self._cache.keep_all(chunk.handoff, later.fetched if later is not None else ())
            for idx, fx in chunk.staged:
                chunk.outcomes[idx] = Outcome(APPLIED, fx)
        elif status == DUPLICATE:
            # Applied meanwhile by another instance: the rest is recomputed without them.
            dup = set(where)
            for idx, _ in chunk.staged:
                chunk.outcomes[idx] = Outcome(DUPLICATE if idx in dup else CONFLICT)
        else:
            for idx, _ in chunk.staged:
                chunk.outcomes[idx] = Outcome(status)
        chunk.handoff = {}


__all__ = ["ScoringPipeline", "ScoringRefused", "Versioned"]

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import orjson
from pydantic import ValidationError

from portevoix.contracts.events import (
    DOMAIN_EVENT,
    AmbassadorErased,
    AmbassadorRegistered,
    EngagementReceived,
    PointsTablePublished,
    PostModerated,
    PostReceived,
    PostReviewed,
)
from portevoix.contracts.readmodels import SCORING_PAUSE, SCORING_TABLES, gen_table_key
from portevoix.runtime.delivery import Delivery
from portevoix.runtime.publisher import EventPublisher, Outgoing
from portevoix.runtime.redis import text
from portevoix_scoring.domain.ambassador_state import AmbassadorState
from portevoix_scoring.domain.post_state import PostState
from portevoix_scoring.domain.scorer import Effects, Scored, Scorer
from portevoix_scoring.domain.table import load_table
from portevoix_scoring.metrics import BADGES, EVENTS_SCORED, LEADERBOARD_LAG, POINTS
from portevoix_scoring.state_cache import StateCache
from portevoix_scoring.store import (
    APPLIED,
    CONFLICT,
    DUPLICATE,
    STALE,
    Guard,
    ScoreStore,
    Versioned,
)

log = logging.getLogger("portevoix.scoring")
SCORED_TYPES = (
    PostReceived,
    EngagementReceived,
    PostModerated,
    PostReviewed,
    AmbassadorRegistered,
    AmbassadorErased,
)
BADGE_SUBJECT = "pv.evt.badge.awarded"


def reaction_of(event: Scored) -> tuple[str, str, str] | None:
    """(post key, kind, actor) of a like or share: one counts per actor per post."""
    if isinstance(event, EngagementReceived) and event.engagement in ("like", "share"):
        return event.post_key, event.engagement, event.actor_ambassador_id or event.actor
    return None


def post_of(event: Scored) -> str | None:
    return None if isinstance(event, AmbassadorRegistered | AmbassadorErased) else event.post_key


@dataclass
class _Post:
    version: str
    state: PostState


@dataclass
class _Ambassador:
    version: str
    state: AmbassadorState


class _Loaded:
    """The batch's states in memory, with the versions they must still have in Redis."""

    def __init__(self) -> None:
        self.posts: dict[str, _Post] = {}
        self.ambassadors: dict[str, _Ambassador] = {}

    def ambassador(self, ambassador_id: str) -> AmbassadorState:
        return self.ambassadors[ambassador_id].state


@dataclass
class Outcome:
    result: int
    effects: Effects | None = None


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
    ) -> None:
        self.scorer = scorer
        self.store = store
        self._pub = publisher
        self._attempts = attempts
        self._pause_wait_s = pause_wait_s
        self._outbox_checked = 0.0
        self._cache = StateCache(cache_size)

    # -- bus adapter -----------------------------------------------------------------------
    async def handle(self, batch: Sequence[Delivery]) -> None:
        work: list[tuple[Delivery, Scored]] = []
        tables: list[PointsTablePublished] = []
        for d in batch:
            try:
                event = DOMAIN_EVENT.validate_python(d.body)
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
            outcomes = await self.apply([e for _, e in work])
            now = time.time()
            tally: dict[str, int] = {}
            moved: dict[str, float] = {}
            for (d, event), out in zip(work, outcomes, strict=True):
                if out.result in (CONFLICT, STALE):
                    d.retry("states changed concurrently (another instance or a rebuild)")
                    tally["conflict"] = tally.get("conflict", 0) + 1
                elif out.result == APPLIED:
                    tally["applied"] = tally.get("applied", 0) + 1
                    if out.effects is not None:
                        for entry in out.effects.ledger:
                            moved[entry.op] = moved.get(entry.op, 0) + abs(entry.points)
                        for b in out.effects.badges:
                            BADGES.labels(b.badge).inc()
                    LEADERBOARD_LAG.observe(max(0.0, now - event.occurred_at.timestamp()))
                else:
                    tally["duplicate"] = tally.get("duplicate", 0) + 1
            for outcome, n in tally.items():
                EVENTS_SCORED.labels(outcome).inc(n)
            for op, cp in moved.items():
                POINTS.labels(op).inc(cp / 100)
            if any(o.effects is not None and o.effects.badges for o in outcomes):
                self._outbox_checked = 0.0
        await self.flush_outbox()

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
    async def apply(self, events: Sequence[Scored]) -> list[Outcome]:
        """Apply events in order; recompute the ones refused (CONFLICT/STALE) a few times.

        An erasure ends its batch: the script applies it after the batch's writes, so no step
        after it may write for the same person in the same call (a new registration may)."""
        outcomes: list[Outcome] = []
        start = 0
        for end, event in enumerate(events, 1):
            if isinstance(event, AmbassadorErased) or end == len(events):
                part = await self._apply_part(events[start:end])
                outcomes += part
                start = end
                if any(o.result in (CONFLICT, STALE) for o in part):
                    # Not applied yet: what follows waits too (redelivered in order).
                    outcomes += [Outcome(CONFLICT) for _ in events[end:]]
                    break
        return outcomes

    async def _apply_part(self, events: Sequence[Scored]) -> list[Outcome]:
        outcomes: list[Outcome] = [Outcome(CONFLICT)] * len(events)
        pending = list(range(len(events)))
        for _ in range(self._attempts):
            results = await self._apply_once([events[i] for i in pending])
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

    async def _apply_once(self, events: Sequence[Scored]) -> list[Outcome]:
        store = self.store
        cache = self._cache
        mem = _Loaded()
        post_keys = {pk for e in events if (pk := post_of(e)) is not None}
        reactions = {r: store.reaction_key(*r) for e in events if (r := reaction_of(e))}
        wanted: set[str] = set()
        for e in events:
            wanted |= Scorer.needs(e)
        # States this instance wrote last are taken from memory (and out of it: a batch owns
        # what it took until it commits); the rest is read. Their versions are checked by the
        # script like any other: if another instance wrote one meanwhile, CONFLICT, and the
        # recomputation reads it from Redis.
        keys: list[str] = []
        for pk in post_keys:
            hit = cache.take(store.post_key(pk))
            if hit is None:
                keys.append(store.post_key(pk))
            else:
                mem.posts[pk] = _Post(hit[0], cast(PostState, hit[1]))
        keys += reactions.values()
        for aid in wanted:
            hit = cache.take(store.ambassador_key(aid))
            if hit is None:
                keys.append(store.ambassador_key(aid))
            else:
                mem.ambassadors[aid] = _Ambassador(hit[0], cast(AmbassadorState, hit[1]))
        states, seen = await store.load(keys, (e.event_id for e in events))
        for pk in post_keys:
            if pk not in mem.posts:
                v = states[store.post_key(pk)]
                mem.posts[pk] = _Post(v.version, PostState.loads(pk, v.raw))
        # Second read: ambassadors the loaded posts point to (authors, early colleagues).
        more: set[str] = set()
        for slot in mem.posts.values():
            more |= Scorer.post_needs(slot.state)
        more -= mem.ambassadors.keys()
        more_keys: list[str] = []
        for aid in more:
            hit = cache.take(store.ambassador_key(aid))
            if hit is None:
                more_keys.append(store.ambassador_key(aid))
            else:
                mem.ambassadors[aid] = _Ambassador(hit[0], cast(AmbassadorState, hit[1]))
        if more_keys:
            extra, _ = await store.load(more_keys, ())
            states.update(extra)
        for aid in wanted | more:
            if aid not in mem.ambassadors:
                v = states[store.ambassador_key(aid)]
                mem.ambassadors[aid] = _Ambassador(v.version, AmbassadorState.loads(aid, v.raw))
        react_versions = {r: states[k].version for r, k in reactions.items()}

        batch = store.batch(publish_badges=self._pub is not None)
        token = secrets.token_hex(8)
        staged: list[tuple[int, Effects]] = []
        outcomes: list[Outcome] = [Outcome(DUPLICATE) for _ in events]
        in_batch: set[str] = set()
        for idx, event in enumerate(events):
            if event.event_id in seen or event.event_id in in_batch:
                continue
            in_batch.add(event.event_id)
            pk = post_of(event)
            post = mem.posts[pk].state if pk is not None else None
            reaction = reaction_of(event)
            reacted = reaction is not None and react_versions[reaction] != ""
            fx = self.scorer.apply(event, post, mem, reacted=reacted)
            guards: list[Guard] = []
            if pk is not None and post is not None:
                guards.append(Guard(store.post_key(pk), mem.posts[pk].version, post))
            for aid in fx.wrote | fx.read:
                amb = mem.ambassadors[aid]
                state = amb.state if aid in fx.wrote else None
                guards.append(Guard(store.ambassador_key(aid), amb.version, state))
            if reaction is not None:
                value = b"1" if fx.reaction else None
                guards.append(Guard(reactions[reaction], react_versions[reaction], value))
                if fx.reaction:
                    react_versions[reaction] = token  # later steps see the like as given
            batch.add(idx, event.event_id, guards, fx)
            staged.append((idx, fx))
        if not staged:
            return outcomes
        status, where = await store.commit(batch, token)
        if status == APPLIED:
            # Every state the batch guarded now has, in Redis, the value held here: written
            # ones at version `token`, read-only ones at the version they were read at.
            for pk, post_slot in mem.posts.items():
                key = store.post_key(pk)
                if key in batch.guard_steps:
                    cache.keep(key, batch.version_of(key, token), post_slot.state)
            for aid, amb_slot in mem.ambassadors.items():
                key = store.ambassador_key(aid)
                if key in batch.guard_steps:
                    cache.keep(key, batch.version_of(key, token), amb_slot.state)
            for idx, fx in staged:
                outcomes[idx] = Outcome(APPLIED, fx)
        elif status == DUPLICATE:
            # Applied meanwhile by another instance: the rest is recomputed without them.
            dup = set(where)
            for idx, _ in staged:
                outcomes[idx] = Outcome(DUPLICATE if idx in dup else CONFLICT)
        else:
            for idx, _ in staged:
                outcomes[idx] = Outcome(status)
        return outcomes


__all__ = ["ScoringPipeline", "Versioned", "reaction_of"]

"""Scoring's bus adapter: domain events → the pure scorer → one atomic Redis step per event."""

from __future__ import annotations

import time
from collections.abc import Sequence

from pydantic import ValidationError

from portevoix.contracts.events import (
    DOMAIN_EVENT,
    EngagementReceived,
    PostModerated,
    PostReceived,
)
from portevoix.runtime.delivery import Delivery
from portevoix_scoring.domain.scorer import Scorer
from portevoix_scoring.metrics import EVENTS_SCORED, LEADERBOARD_LAG, POINTS
from portevoix_scoring.store import APPLIED, CONFLICT, ScoreStore

Scored = PostReceived | EngagementReceived | PostModerated


class ScoringPipeline:
    def __init__(self, scorer: Scorer, store: ScoreStore) -> None:
        self._scorer = scorer
        self._store = store

    async def handle(self, batch: Sequence[Delivery]) -> None:
        work: list[tuple[Delivery, Scored]] = []
        for d in batch:
            try:
                event = DOMAIN_EVENT.validate_python(d.body)
            except ValidationError as exc:
                d.reject("invalid_event", f"not a valid domain event: {exc.errors()[0]['msg']}")
                continue
            if isinstance(event, PostReceived | EngagementReceived | PostModerated):
                work.append((d, event))
            # Other event types carry nothing to score: acked as they are.
        if not work:
            return
        loaded, seen = await self._store.load(
            (e.post_key for _, e in work), (e.event_id for _, e in work)
        )
        pipe = self._store.pipeline()
        staged: list[tuple[Delivery, Scored, dict[str, int]]] = []
        in_batch: set[str] = set()
        for d, event in work:
            if event.event_id in seen or event.event_id in in_batch:
                EVENTS_SCORED.labels("duplicate").inc()
                continue
            in_batch.add(event.event_id)
            current = loaded[event.post_key]
            effects = self._scorer.apply(current.state, event)
            await self._store.stage(
                pipe,
                post_key=event.post_key,
                expected_version=current.version,
                state=current.state,
                event_id=event.event_id,
                effects=effects,
            )
            current.version += 1
            moved: dict[str, int] = {}
            for entry in effects.ledger:
                moved[entry.op] = moved.get(entry.op, 0) + entry.points
            staged.append((d, event, moved))
        results = await self._store.commit(pipe)
        now = time.time()
        for (d, event, moved), result in zip(staged, results, strict=True):
            if result == CONFLICT:
                d.retry("post state changed concurrently (another scoring instance)")
                EVENTS_SCORED.labels("conflict").inc()
            elif result == APPLIED:
                EVENTS_SCORED.labels("applied").inc()
                for op, pts in moved.items():
                    POINTS.labels(op).inc(abs(pts))
                LEADERBOARD_LAG.observe(max(0.0, now - event.occurred_at.timestamp()))
            else:
                EVENTS_SCORED.labels("duplicate").inc()

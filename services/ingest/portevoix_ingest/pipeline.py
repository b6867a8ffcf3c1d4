"""Ingest's bus adapter: validate raw events, resolve handles, publish domain events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import orjson
from pydantic import ValidationError

from portevoix.contracts.events import EVENT_SUBJECTS
from portevoix.contracts.ingest import (
    AmbassadorIn,
    EngagementIn,
    PostIn,
    describe_validation_error,
    parse_ingest_event,
)
from portevoix.runtime.delivery import Delivery
from portevoix.runtime.publisher import EventPublisher, Outgoing
from portevoix_ingest.directory import AmbassadorDirectory
from portevoix_ingest.domain.normalise import (
    classify_time,
    to_ambassador_registered,
    to_engagement_received,
    to_post_received,
)
from portevoix_ingest.metrics import (
    EVENTS_INGESTED,
    EVENTS_PARKED,
    EVENTS_REJECTED,
    EVENTS_REPLAYED,
    EVENTS_WITHHELD,
)
from portevoix_ingest.settings import IngestSettings

Activity = PostIn | EngagementIn
PRODUCER = "ingest"


class IngestPipeline:
    def __init__(
        self, directory: AmbassadorDirectory, publisher: EventPublisher, settings: IngestSettings
    ) -> None:
        self._dir = directory
        self._pub = publisher
        self._langs = settings.allowed_languages
        self._max_future = timedelta(seconds=settings.max_future_skew_s)
        self._max_age = timedelta(days=settings.max_event_age_days)

    async def handle(self, batch: Sequence[Delivery]) -> None:
        now = datetime.now(UTC)
        ambassadors: list[AmbassadorIn] = []
        activity: list[tuple[Delivery | None, Activity, bytes]] = []
        for d in batch:
            try:
                event = parse_ingest_event(d.body)
            except ValidationError as exc:
                problems = describe_validation_error(exc)
                d.reject(
                    "invalid_event",
                    "; ".join(f"{p.field}: {p.message} (value {p.value!r})" for p in problems),
                    errors=[p.model_dump(mode="json") for p in problems],
                )
                for p in problems:
                    EVENTS_REJECTED.labels(p.rule).inc()
                continue
            if isinstance(event, AmbassadorIn):
                ambassadors.append(event)
                continue
            late = classify_time(
                event.occurred_at, now, max_future=self._max_future, max_age=self._max_age
            )
            if late is not None:
                d.reject(
                    late.rule,
                    f"{late.field}: {late.message} (value {late.value!r})",
                    errors=[late.model_dump(mode="json")],
                )
                EVENTS_REJECTED.labels(late.rule).inc()
                continue
            activity.append((d, event, d.data))

        out: list[Outgoing] = []
        # Registrations first, so activity in the same batch (or parked earlier) resolves.
        replayed: list[tuple[str, str, str]] = []
        for a in ambassadors:
            out.append(
                Outgoing.of_event(
                    EVENT_SUBJECTS["ambassador.registered"],
                    to_ambassador_registered(a, PRODUCER, now),
                )
            )
            for network, handle, raw in await self._dir.register(a):
                event = parse_ingest_event(orjson.loads(raw))
                if isinstance(event, PostIn | EngagementIn):
                    activity.append((None, event, raw))
                    replayed.append((network, handle, event.event_id))

        authors = [(e.network, e.author) for _, e, _ in activity if isinstance(e, PostIn)]
        actors = [(e.network, e.actor) for _, e, _ in activity if isinstance(e, EngagementIn)]
        resolved = await self._dir.resolve_many([*authors, *actors])
        to_park: list[tuple[str, str, str, bytes]] = []
        for _d, event, raw in activity:
            if isinstance(event, PostIn):
                who = resolved.get((event.network, event.author))
                if who is None:
                    to_park.append((event.network, event.author, event.event_id, raw))
                    continue
                if not who.consent:
                    EVENTS_WITHHELD.inc()
                    continue
                domain = to_post_received(
                    event, who.ambassador_id, PRODUCER, allowed_langs=self._langs
                )
                out.append(Outgoing.of_event(EVENT_SUBJECTS["post.received"], domain))
            else:
                who = resolved.get((event.network, event.actor))
                actor_id = who.ambassador_id if who is not None and who.consent else None
                if who is not None and not who.consent:
                    EVENTS_WITHHELD.inc()
                    continue
                eng = to_engagement_received(event, actor_id, PRODUCER)
                out.append(Outgoing.of_event(EVENT_SUBJECTS["engagement.received"], eng))
            EVENTS_INGESTED.labels(event.network, event.type).inc()

        # Park before publishing: if the publish fails the batch is retried and parks again
        # (same field), so nothing is lost and nothing doubles.
        EVENTS_PARKED.inc(await self._dir.park(to_park))
        await self._pub.publish_many(out)
        if replayed:
            await self._dir.unpark(replayed)
            EVENTS_REPLAYED.inc(len(replayed))

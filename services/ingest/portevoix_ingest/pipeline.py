"""Ingest's bus adapter: validate raw events, deduplicate facts, resolve handles, publish domain
events; carry out GDPR erasures requested on the raw stream.

Per pulled batch, in this order:
1. decode + validate every message (contract v1; erasure requests on `pv.raw.erasure.v1`);
   a refused message is dead-lettered with the field, the value and the rule it broke;
2. registrations and erasures, in stream order (an erasure queued after a registration wins);
3. late/future timestamps (classify_time) and natural-key dedupe (Redis SET NX GET + TTL);
4. handle resolution: unknown → parked (bounded, TTL), non-consenting → withheld, erased →
   dropped; the rest become domain events, published in one async batch with PubAcks.
Redis work is batched: a handful of round trips per batch, not per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from portevoix.contracts.events import EVENT_SUBJECTS, SCHEMA_VERSION
from portevoix.contracts.ingest import (
    AmbassadorIn,
    EngagementIn,
    PostIn,
    Rejection,
    describe_validation_error,
    parse_ingest_event,
)
from portevoix.runtime.delivery import Delivery
from portevoix.runtime.publisher import EventPublisher, Outgoing
from portevoix.runtime.streams import ERASURE_SUBJECT
from portevoix.runtime.vault import Vault
from portevoix_ingest.directory import AmbassadorDirectory
from portevoix_ingest.domain.normalise import (
    classify_time,
    engagement_received_payload,
    natural_key,
    to_ambassador_registered,
    to_post_received,
)
from portevoix_ingest.domain.privacy import ErasureRequested, to_ambassador_erased
from portevoix_ingest.metrics import (
    DROPPED_ERASED,
    ERASURES,
    EVENTS_INGESTED,
    EVENTS_PARKED,
    EVENTS_REJECTED,
    EVENTS_REPLAYED,
    EVENTS_WITHHELD,
    NATURAL_DUPLICATES,
)
from portevoix_ingest.settings import IngestSettings

Activity = PostIn | EngagementIn
PRODUCER = "ingest"
ERASED_SUBJECT = "pv.evt.ambassador.erased"
_ENGAGEMENT_SUBJECT = EVENT_SUBJECTS["engagement.received"]
_POST_SUBJECT = EVENT_SUBJECTS["post.received"]
_ENGAGEMENT_HEADERS = {
    "Pv-Event-Type": "engagement.received",
    "Pv-Schema-Version": str(SCHEMA_VERSION),
}


def explain(problems: Sequence[Rejection]) -> str:
    """One line naming, for each problem, the field, the rule and the offending value."""
    return "; ".join(
        f"{p.field}: {p.message} [rule {p.rule}] (value {p.value!r})" for p in problems
    )


def reject(d: Delivery, code: str, problems: Sequence[Rejection]) -> None:
    d.reject(code, explain(problems), errors=[p.model_dump(mode="json") for p in problems])
    for p in problems:
        EVENTS_REJECTED.labels(p.rule).inc()


_SEALED_LATER = Outgoing("", "", b"")  # a slot filled once the batch's personal fields are sealed


class IngestPipeline:
    def __init__(
        self,
        directory: AmbassadorDirectory,
        publisher: EventPublisher,
        settings: IngestSettings,
        vault: Vault | None = None,
    ) -> None:
        self._dir = directory
        self._pub = publisher
        # Personal fields leave ingest sealed with their owner's key (crypto-shredding):
        # portevoix.contracts.sealed. None: published in clear (tests of the plain contract).
        self._vault = vault
        self._langs = tuple(settings.allowed_languages)
        self._max_future = timedelta(seconds=settings.max_future_skew_s)
        self._max_age = timedelta(days=settings.max_event_age_days)

    async def handle(self, batch: Sequence[Delivery]) -> None:
        now = datetime.now(UTC)
        # Contract timestamps are aware UTC: one comparison per event against the batch's window;
        # classify_time (which names the broken rule) only runs for the few outside it.
        oldest, newest = now - self._max_age, now + self._max_future
        control: list[tuple[Delivery, AmbassadorIn | ErasureRequested]] = []
        activity: list[tuple[Delivery | None, Activity, bytes]] = []
        for d in batch:
            if d.subject == ERASURE_SUBJECT:
                try:
                    control.append((d, ErasureRequested.model_validate(d.body)))
                except ValidationError as exc:
                    reject(d, "invalid_erasure", describe_validation_error(exc))
                continue
            try:
                event = parse_ingest_event(d.body)
            except ValidationError as exc:
                reject(d, "invalid_event", describe_validation_error(exc))
                continue
            if isinstance(event, AmbassadorIn):
                control.append((d, event))
                continue
            if not oldest <= event.occurred_at <= newest:
                late = classify_time(
                    event.occurred_at, now, max_future=self._max_future, max_age=self._max_age
                )
                if late is not None:
                    reject(d, late.rule, [late])
                    continue
            activity.append((d, event, d.data))

        out: list[Outgoing] = []
        replayed: list[tuple[str, str, str]] = []
        for d, item in control:
            if isinstance(item, ErasureRequested):
                erased = await self._dir.erase(item.ambassador_id, item.request_id, now)
                if self._vault is not None:
                    # The key goes: every sealed copy of their fields, in the log too, is noise.
                    await self._vault.shred(item.ambassador_id)
                ERASURES.labels("yes" if erased.existed else "no").inc()
                erased_event = to_ambassador_erased(
                    item,
                    PRODUCER,
                    now,
                    team=erased.team,
                    networks=erased.networks,
                    existed=erased.existed,
                )
                out.append(Outgoing.of_event(ERASED_SUBJECT, erased_event))
                continue
            conflicts, unparked = await self._dir.enroll(item, now)
            if conflicts:
                reject(d, "handle_taken", conflicts)
                continue
            registered = to_ambassador_registered(item, PRODUCER, now)
            if self._vault is None:
                out.append(Outgoing.of_event(EVENT_SUBJECTS["ambassador.registered"], registered))
            else:
                # Sealed now, in stream order, with a key read afresh: an erasure later in this
                # batch (or just before, on another instance) shreds exactly the key used here.
                data = registered.model_dump(mode="json")
                self._vault.forget(item.ambassador_id)
                await self._vault.seal_events([data])
                out.append(Outgoing.of_data(EVENT_SUBJECTS["ambassador.registered"], data))
            for network, handle, raw in unparked:
                parked = parse_ingest_event(orjson.loads(raw))
                if isinstance(parked, PostIn | EngagementIn):
                    activity.append((None, parked, raw))
                    replayed.append((network, handle, parked.event_id))

        activity = await self._first_reports(activity)
        # Parks before publishing: if the publish fails the batch is retried and parks again
        # (same field), so nothing is lost and nothing doubles.
        out.extend(await self._resolve(activity))
        if not replayed:
            # Nothing left to do after it: the consumer awaits the PubAcks before acking the
            # input, and meanwhile handles the next batch.
            await self._pub.publish_later(out)
            return
        await self._pub.publish_many(out)
        # Unparked only once republished: a failed publish retries the registration, which
        # finds them still parked.
        await self._dir.unpark(replayed)
        EVENTS_REPLAYED.inc(len(replayed))

    async def _first_reports(
        self, activity: list[tuple[Delivery | None, Activity, bytes]]
    ) -> list[tuple[Delivery | None, Activity, bytes]]:
        """Drop a fact already reported under another event id (post, like, share)."""
        keyed = [(i, k) for i, (_, e, _) in enumerate(activity) if (k := natural_key(e))]
        if not keyed:
            return activity
        owners = await self._dir.claim_natural_keys(
            [(k, activity[i][1].event_id) for i, k in keyed]
        )
        dropped = {
            i
            for (i, _), owner in zip(keyed, owners, strict=True)
            if owner != activity[i][1].event_id
        }
        if not dropped:
            return activity
        kinds = Counter(activity[i][1].type for i in dropped)
        for kind, n in kinds.items():
            NATURAL_DUPLICATES.labels(kind).inc(n)
        return [a for i, a in enumerate(activity) if i not in dropped]

    async def _resolve(
        self, activity: list[tuple[Delivery | None, Activity, bytes]]
    ) -> list[Outgoing]:
        whos = [(e.network, e.author if isinstance(e, PostIn) else e.actor) for _, e, _ in activity]
        resolved = await self._dir.resolve_many(whos)
        # In-flight activity of a just-erased handle must not bring its data back (parked, or
        # published as a stranger's).
        erased = await self._dir.erased(pair for pair in whos if pair not in resolved)
        out: list[Outgoing] = []
        sealable: list[tuple[int, str, dict[str, Any]]] = []  # (index in out, subject, event)
        to_park: list[tuple[Delivery | None, PostIn, bytes]] = []
        ingested: Counter[tuple[str, str]] = Counter()
        withheld = 0
        for (d, event, raw), pair in zip(activity, whos, strict=True):
            who = resolved.get(pair)
            if who is not None and not who.consent:
                # Not published, so never scored nor stored downstream (GDPR art. 6/7).
                withheld += 1
                continue
            if who is None and erased and pair in erased:
                DROPPED_ERASED.inc()
                continue
            if isinstance(event, PostIn):
                if who is None:
                    to_park.append((d, event, raw))
                    continue
                domain = to_post_received(
                    event, who.ambassador_id, PRODUCER, allowed_langs=self._langs
                )
                if self._vault is not None:
                    sealable.append((len(out), _POST_SUBJECT, domain.model_dump(mode="json")))
                    out.append(_SEALED_LATER)
                else:
                    out.append(Outgoing.of_event(_POST_SUBJECT, domain))
            else:
                # Engagement by someone outside the directory still counts for the post's author.
                payload = engagement_received_payload(
                    event, who.ambassador_id if who is not None else None, PRODUCER
                )
                if self._vault is not None and who is not None:
                    sealable.append((len(out), _ENGAGEMENT_SUBJECT, payload))
                    out.append(_SEALED_LATER)
                    ingested[(event.network, event.type)] += 1
                    continue
                out.append(
                    Outgoing(
                        _ENGAGEMENT_SUBJECT,
                        event.event_id,
                        orjson.dumps(payload, option=orjson.OPT_UTC_Z),
                        _ENGAGEMENT_HEADERS,
                    )
                )
            ingested[(event.network, event.type)] += 1
        if sealable and self._vault is not None:
            # One key lookup (get-or-create) for the whole batch's owners.
            await self._vault.seal_events([data for _, _, data in sealable])
            for i, subject, data in sealable:
                out[i] = Outgoing.of_data(subject, data)
        for (network, kind), n in ingested.items():
            EVENTS_INGESTED.labels(network, kind).inc(n)
        if withheld:
            EVENTS_WITHHELD.inc(withheld)
        if to_park:
            fits = await self._dir.park(
                [(e.network, e.author, e.event_id, raw) for _, e, raw in to_park]
            )
            EVENTS_PARKED.inc(sum(fits))
            for (d, e, _), ok in zip(to_park, fits, strict=True):
                if not ok and d is not None:
                    limit = Rejection(
                        field="author",
                        rule="parked_limit",
                        message="too many events already parked for this unregistered handle; "
                        "register the ambassador, then re-send",
                        value=e.author,
                    )
                    reject(d, "parked_limit", [limit])
        return out

"""Moderation's bus adapters: posts → charter engine → decisions (stored, published, queued);
moderators' reviews and ambassadors' appeals → queue, audit trail, per-rule counters."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from pydantic import ValidationError

from portevoix.contracts.events import (
    EVENT_SUBJECTS,
    AppealFiled,
    FindingOut,
    PostModerated,
    PostReceived,
    PostReviewed,
    validate_domain_event,
)
from portevoix.runtime.delivery import Delivery
from portevoix.runtime.publisher import EventPublisher, Outgoing
from portevoix.runtime.vault import Vault
from portevoix_moderation.charter import CharterEngine, Decision, PostToCheck
from portevoix_moderation.domain.lifecycle import on_appeal, on_decision, on_review
from portevoix_moderation.domain.notification import notification
from portevoix_moderation.history_sync import SharedPostHistory
from portevoix_moderation.metrics import (
    APPEALS,
    CHECK_SECONDS,
    ERASED_SKIPPED,
    FINDINGS,
    OVERTURNS,
    REVIEWS,
    VERDICTS,
)
from portevoix_moderation.store import Change, ModerationStore, now_ms
from portevoix_moderation.webhooks import WebhookNotifier

PRODUCER = "moderation"


def to_event(post: PostReceived, decision: Decision) -> PostModerated:
    d = decision.to_dict()
    return PostModerated(
        event_id=f"decision:{d['decision_id']}",
        occurred_at=datetime.now(UTC),
        producer=PRODUCER,
        decision_id=d["decision_id"],
        post_key=post.post_key,
        post_event_id=post.event_id,
        ambassador_id=post.ambassador_id,
        verdict=d["verdict"],
        findings=[FindingOut.model_validate(f) for f in d["findings"]],
        charter_version=d["charter_version"],
        engine_version=d["engine_version"],
        lang=d.get("lang"),
        content_hash=d["content_hash"],
    )


def to_check(p: PostReceived) -> PostToCheck:
    return PostToCheck(
        post_id=p.post_key,
        text=p.text,
        kind=p.kind,
        network=p.network,
        lang=p.lang,
        author_registered=True,  # ingest parks unknown authors
        author_consenting=True,  # and withholds non-consenting ones
        campaign=p.campaign,
        ambassador_id=p.ambassador_id,
        occurred_at=p.occurred_at,
    )


class ModerationPipeline:
    def __init__(
        self,
        engine: CharterEngine,
        store: ModerationStore,
        publisher: EventPublisher,
        *,
        notifier: WebhookNotifier | None = None,
        history: SharedPostHistory | None = None,
        vault: Vault | None = None,
    ) -> None:
        self.engine = engine  # replaced whole when a charter is activated (hot reload)
        self._store = store
        self._pub = publisher
        self._notifier = notifier
        self._history = history
        self._vault = vault

    async def handle(self, batch: Sequence[Delivery]) -> None:
        # Personal fields arrive sealed (crypto-shredding): the text is opened in memory for
        # the charter and stays sealed in the read model, so an erasure leaves nothing readable.
        stored_text: dict[str, str] = {}
        complete = [True] * len(batch)
        if self._vault is not None:
            bodies = [d.body for d in batch if isinstance(d.body, dict)]
            for b in bodies:
                if isinstance(b.get("text"), str) and isinstance(b.get("event_id"), str):
                    stored_text[b["event_id"]] = b["text"]
            opened = iter(await self._vault.open_events(bodies))
            complete = [next(opened) if isinstance(d.body, dict) else True for d in batch]
        posts: list[PostReceived] = []
        for d, whole in zip(batch, complete, strict=True):
            if not whole:
                # Its author was erased: nothing left to judge, nothing to store.
                ERASED_SKIPPED.inc()
                continue
            try:
                posts.append(PostReceived.model_validate(d.body))
            except ValidationError as exc:
                d.reject("invalid_event", f"not a valid post.received: {exc.errors()[0]['msg']}")
        if not posts:
            return
        if self._history is not None:
            await self._history.pull()
        engine = self.engine  # one charter for the whole batch, even if a reload lands now
        started = time.perf_counter()
        decisions = engine.check_many([to_check(p) for p in posts])
        CHECK_SECONDS.observe(time.perf_counter() - started)
        events = [to_event(p, dec) for p, dec in zip(posts, decisions, strict=True)]
        records, teams = await self._store.load(
            (p.post_key for p in posts), (p.ambassador_id for p in posts)
        )
        changes: list[Change] = []
        for p, ev in zip(posts, events, strict=True):
            rec, fx = on_decision(
                records.get(p.post_key), ev, text=stored_text.get(p.event_id, p.text),
                network=p.network,
                team=teams.get(p.ambassador_id), now_ms=now_ms(),
            )  # fmt: skip
            records[p.post_key] = rec  # a second version of the post in this batch sees it
            changes.append(Change(f"post:{p.event_id}", p.post_key, rec, fx, ev))
        applied = await self._store.apply(changes)
        plain = await self._texts(changes)
        await self._pub.publish_many(
            [Outgoing.of_event(EVENT_SUBJECTS["post.moderated"], e) for e in events]
        )
        if self._history is not None:
            await self._history.push()
        for c, new in zip(changes, applied, strict=True):
            if not new or c.decision is None:
                continue
            VERDICTS.labels(c.decision.verdict).inc()
            for f in c.decision.findings:
                FINDINGS.labels(f.rule, f.principle, f.verdict).inc()
            self._notify(c, plain, c.decision.decision_id)

    async def handle_human(self, batch: Sequence[Delivery]) -> None:
        """Reviews (approve / reject / take down) and appeals."""
        events: list[tuple[Delivery, PostReviewed | AppealFiled]] = []
        for d in batch:
            try:
                ev = validate_domain_event(d.body)
            except ValidationError as exc:
                d.reject("invalid_event", f"not a valid review or appeal: {exc.errors()[0]['msg']}")
                continue
            if not isinstance(ev, PostReviewed | AppealFiled):
                d.reject("invalid_event", f"unexpected event type {ev.type!r} on {d.subject}")
                continue
            events.append((d, ev))
        if not events:
            return
        records, _ = await self._store.load(ev.post_key for _, ev in events)
        changes: list[Change] = []
        for _, ev in events:
            prev = records.get(ev.post_key)
            if isinstance(ev, PostReviewed):
                rec, fx = on_review(prev, ev)
            else:
                rec, fx = on_appeal(prev, ev, now_ms())
            records[ev.post_key] = rec
            changes.append(Change(f"{ev.type}:{ev.event_id}", ev.post_key, rec, fx))
        applied = await self._store.apply(changes)
        plain = await self._texts(changes)
        for (_, ev), c, new in zip(events, changes, applied, strict=True):
            if not new:
                continue
            if isinstance(ev, PostReviewed):
                REVIEWS.labels(ev.outcome).inc()
                for rule in c.effects.overturned:
                    OVERTURNS.labels(rule).inc()
                self._notify(c, plain, ev.review_id, moderator=ev.moderator, outcome=ev.outcome,
                             note=ev.note)  # fmt: skip
            else:
                APPEALS.inc()
                self._notify(c, plain, ev.appeal_id, appeal=ev.message)

    async def _texts(self, changes: Sequence[Change]) -> dict[str, str | None]:
        """Sealed texts of the records a notification may quote, opened (in memory only)."""
        if self._vault is None or self._notifier is None:
            return {}
        return await self._vault.open_values(
            c.record.text for c in changes if c.record is not None and c.effects.notify
        )

    def _notify(
        self, c: Change, plain: dict[str, str | None], delivery_id: str, **extra: str | None
    ) -> None:
        """`plain`: the batch's sealed texts opened (passed along, not kept on the pipeline: the
        post and human consumers run concurrently on this one instance)."""
        if self._notifier is None or c.effects.notify is None or c.record is None:
            return
        rec = c.record
        if rec.text is not None and rec.text in plain:
            rec = replace(rec, text=plain[rec.text])
        self._notifier.offer(
            c.effects.notify, notification(c.effects.notify, rec, delivery_id=delivery_id,
                                           **extra)
        )  # fmt: skip

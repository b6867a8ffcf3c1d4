"""Moderation's bus adapter: posts → charter engine → decisions (stored and published)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from portevoix.contracts.events import EVENT_SUBJECTS, FindingOut, PostModerated, PostReceived
from portevoix.runtime.delivery import Delivery
from portevoix.runtime.publisher import EventPublisher, Outgoing
from portevoix_moderation.charter import CharterEngine, Decision, PostToCheck
from portevoix_moderation.decisions import DecisionStore
from portevoix_moderation.metrics import CHECK_SECONDS, FINDINGS, VERDICTS

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


class ModerationPipeline:
    def __init__(
        self, engine: CharterEngine, store: DecisionStore, publisher: EventPublisher
    ) -> None:
        self.engine = engine
        self._store = store
        self._pub = publisher

    async def handle(self, batch: Sequence[Delivery]) -> None:
        posts: list[PostReceived] = []
        for d in batch:
            try:
                posts.append(PostReceived.model_validate(d.body))
            except ValidationError as exc:
                d.reject("invalid_event", f"not a valid post.received: {exc.errors()[0]['msg']}")
        if not posts:
            return
        started = time.perf_counter()
        decisions = self.engine.check_many(
            [
                PostToCheck(
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
                for p in posts
            ]
        )
        CHECK_SECONDS.observe(time.perf_counter() - started)
        events = [to_event(p, dec) for p, dec in zip(posts, decisions, strict=True)]
        for ev in events:
            VERDICTS.labels(ev.verdict).inc()
            for f in ev.findings:
                FINDINGS.labels(f.rule, f.principle, f.verdict).inc()
        await self._store.save_many(events)
        await self._pub.publish_many(
            [Outgoing.of_event(EVENT_SUBJECTS["post.moderated"], e) for e in events]
        )

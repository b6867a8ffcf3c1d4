"""Moderation service: checks every post against the charter, publishes and stores a decision,
keeps the review queue, the audit trail and per-rule counters, hot-reloads charters."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from pathlib import Path

from portevoix.contracts.events import EVENT_SUBJECTS, PostModerated
from portevoix.runtime.delivery import Delivery
from portevoix.runtime.streams import EVENTS
from portevoix.runtime.vault import vault_from_settings
from portevoix.runtime.worker import BusWorker, require
from portevoix_moderation.charter import (
    Charter,
    CharterEngine,
    InMemoryPostHistory,
    default_charter,
    load_charter,
)
from portevoix_moderation.charter_lifecycle import CharterLifecycle, show_active
from portevoix_moderation.charter_validation import serve_validation
from portevoix_moderation.history_sync import SharedPostHistory
from portevoix_moderation.metrics import QUEUE_DEPTH, QUEUE_OLDEST
from portevoix_moderation.pipeline import ModerationPipeline
from portevoix_moderation.settings import ModerationSettings
from portevoix_moderation.store import ModerationStore
from portevoix_moderation.webhooks import WebhookNotifier

settings = ModerationSettings()
worker = BusWorker(
    "moderation",
    settings,
    description="Checks every post against the organisation's charter; every rule is evaluated "
    "and explained; publishes one decision per post; applies moderators' reviews and "
    "ambassadors' appeals; hot-reloads charter versions.",
)
pipeline: ModerationPipeline | None = None
lifecycle: CharterLifecycle | None = None
notifier: WebhookNotifier | None = None
_tasks: list[asyncio.Task[None]] = []


async def _ready() -> None:
    global pipeline, lifecycle, notifier
    redis = require(worker.redis, "redis")
    publisher = require(worker.publisher, "publisher")
    store = ModerationStore(redis)
    history: SharedPostHistory | None = None
    if settings.shared_history:
        history = SharedPostHistory(redis, max_entries=settings.history_max_posts)
        await history.load()
    notifier = WebhookNotifier(
        settings.moderation_webhooks,
        queue_size=settings.webhook_queue_size,
        attempts=settings.webhook_attempts,
        base_delay_s=settings.webhook_retry_base_s,
    )
    notifier.start()
    boot = load_charter(Path(settings.charter)) if settings.charter else default_charter()
    # Without sharing, each instance remembers only the posts it checked itself.
    local = InMemoryPostHistory(max_global=settings.history_max_posts)
    engine = CharterEngine(boot, history=history if history is not None else local)
    # First-use costs now, not inside the first batch. The language model is not loaded: few
    # posts need it (~45 MB resident once loaded), and the first one pays ~0.5 s.
    engine.warm_up()
    pipeline = ModerationPipeline(
        engine,
        store,
        publisher,
        notifier=notifier,
        history=history,
        vault=vault_from_settings(redis, settings),
    )

    def activate(charter: Charter) -> None:
        p = require(pipeline, "pipeline")
        if p.engine.charter is charter:
            return
        engine = CharterEngine(charter, history=p.engine.history)
        engine.warm_up()
        p.engine = engine
        show_active(charter)
        worker.log.info("charter active", extra={"pv": {"version": charter.version}})

    await serve_validation(worker.broker.connection)
    lifecycle = CharterLifecycle(store, publisher, activate, boot=boot)
    await lifecycle.start(require(worker.js, "jetstream"))
    _tasks.append(asyncio.create_task(_poll_queue(store)))


async def _poll_queue(store: ModerationStore, every_s: float = 5.0) -> None:
    """Queue gauges from Redis: every instance reports the shared queue."""
    while True:
        with contextlib.suppress(Exception):
            depth, oldest = await store.queue_state()
            QUEUE_DEPTH.set(depth)
            QUEUE_OLDEST.set(max(0.0, time.time() - oldest) if oldest is not None else 0.0)
        await asyncio.sleep(every_s)


async def handle_posts(batch: Sequence[Delivery]) -> None:
    await require(pipeline, "pipeline").handle(batch)


async def handle_human(batch: Sequence[Delivery]) -> None:
    await require(pipeline, "pipeline").handle_human(batch)


worker.on_ready(_ready)
worker.consume(
    stream=EVENTS,
    durable="moderation",
    subjects=[EVENT_SUBJECTS["post.received"]],
    handler=handle_posts,
    description="Posts to check against the charter.",
)
worker.consume(
    stream=EVENTS,
    durable="moderation-human",
    subjects=[EVENT_SUBJECTS["post.reviewed"], EVENT_SUBJECTS["appeal.filed"]],
    handler=handle_human,
    description="Moderators' reviews and takedowns, ambassadors' appeals: queue, audit trail, "
    "per-rule overturn counters.",
)
worker.document_publisher(
    EVENT_SUBJECTS["post.moderated"], PostModerated, "The charter decision on a post."
)
app = worker.app

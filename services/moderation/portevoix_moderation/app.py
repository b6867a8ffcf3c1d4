"""Moderation service: checks every post against the charter and publishes a decision."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from portevoix.contracts.events import EVENT_SUBJECTS, PostModerated
from portevoix.runtime.delivery import Delivery
from portevoix.runtime.streams import EVENTS
from portevoix.runtime.worker import BusWorker, require
from portevoix_moderation.charter import (
    CharterEngine,
    InMemoryPostHistory,
    default_charter,
    load_charter,
)
from portevoix_moderation.decisions import DecisionStore
from portevoix_moderation.pipeline import ModerationPipeline
from portevoix_moderation.settings import ModerationSettings

settings = ModerationSettings()
worker = BusWorker(
    "moderation",
    settings,
    description="Checks every post against the organisation's charter; every rule is evaluated "
    "and explained; publishes one decision per post.",
)
pipeline: ModerationPipeline | None = None


async def _ready() -> None:
    global pipeline
    charter = load_charter(Path(settings.charter)) if settings.charter else default_charter()
    pipeline = ModerationPipeline(
        CharterEngine(charter, history=InMemoryPostHistory()),
        DecisionStore(require(worker.redis, "redis")),
        require(worker.publisher, "publisher"),
    )


async def handle_posts(batch: Sequence[Delivery]) -> None:
    await require(pipeline, "pipeline").handle(batch)


worker.on_ready(_ready)
worker.consume(
    stream=EVENTS,
    durable="moderation",
    subjects=[EVENT_SUBJECTS["post.received"]],
    handler=handle_posts,
    description="Posts to check against the charter.",
)
worker.document_publisher(
    EVENT_SUBJECTS["post.moderated"], PostModerated, "The charter decision on a post."
)
app = worker.app

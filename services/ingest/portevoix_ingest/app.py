"""Ingest service: raw input (contract v1) → validated, normalised domain events."""

from __future__ import annotations

from collections.abc import Sequence

from portevoix.contracts.events import (
    EVENT_SUBJECTS,
    AmbassadorRegistered,
    EngagementReceived,
    PostReceived,
)
from portevoix.runtime.delivery import Delivery
from portevoix.runtime.streams import RAW
from portevoix.runtime.worker import BusWorker, require
from portevoix_ingest.directory import AmbassadorDirectory
from portevoix_ingest.pipeline import IngestPipeline
from portevoix_ingest.settings import IngestSettings

settings = IngestSettings()
worker = BusWorker(
    "ingest",
    settings,
    description="Validates and normalises raw activity (ingest contract v1), resolves "
    "ambassador handles, parks unknown handles, publishes domain events.",
)
pipeline: IngestPipeline | None = None


async def _ready() -> None:
    global pipeline
    pipeline = IngestPipeline(
        AmbassadorDirectory(require(worker.redis, "redis")),
        require(worker.publisher, "publisher"),
        settings,
    )


async def handle_raw(batch: Sequence[Delivery]) -> None:
    await require(pipeline, "pipeline").handle(batch)


worker.on_ready(_ready)
worker.consume(
    stream=RAW,
    durable="ingest",
    subjects=["pv.raw.>"],
    handler=handle_raw,
    description="Raw events (ingest contract v1), one JSON object per message.",
)
worker.document_publisher(
    EVENT_SUBJECTS["ambassador.registered"], AmbassadorRegistered, "An ambassador registered."
)
worker.document_publisher(EVENT_SUBJECTS["post.received"], PostReceived, "A post, normalised.")
worker.document_publisher(
    EVENT_SUBJECTS["engagement.received"], EngagementReceived, "Engagement on a post."
)
app = worker.app

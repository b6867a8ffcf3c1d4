"""Ingest service: raw input (contract v1) → validated, normalised domain events; the ambassador
directory; signed webhooks (answered for the API over NATS request/reply); GDPR erasure."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from portevoix.contracts.events import (
    EVENT_SUBJECTS,
    AmbassadorRegistered,
    EngagementReceived,
    PostReceived,
)
from portevoix.runtime.delivery import Delivery
from portevoix.runtime.streams import RAW
from portevoix.runtime.vault import vault_from_settings
from portevoix.runtime.worker import BusWorker, require
from portevoix_ingest.directory import AmbassadorDirectory
from portevoix_ingest.domain.normalise import detect_language
from portevoix_ingest.domain.privacy import AmbassadorErased
from portevoix_ingest.metrics import PARKED_HANDLES, PARKED_ITEMS
from portevoix_ingest.pipeline import ERASED_SUBJECT, IngestPipeline
from portevoix_ingest.settings import IngestSettings
from portevoix_ingest.webhook_gateway import WebhookGateway

settings = IngestSettings()
worker = BusWorker(
    "ingest",
    settings,
    description="Validates and normalises raw activity (ingest contract v1), resolves "
    "ambassador handles, parks unknown handles, deduplicates facts by natural key, answers "
    "signed webhooks, carries out GDPR erasures, publishes domain events.",
)
pipeline: IngestPipeline | None = None
directory: AmbassadorDirectory | None = None
_background: list[asyncio.Task[None]] = []


async def _poll_parked() -> None:
    while True:
        with contextlib.suppress(Exception):
            handles, items = await require(directory, "directory").parked_stats()
            PARKED_HANDLES.set(handles)
            PARKED_ITEMS.set(items)
        await asyncio.sleep(settings.parked_poll_s)


async def _ready() -> None:
    global pipeline, directory
    directory = AmbassadorDirectory.from_settings(require(worker.redis, "redis"), settings)
    publisher = require(worker.publisher, "publisher")
    redis = require(worker.redis, "redis")
    pipeline = IngestPipeline(directory, publisher, settings, vault_from_settings(redis, settings))
    # Load the language model now (about a second), not inside the first batch.
    detect_language("Bonjour, warming up the language model.", settings.allowed_languages)
    await WebhookGateway(settings, publisher).subscribe(worker.broker.connection)
    _background.append(asyncio.create_task(_poll_parked()))
    # The worker freezes what is allocated by now (the language model's tables too) once it
    # is ready: see portevoix.runtime.gc_tuning.


async def handle_raw(batch: Sequence[Delivery]) -> None:
    await require(pipeline, "pipeline").handle(batch)


worker.on_ready(_ready)
worker.consume(
    stream=RAW,
    durable="ingest",
    subjects=["pv.raw.>"],
    handler=handle_raw,
    description="Raw events (ingest contract v1), one JSON object per message; GDPR erasure "
    "requests on pv.raw.erasure.v1.",
    # Ingest's Redis and PubAck round trips are per batch: a backlog drains in bigger ones
    # (2,000 saves a little more CPU but holds ~13 MB more, past the 150 MB RSS budget).
    backlog_batch_size=2 * settings.batch_size,
)
worker.document_publisher(
    EVENT_SUBJECTS["ambassador.registered"], AmbassadorRegistered, "An ambassador registered."
)
worker.document_publisher(EVENT_SUBJECTS["post.received"], PostReceived, "A post, normalised.")
worker.document_publisher(
    EVENT_SUBJECTS["engagement.received"], EngagementReceived, "Engagement on a post."
)
worker.document_publisher(
    ERASED_SUBJECT,
    AmbassadorErased,
    "An ambassador's personal data was erased (GDPR art. 17): remove or anonymise what you "
    "derived from it, keep anonymous aggregates.",
)
app = worker.app

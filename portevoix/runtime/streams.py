"""The event backbone, declared in one place: streams, subjects, durable consumers.

- PV_RAW    `pv.raw.>`   raw input (ingest contract v1), kept 7 days for re-ingestion.
- PV_EVENTS `pv.evt.>`   domain events: the log projections are rebuilt from; kept 1 year.
- PV_DLQ    `pv.dlq.>`   dead letters with the reason and the original payload; kept 30 days.
All on file storage with an explicit retention, and a duplicate window so a re-sent
`Nats-Msg-Id` is dropped by the server itself.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

DAY = 24 * 3600

RAW_SUBJECT = "pv.raw.v1"
ERASURE_SUBJECT = "pv.raw.erasure.v1"  # GDPR erasure requests, ordered with the raw input
# Core NATS request/reply (not a stream): the API hands signed webhooks to ingest, which holds
# the per-network secrets and the payload adapters.
WEBHOOK_RPC_SUBJECT = "pv.rpc.ingest.webhook.v1"
# Likewise the API asks moderation (which owns the charter engine) to validate a charter.
CHARTER_VALIDATE_RPC_SUBJECT = "pv.rpc.moderation.charter.validate.v1"
# …and scoring (which owns the points rules) to validate a points table.
POINTS_TABLE_VALIDATE_RPC_SUBJECT = "pv.rpc.scoring.table.validate.v1"
WEBHOOK_SUBJECT_PREFIX = "pv.raw.webhook"  # pv.raw.webhook.<network>
DLQ_SUBJECT_PREFIX = "pv.dlq"  # pv.dlq.<service>


def dlq_subject(service: str) -> str:
    return f"{DLQ_SUBJECT_PREFIX}.{service}"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age_s: int
    duplicate_window_s: int
    description: str

    def config(self, replicas: int) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description=self.description,
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=float(self.max_age_s),
            duplicate_window=float(self.duplicate_window_s),
            num_replicas=replicas,
        )


RAW = StreamSpec("PV_RAW", ("pv.raw.>",), 7 * DAY, 15 * 60, "Raw input, ingest contract v1")
EVENTS = StreamSpec("PV_EVENTS", ("pv.evt.>",), 365 * DAY, 15 * 60, "Porte-Voix domain events")
DLQ = StreamSpec("PV_DLQ", ("pv.dlq.>",), 30 * DAY, 15 * 60, "Dead letters with their reason")
STREAMS: tuple[StreamSpec, ...] = (RAW, EVENTS, DLQ)


async def ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Create or update every stream so deployments converge on this file's settings."""
    for spec in STREAMS:
        cfg = spec.config(replicas)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(cfg)
        else:
            await js.update_stream(cfg)


async def ensure_streams_patiently(
    js: JetStreamContext,
    replicas: int = 1,
    *,
    attempts: int = 30,
    log: logging.Logger | None = None,
) -> None:
    """`ensure_streams` with back-off: a cluster that just started, lost a node or is electing a
    leader answers slowly (or times out) for a while; exiting would only make the supervisor
    restart the service into the same wait."""
    for attempt in range(1, attempts + 1):
        try:
            await ensure_streams(js, replicas=replicas)
            return
        except Exception as exc:
            if attempt == attempts:
                raise
            if log is not None:
                log.warning(
                    "streams not ready, retrying",
                    extra={"pv": {"attempt": attempt, "error": repr(exc)[:200]}},
                )
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))


def durable_consumer(
    durable: str,
    *,
    filter_subjects: list[str],
    max_deliver: int,
    ack_wait_s: float,
    max_ack_pending: int = 20_000,
) -> ConsumerConfig:
    """A durable pull consumer with explicit acks and bounded redelivery."""
    return ConsumerConfig(
        durable_name=durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_deliver=max_deliver,
        max_ack_pending=max_ack_pending,
        filter_subjects=filter_subjects if len(filter_subjects) > 1 else None,
        filter_subject=filter_subjects[0] if len(filter_subjects) == 1 else None,
    )

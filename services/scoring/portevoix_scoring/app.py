"""Scoring service: domain events → points, ledgers and leaderboards in Redis."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from portevoix.contracts.events import EVENT_SUBJECTS
from portevoix.runtime.delivery import Delivery
from portevoix.runtime.streams import EVENTS
from portevoix.runtime.worker import BusWorker, require
from portevoix_scoring.domain.scorer import Scorer
from portevoix_scoring.domain.table import default_table, load_table
from portevoix_scoring.pipeline import ScoringPipeline
from portevoix_scoring.settings import ScoringSettings
from portevoix_scoring.store import ScoreStore

settings = ScoringSettings()
worker = BusWorker(
    "scoring",
    settings,
    description="Awards points for posts and the engagement they earn, holding them while a "
    "post awaits or is in review; writes ledgers and leaderboards.",
)
pipeline: ScoringPipeline | None = None


async def _ready() -> None:
    global pipeline
    table = load_table(Path(settings.points_table)) if settings.points_table else default_table()
    store = await ScoreStore.open(require(worker.redis, "redis"))
    pipeline = ScoringPipeline(Scorer(table, ZoneInfo(settings.timezone)), store)


async def handle_events(batch: Sequence[Delivery]) -> None:
    await require(pipeline, "pipeline").handle(batch)


worker.on_ready(_ready)
worker.consume(
    stream=EVENTS,
    durable="scoring",
    subjects=[
        EVENT_SUBJECTS["post.received"],
        EVENT_SUBJECTS["engagement.received"],
        EVENT_SUBJECTS["post.moderated"],
    ],
    handler=handle_events,
    description="Posts, engagement and moderation verdicts.",
)
app = worker.app

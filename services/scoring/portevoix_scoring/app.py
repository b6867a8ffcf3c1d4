"""Scoring service: domain events → points, ledgers, leaderboards, reach and badges in Redis."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from portevoix.contracts.events import EVENT_SUBJECTS, BadgeAwarded
from portevoix.runtime.delivery import Delivery
from portevoix.runtime.gc_tuning import SCORING_YOUNG_THRESHOLD
from portevoix.runtime.streams import EVENTS
from portevoix.runtime.worker import BusWorker, require
from portevoix_scoring.domain.scorer import Scorer
from portevoix_scoring.domain.table import default_table, load_table
from portevoix_scoring.pipeline import ScoringPipeline
from portevoix_scoring.settings import ScoringSettings
from portevoix_scoring.store import ScoreStore
from portevoix_scoring.table_validation import serve_validation

SUBJECTS = [
    EVENT_SUBJECTS["ambassador.registered"],
    EVENT_SUBJECTS["ambassador.erased"],
    EVENT_SUBJECTS["post.received"],
    EVENT_SUBJECTS["engagement.received"],
    EVENT_SUBJECTS["post.moderated"],
    EVENT_SUBJECTS["post.reviewed"],
    EVENT_SUBJECTS["points_table.published"],
]

settings = ScoringSettings()
worker = BusWorker(
    "scoring",
    settings,
    description="Awards points for posts and the engagement they earn, holding them while a "
    "post awaits or is in review; writes ledgers, leaderboards, reach and badges.",
    young_gc=SCORING_YOUNG_THRESHOLD,
)
pipeline: ScoringPipeline | None = None


async def _ready() -> None:
    global pipeline
    configured = (
        load_table(Path(settings.points_table)) if settings.points_table else default_table()
    )
    # The live generation's table wins: it is what history was computed with (a new table
    # takes effect through `portevoix scores rebuild --table`).
    store, table = await ScoreStore.open(require(worker.redis, "redis"), configured)
    pipeline = ScoringPipeline(
        Scorer(table, ZoneInfo(settings.timezone)),
        store,
        publisher=require(worker.publisher, "publisher"),
    )
    await serve_validation(worker.broker.connection)
    if table.version != configured.version:
        worker.log.warning(
            "configured points table differs from the live generation's; run a rebuild to use it",
            extra={"pv": {"live": table.version, "configured": configured.version}},
        )


async def handle_events(batch: Sequence[Delivery]) -> None:
    await require(pipeline, "pipeline").handle(batch)


worker.on_ready(_ready)
worker.consume(
    stream=EVENTS,
    durable="scoring",
    subjects=SUBJECTS,
    handler=handle_events,
    description="Ambassadors (registered, erased), posts, engagement, moderation verdicts and "
    "reviews, points tables.",
)
worker.document_publisher(
    EVENT_SUBJECTS["badge.awarded"],
    BadgeAwarded,
    "A badge or level an ambassador earned; each is awarded once (event id "
    "`badge:<ambassador_id>:<badge>`).",
)
app = worker.app

"""`portevoix score --jsonl EVENTS`: final totals per ambassador, offline, with the platform's own
pure cores composed in one process: ingest's normalisation (handles, consent, parking of posts by
unknown authors), moderation's charter engine (default charter) and scoring's scorer.

Only this command composes services' cores; the running services never import one another.
Differences with the platform, by design: no clock (events are not refused for being too old or
in the future), and each post is moderated as soon as it is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from pydantic import ValidationError

from portevoix.contracts.events import PostModerated, PostReceived
from portevoix.contracts.ingest import (
    AmbassadorIn,
    EngagementIn,
    ErasureRequested,
    PostIn,
    parse_ingest_event,
)
from portevoix_ingest.domain.normalise import (
    to_ambassador_registered,
    to_engagement_received,
    to_post_received,
)
from portevoix_ingest.domain.privacy import to_ambassador_erased
from portevoix_moderation.charter import (
    CharterEngine,
    InMemoryPostHistory,
    PostToCheck,
    default_charter,
    load_charter,
)
from portevoix_scoring.domain.projection import Projection
from portevoix_scoring.domain.scorer import EMV_UNIT, points_out
from portevoix_scoring.domain.table import PointsTable

PRODUCER = "offline"
ERASURE_TYPE = "ambassador.erasure_requested"


@dataclass
class _Directory:
    """Ingest's ambassador directory, in memory."""

    handles: dict[tuple[str, str], str] = field(default_factory=dict)
    consent: dict[str, bool] = field(default_factory=dict)
    owned: dict[str, dict[str, str]] = field(default_factory=dict)
    parked: dict[tuple[str, str], dict[str, PostIn]] = field(default_factory=dict)
    teams: dict[str, str] = field(default_factory=dict)
    # Handles of erased ambassadors: their activity still in the log is dropped, as ingest drops
    # it while its tombstones live (no clock here: for good).
    erased: set[tuple[str, str]] = field(default_factory=set)

    def register(self, a: AmbassadorIn) -> list[PostIn]:
        for network, handle in self.owned.get(a.ambassador_id, {}).items():
            if a.handles.get(network) != handle:  # type: ignore[call-overload]
                self.handles.pop((network, handle), None)
        new = {str(k): v for k, v in a.handles.items()}
        self.owned[a.ambassador_id] = new
        self.consent[a.ambassador_id] = a.consent
        self.teams[a.ambassador_id] = a.team
        replay: list[PostIn] = []
        for network, handle in new.items():
            self.handles[(network, handle)] = a.ambassador_id
            self.erased.discard((network, handle))
            replay += self.parked.pop((network, handle), {}).values()
        return replay

    def erase(self, ambassador_id: str) -> tuple[str | None, list[str], bool]:
        """Ingest's erasure: directory entry, handles and what is parked under them go; the
        handles are tombstoned. (team, networks, whether anything was held)."""
        owned = self.owned.pop(ambassador_id, {})
        existed = ambassador_id in self.consent
        self.consent.pop(ambassador_id, None)
        for network, handle in owned.items():
            self.handles.pop((network, handle), None)
            self.parked.pop((network, handle), None)
            self.erased.add((network, handle))
        return self.teams.pop(ambassador_id, None), sorted(owned), existed

    def resolve(self, network: str, handle: str) -> tuple[str, bool] | None:
        aid = self.handles.get((network, handle))
        return None if aid is None else (aid, self.consent.get(aid, False))


class OfflineScoring:
    def __init__(self, table: PointsTable, tz: ZoneInfo, charter_path: str | None = None) -> None:
        charter = load_charter(charter_path) if charter_path else default_charter()
        self.engine = CharterEngine(charter, history=InMemoryPostHistory())
        self.projection = Projection(table, tz)
        self.directory = _Directory()
        self.counts = {"lines": 0, "invalid": 0, "parked": 0, "withheld": 0}
        self.verdicts: dict[str, int] = {}

    def feed(self, lines: Iterable[bytes | str]) -> None:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            self.counts["lines"] += 1
            try:
                data = orjson.loads(line)
                if isinstance(data, dict) and data.get("type") == ERASURE_TYPE:
                    # `pv.raw.erasure.v1`, in the log's order.
                    self.erase(ErasureRequested.model_validate(data))
                    continue
                event = parse_ingest_event(data)
            except (orjson.JSONDecodeError, ValidationError):
                self.counts["invalid"] += 1
                continue
            self.ingest(event, line_no=n)

    def erase(self, request: ErasureRequested) -> None:
        parked = sum(
            len(self.directory.parked.get((n, h), {}))
            for n, h in self.directory.owned.get(request.ambassador_id, {}).items()
        )
        team, networks, existed = self.directory.erase(request.ambassador_id)
        self.counts["parked"] -= parked
        self.counts["erased"] = self.counts.get("erased", 0) + 1
        self.projection.apply(
            to_ambassador_erased(request, PRODUCER, request.requested_at, team=team,
                                 networks=networks, existed=existed)
        )  # fmt: skip

    def ingest(self, event: AmbassadorIn | PostIn | EngagementIn, line_no: int = 0) -> None:
        if isinstance(event, AmbassadorIn):
            at = datetime.now(UTC)
            self.projection.apply(to_ambassador_registered(event, PRODUCER, at))
            for parked in self.directory.register(event):
                self.counts["parked"] -= 1
                self.ingest(parked)
            return
        if isinstance(event, PostIn):
            who = self.directory.resolve(event.network, event.author)
            if who is None and (event.network, event.author) in self.directory.erased:
                self.counts["erased_dropped"] = self.counts.get("erased_dropped", 0) + 1
                return
            if who is None:
                self.directory.parked.setdefault((event.network, event.author), {})[
                    event.event_id
                ] = event
                self.counts["parked"] += 1
                return
            if not who[1]:
                self.counts["withheld"] += 1
                return
            post = to_post_received(event, who[0], PRODUCER)
            self.projection.apply(post)
            self.projection.apply(self.moderate(post))
            return
        who = self.directory.resolve(event.network, event.actor)
        if who is None and (event.network, event.actor) in self.directory.erased:
            self.counts["erased_dropped"] = self.counts.get("erased_dropped", 0) + 1
            return
        if who is not None and not who[1]:
            self.counts["withheld"] += 1
            return
        self.projection.apply(to_engagement_received(event, who[0] if who else None, PRODUCER))

    def moderate(self, post: PostReceived) -> PostModerated:
        decision = self.engine.check(
            PostToCheck(
                post_id=post.post_key, text=post.text, kind=post.kind, network=post.network,
                lang=post.lang, author_registered=True, author_consenting=True,
                campaign=post.campaign, ambassador_id=post.ambassador_id,
                occurred_at=post.occurred_at,
            )
        )  # fmt: skip
        d = decision.to_dict()
        self.verdicts[d["verdict"]] = self.verdicts.get(d["verdict"], 0) + 1
        return PostModerated(
            event_id=f"decision:{d['decision_id']}", occurred_at=post.occurred_at,
            producer=PRODUCER, decision_id=d["decision_id"], post_key=post.post_key,
            post_event_id=post.event_id, ambassador_id=post.ambassador_id, verdict=d["verdict"],
            charter_version=d["charter_version"], engine_version=d["engine_version"],
            content_hash=d["content_hash"],
        )  # fmt: skip

    def report(self) -> dict[str, Any]:
        p = self.projection
        ambassadors: dict[str, Any] = {}
        for aid in sorted(set(p.book.states) | set(p.reach)):
            if p.book.ambassador(aid).erased:
                continue  # a tombstone: nothing personal to report
            reach = p.reach.get(aid, {})
            ambassadors[aid] = {
                "points": p.totals().get(aid, 0),
                "reach": {k: v for k, v in reach.items() if not k.startswith("emv:")},
                "emv": {
                    k[4:]: round(v / EMV_UNIT, 2) for k, v in reach.items() if k.startswith("emv:")
                },
                "badges": p.badges.get(aid, []),
            }
        return {
            "totals": p.totals(),
            "teams": {t: points_out(cp) for t, cp in sorted(p.teams.get("all", {}).items())},
            "table_version": p.table.version,
            "counts": {**self.counts, "scored_events": p.events},
            "verdicts": self.verdicts,
            "ambassadors": ambassadors,
        }

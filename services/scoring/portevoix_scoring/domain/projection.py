"""Scoring's read models in memory: what `portevoix score` computes offline, with the scorer the
service runs. The service keeps the same projections in Redis (see `store.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from portevoix.contracts.periods import periods_of
from portevoix.contracts.readmodels import ORG_ONLY
from portevoix_scoring.domain.post_state import PostState
from portevoix_scoring.domain.scorer import (
    AmbassadorBook,
    Effects,
    LedgerEntry,
    Scored,
    Scorer,
    points_out,
    post_of,
    reaction_of,
)
from portevoix_scoring.domain.table import PointsTable


@dataclass
class Projection:
    table: PointsTable
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    keep_ledger: bool = False

    def __post_init__(self) -> None:
        self.scorer = Scorer(self.table, self.tz)
        self.book = AmbassadorBook()
        self.posts: dict[str, PostState] = {}
        self.reactions: set[tuple[str, str, str]] = set()
        self.seen: set[str] = set()
        self.boards: dict[str, dict[str, int]] = {}  # period -> ambassador -> centipoints
        self.teams: dict[str, dict[str, int]] = {}  # period -> team -> centipoints
        self.reach: dict[str, dict[str, int]] = {}  # ambassador -> counter -> value
        self.org: dict[str, int] = {}  # organisation's counters (stats total)
        self.badges: dict[str, list[str]] = {}
        self.ledger: list[LedgerEntry] = []
        self.events = 0

    def apply(self, event: Scored) -> Effects | None:
        if event.event_id in self.seen:
            return None  # exactly once, like the service's markers
        self.seen.add(event.event_id)
        self.events += 1
        post = None
        post_key = post_of(event)
        if post_key is not None:
            post = self.posts.get(post_key)
            if post is None:
                post = self.posts[post_key] = PostState(post_key)
        reaction = reaction_of(event)
        fx = self.scorer.apply(event, post, self.book, reacted=reaction in self.reactions)
        if fx.reaction and reaction is not None:
            self.reactions.add(reaction)
        for c in fx.credits:
            for period in periods_of(c.day):
                if c.ambassador_id is not None:
                    board = self.boards.setdefault(period, {})
                    board[c.ambassador_id] = board.get(c.ambassador_id, 0) + c.points
                if c.team:
                    teams = self.teams.setdefault(period, {})
                    teams[c.team] = teams.get(c.team, 0) + c.points
        for r in fx.reach:
            for k, v in r.values.items():
                self.org[k] = self.org.get(k, 0) + v
            if r.ambassador_id is not None:
                counters = self.reach.setdefault(r.ambassador_id, {})
                for k, v in r.values.items():
                    if not k.startswith(ORG_ONLY):  # by network: the organisation's only
                        counters[k] = counters.get(k, 0) + v
        for b in fx.badges:
            self.badges.setdefault(b.ambassador_id, []).append(b.badge)
        if self.keep_ledger:
            self.ledger += fx.ledger
        for aid in fx.erased:
            self.erase(aid)
        return fx

    def erase(self, ambassador_id: str) -> None:
        """What the service's erasure step removes: the person on every board, their counters,
        badges and ledger (team boards and organisation totals stay)."""
        for board in self.boards.values():
            board.pop(ambassador_id, None)
        self.reach.pop(ambassador_id, None)
        self.badges.pop(ambassador_id, None)
        self.reactions = {r for r in self.reactions if r[2] != ambassador_id}
        if self.keep_ledger:
            self.ledger = [e for e in self.ledger if e.ambassador_id != ambassador_id]

    def totals(self) -> dict[str, int | float]:
        """All-time points per ambassador (as people read them), highest first."""
        board = self.boards.get("all", {})
        ranked = sorted(board.items(), key=lambda kv: (-kv[1], kv[0]))
        return {aid: points_out(cp) for aid, cp in ranked}

"""The points rules as a pure state machine: (post state, event) → new state + effects.

The service applies the effects atomically in Redis; `portevoix score` applies them in memory.
Both run this code, which is what makes online and offline results equal.

Lifecycle of a post's points (the post's author earns them, for the post and its engagement):
- unseen (engagement before its post) or pending (no verdict yet) → held;
- verdict allow/nudge → released: every held item is paid, later items are paid at once;
- verdict review → still held (released on approval);
- verdict block → held items are voided, nothing is ever paid;
- a paid post that is later blocked (re-moderation) → every point paid is reversed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from portevoix.contracts.events import EngagementReceived, PostModerated, PostReceived
from portevoix_scoring.domain.post_state import HeldItem, PostState
from portevoix_scoring.domain.table import PointsTable


@dataclass(frozen=True)
class LedgerEntry:
    """One line of an ambassador's ledger: every point is traceable to an event and a rule."""

    ambassador_id: str
    op: str  # award | hold | release | void | reverse
    points: int
    rule: str
    event_id: str
    post_key: str
    at: str  # when the action happened

    def as_dict(self) -> dict[str, object]:
        return {
            "op": self.op,
            "points": self.points,
            "rule": self.rule,
            "event_id": self.event_id,
            "post_key": self.post_key,
            "at": self.at,
        }


@dataclass(frozen=True)
class Credit:
    """A change of an ambassador's score, counted in the periods of `day` (organisation's zone)."""

    ambassador_id: str
    points: int
    day: str  # YYYY-MM-DD, local to the organisation


@dataclass
class Effects:
    ledger: list[LedgerEntry] = field(default_factory=list)
    credits: list[Credit] = field(default_factory=list)


def _iso(ts: datetime) -> str:
    return ts.isoformat()


class Scorer:
    def __init__(self, table: PointsTable, tz: ZoneInfo | None = None) -> None:
        self.table = table
        self.tz = tz or ZoneInfo("UTC")

    def local_day(self, at: str) -> str:
        return datetime.fromisoformat(at).astimezone(self.tz).date().isoformat()

    def apply(
        self, state: PostState, event: PostReceived | EngagementReceived | PostModerated
    ) -> Effects:
        if isinstance(event, PostReceived):
            return self.on_post(state, event)
        if isinstance(event, EngagementReceived):
            return self.on_engagement(state, event)
        return self.on_moderated(state, event)

    # -- events ----------------------------------------------------------------------------
    def on_post(self, state: PostState, ev: PostReceived) -> Effects:
        fx = Effects()
        if state.author is not None:
            return fx  # the post is already known (an edit or a replay): its points are set
        state.author, state.kind = ev.ambassador_id, ev.kind
        rule = "original_post" if ev.kind == "original" else "relay"
        items = [HeldItem(ev.event_id, rule, self.table.points(rule), _iso(ev.occurred_at))]
        items += state.held  # engagement that arrived before its post
        state.held = []
        for item in items:
            self._earn(state, item, fx)
        return fx

    def on_engagement(self, state: PostState, ev: EngagementReceived) -> Effects:
        fx = Effects()
        item = HeldItem(
            ev.event_id,
            ev.engagement,
            self.table.points(ev.engagement),
            _iso(ev.occurred_at),
            ev.actor_ambassador_id,
        )
        if state.author is None:
            state.held.append(item)  # kept until its post arrives
            return fx
        self._earn(state, item, fx)
        return fx

    def on_moderated(self, state: PostState, ev: PostModerated) -> Effects:
        fx = Effects()
        state.verdict = ev.verdict
        if state.author is None:
            return fx  # verdict before post (redelivery order): applied when the post arrives
        status = state.status
        if status == "released":
            for item in state.held:
                self._pay(state, item, fx, op="release")
            state.held = []
        elif status == "blocked":
            for item in state.held:
                fx.ledger.append(self._entry(state, item, "void", 0))
            state.held = []
            for day, pts in sorted(state.credited.items()):
                if pts:
                    fx.ledger.append(
                        LedgerEntry(state.author, "reverse", -pts, "takedown",
                                    ev.event_id, state.post_key, day)
                    )  # fmt: skip
                    fx.credits.append(Credit(state.author, -pts, day))
            state.credited = {}
        return fx

    # -- rules -----------------------------------------------------------------------------
    def _earn(self, state: PostState, item: HeldItem, fx: Effects) -> None:
        assert state.author is not None
        if item.actor is not None and item.actor == state.author and item.rule != "original_post":
            fx.ledger.append(self._entry(state, item, "void", 0, rule=f"{item.rule}:self"))
            return  # no points for engaging with one's own post
        status = state.status
        if status == "released":
            self._pay(state, item, fx, op="award")
        elif status == "blocked":
            fx.ledger.append(self._entry(state, item, "void", 0))
        else:
            state.held.append(item)
            fx.ledger.append(self._entry(state, item, "hold", item.points))

    def _pay(self, state: PostState, item: HeldItem, fx: Effects, *, op: str) -> None:
        assert state.author is not None
        fx.ledger.append(self._entry(state, item, op, item.points))
        if item.points:
            day = self.local_day(item.at)
            fx.credits.append(Credit(state.author, item.points, day))
            state.credited[day] = state.credited.get(day, 0) + item.points

    @staticmethod
    def _entry(
        state: PostState, item: HeldItem, op: str, points: int, rule: str | None = None
    ) -> LedgerEntry:
        assert state.author is not None
        return LedgerEntry(
            state.author, op, points, rule or item.rule, item.event_id, state.post_key, item.at
        )

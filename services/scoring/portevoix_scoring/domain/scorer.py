"""The points rules as a pure state machine: (states, event) → new states + effects.

The service applies the effects atomically in Redis; `portevoix score` and the rebuild apply them
with the same code, which is what makes online, offline and rebuilt results equal.

Lifecycle of a post's points (the post's author earns them, for the post and its engagement):
- unseen (engagement before its post) or pending (no verdict yet) → held;
- verdict allow/nudge, or a moderator's approval → released: every held item is paid, later items
  are paid at once; a moderator's decision overrides the automated verdict;
- verdict review → still held (released on approval);
- verdict block or rejection → held items are voided, nothing is paid (an approval restores them);
- a paid post later blocked, rejected or taken down → every point paid is reversed.

Fair play, applied when an item is earned (its post's author known): no points for engaging with
one's own post (but an author's comment on it is a `reply`); one like and one share per actor per
post; fellow ambassadors' engagement weighted; reciprocal colleague rings discounted; daily caps
per ambassador and action in the organisation's time zone.

GDPR erasure (`ambassador.erased`): the author's state becomes a tombstone (team, era). Points of
an erased author's posts (engagement arriving later, held items released, reversals) still move
the team and organisation aggregates, but nothing personal: no ambassador, team-member or
campaign board entry, no ledger line, no counter, no badge. Caps and rings need per-person
history, which is gone: such points are table × campaign × colleague weight, uncapped (the
default caps limit what the ambassador does, and ingest drops an erased person's own activity).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

import orjson

from portevoix.contracts.events import (
    AmbassadorErased,
    AmbassadorRegistered,
    EngagementReceived,
    PostModerated,
    PostReceived,
    PostReviewed,
)
from portevoix.contracts.periods import day_text
from portevoix_scoring.domain.ambassador_state import AmbassadorState, ColleaguePairs
from portevoix_scoring.domain.post_state import HeldItem, PostState
from portevoix_scoring.domain.table import CP, Badge, PointsTable

Scored = (
    PostReceived
    | EngagementReceived
    | PostModerated
    | PostReviewed
    | AmbassadorRegistered
    | AmbassadorErased
)
EMV_UNIT = 10_000  # EMV is accumulated in 1/10,000 of a currency unit: integer, exact sums
REACTIONS = ("like", "share", "comment")


_NO_POST = (AmbassadorRegistered, AmbassadorErased)  # a tuple: isinstance is faster than on a union
_OWN = (AmbassadorRegistered, AmbassadorErased, PostReceived)  # events naming their ambassador


def post_of(event: Scored) -> str | None:
    """The key of the post an event is about (None: an ambassador's own event)."""
    if isinstance(event, EngagementReceived):  # most events: a matching isinstance is cheaper
        return event.post_key
    return None if isinstance(event, _NO_POST) else event.post_key


def reaction_of(event: Scored) -> tuple[str, str, str] | None:
    """(post key, kind, actor) of a like or share: one counts per actor per post."""
    if isinstance(event, EngagementReceived) and event.engagement in ("like", "share"):
        return event.post_key, event.engagement, event.actor_ambassador_id or event.actor
    return None


def points_out(cp: int) -> int | float:
    """Centipoints as the points people read: 1050 → 10.5, 1000 → 10."""
    return cp // CP if cp % CP == 0 else cp / CP


# Effect records are built several times per event: plain slotted dataclasses (a frozen one
# costs about five times as much to build). Nothing mutates them after `apply` returns.
# Their `__init__` is written out: compiled (mypyc), a dataclass's generated `__init__` stays
# interpreted, and building one cost 3.6× as much as with this (171 → 47 ns).
@dataclass(slots=True)
class LedgerEntry:
    """One line of an ambassador's ledger: every point is traceable to an event and a rule."""

    ambassador_id: str
    op: str  # award | hold | release | void | reverse
    points: int  # centipoints
    rule: str  # the table action, with a suffix naming a fair-play rule (":cap", ":colleague"…)
    event_id: str
    post_key: str
    at: str  # when the action happened
    cause: str | None = None  # the event that caused a release, void or reversal

    def __init__(
        self, ambassador_id: str, op: str, points: int, rule: str, event_id: str, post_key: str,
        at: str, cause: str | None = None,
    ) -> None:  # fmt: skip
        self.ambassador_id, self.op, self.points, self.rule = ambassador_id, op, points, rule
        self.event_id, self.post_key, self.at, self.cause = event_id, post_key, at, cause

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "op": self.op,
            "points": points_out(self.points),
            "rule": self.rule,
            "event_id": self.event_id,
            "post_key": self.post_key,
            "at": self.at,
        }
        if self.cause:
            d["cause"] = self.cause
        return d

    def to_json(self) -> bytes:
        """The ledger line as stored in Redis."""
        return orjson.dumps(self.as_dict())


@dataclass(slots=True)
class Credit:
    """A change of an ambassador's score, counted in the periods of `day` (organisation's zone).
    `ambassador_id` None: an erased author's points, for the team's boards only."""

    ambassador_id: str | None
    points: int  # centipoints
    day: str  # YYYY-MM-DD, local to the organisation
    team: str | None = None
    campaigns: tuple[str, ...] = ()

    def __init__(
        self, ambassador_id: str | None, points: int, day: str, team: str | None = None,
        campaigns: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self.ambassador_id, self.points, self.day = ambassador_id, points, day
        self.team, self.campaigns = team, campaigns


@dataclass(slots=True)
class ReachDelta:
    """Reach and earned media value moved by a payment or a reversal (`ambassador_id` None: an
    erased author's, for the organisation's totals only)."""

    ambassador_id: str | None
    values: dict[str, int]  # impressions, reactions, clicks, posts, emv:<CUR> (1/10,000 units)

    def __init__(self, ambassador_id: str | None, values: dict[str, int]) -> None:
        self.ambassador_id, self.values = ambassador_id, values


@dataclass(slots=True)
class BadgeGrant:
    ambassador_id: str
    badge: str
    title: dict[str, str]
    reason_event_id: str
    at: str
    level: bool = False

    def __init__(
        self, ambassador_id: str, badge: str, title: dict[str, str], reason_event_id: str,
        at: str, level: bool = False,
    ) -> None:  # fmt: skip
        self.ambassador_id, self.badge, self.title = ambassador_id, badge, title
        self.reason_event_id, self.at, self.level = reason_event_id, at, level

    @property
    def event_id(self) -> str:
        return f"badge:{self.ambassador_id}:{self.badge}"


class Effects:
    """What one event changes. Built once per event: a plain slotted class (a dataclass's
    default factories cost twice as much)."""

    __slots__ = (
        "anonymous", "badges", "credits", "erased", "ledger", "moved", "pairs", "reach",
        "reaction", "read", "wrote",
    )  # fmt: skip

    def __init__(self) -> None:
        self.ledger: list[LedgerEntry] = []
        self.credits: list[Credit] = []
        self.reach: list[ReachDelta] = []
        self.badges: list[BadgeGrant] = []
        self.wrote: set[str] = set()  # ambassador states changed
        self.read: set[str] = set()  # ambassador states read (guarded, not written)
        self.pairs: dict[str, bool] = {}  # colleague-pair states used -> written
        self.reaction = False  # the (post, kind, actor) reaction marker is set by this event
        self.erased: list[str] = []  # ambassadors erased by this event
        # (ambassador, team left, team joined): a registration or an erasure; None: neither.
        self.moved: tuple[str, str | None, str | None] | None = None
        # Whether the post's author is erased, once asked (`Scorer._anonymous`): it cannot
        # change within a post event (only ambassador events erase or register).
        self.anonymous: bool | None = None


class Ambassadors(Protocol):
    """Where the scorer finds ambassador states (Redis-loaded in the service, a dict offline)."""

    def ambassador(self, ambassador_id: str) -> AmbassadorState: ...

    def pairs(self, ambassador_id: str) -> ColleaguePairs: ...


class AmbassadorBook:
    """Ambassador states in memory (offline scoring, tests); created on first use."""

    def __init__(self) -> None:
        self.states: dict[str, AmbassadorState] = {}
        self.colleague_pairs: dict[str, ColleaguePairs] = {}

    def ambassador(self, ambassador_id: str) -> AmbassadorState:
        state = self.states.get(ambassador_id)
        if state is None:
            state = self.states[ambassador_id] = AmbassadorState(ambassador_id)
        return state

    def pairs(self, ambassador_id: str) -> ColleaguePairs:
        state = self.colleague_pairs.get(ambassador_id)
        if state is None:
            state = self.colleague_pairs[ambassador_id] = ColleaguePairs()
        return state


def _iso(ts: datetime) -> str:
    """`ts.isoformat()`. Contract timestamps are UTC: orjson writes the same text for them in
    half the time (not for offsets with seconds, which only old local times have)."""
    return orjson.dumps(ts)[1:-1].decode() if ts.tzinfo is UTC else ts.isoformat()


def _rank(candidate: tuple[int, Badge]) -> int:
    return candidate[0]


def _threshold(tier: tuple[int, int, Badge]) -> tuple[int, int]:
    return tier[0], tier[1]


def base_rule(rule: str) -> str:
    return rule.partition(":")[0]


class Scorer:
    def __init__(self, table: PointsTable, tz: ZoneInfo | None = None) -> None:
        self.table = table
        self.tz = tz or ZoneInfo("UTC")
        self.local_day = lru_cache(maxsize=65_536)(self._local_day)
        # Table lookups memoised: the table is immutable (a pydantic frozen model).
        self._cp: dict[tuple[str, str], int] = {}
        self._cap: dict[str, int | None] = {}
        self._emv_of: dict[tuple[str, int, int, int], dict[str, int]] = {}
        # Badges by metric, with their rank in the table: granted in table order.
        self._badges_by_metric: dict[str, list[tuple[int, Badge]]] = {}
        for rank, badge in enumerate(table.badges):
            self._badges_by_metric.setdefault(badge.metric, []).append((rank, badge))
        # The same by threshold, to stop at the first badge a metric has not reached.
        self._tiers: dict[str, list[tuple[int, int, Badge]]] = {
            metric: sorted(((b.threshold, rank, b) for rank, b in badges), key=_threshold)
            for metric, badges in self._badges_by_metric.items()
        }
        self._reach_cache: dict[tuple[str, str, int], dict[str, int]] = {}

    def _local_day(self, at: str) -> str:
        return day_text(datetime.fromisoformat(at).astimezone(self.tz))

    # -- what an event touches (the service loads these states before applying) ------------
    @staticmethod
    def needs(events: Iterable[Scored]) -> set[str]:
        """Ambassador states `apply` may read or write for these events, as far as they tell."""
        out: set[str] = set()
        for event in events:
            if isinstance(event, EngagementReceived):
                if event.actor_ambassador_id:
                    out.add(event.actor_ambassador_id)
            elif isinstance(event, _OWN):
                out.add(event.ambassador_id)
        return out

    @staticmethod
    def post_needs(post: PostState) -> set[str]:
        """Ambassador states a post's events may touch: its author, the colleagues of its
        engagement not earned yet."""
        if post.author:
            # Items are earned once the author is known (`on_post` earns the early ones): no
            # need to look through the items a post held in review may have by thousands.
            return {post.author}
        return {i.actor for i in post.held if i.actor and not i.earned}

    @staticmethod
    def pairs_needed(events: Sequence[Scored], posts: Mapping[str, PostState]) -> set[str]:
        """Colleague-pair states the events may touch (`posts`: their posts' states before
        them): both people of every colleague engagement whose post's author is known by then
        (from its state, or from the batch's own `post.received`, which earns what its post
        held), and erased ambassadors'."""
        out: set[str] = set()
        authors: dict[str, str] = {}
        colleagues: dict[str, set[str]] = {}
        for e in events:
            if isinstance(e, EngagementReceived):
                if e.actor_ambassador_id:
                    colleagues.setdefault(e.post_key, set()).add(e.actor_ambassador_id)
            elif isinstance(e, PostReceived):
                authors.setdefault(e.post_key, e.ambassador_id)
            elif isinstance(e, AmbassadorErased):
                out.add(e.ambassador_id)
        for pk, author in authors.items():
            post = posts.get(pk)
            if post is not None and post.author is None:
                early = Scorer.post_needs(post)  # the colleagues of the items it held
                if early:
                    out |= early
                    out.add(author)
        for pk, actors in colleagues.items():
            post = posts.get(pk)
            paid = post.author if post is not None and post.author else authors.get(pk)
            if paid is not None:
                out |= actors
                out.add(paid)
        return out

    def apply(
        self,
        event: Scored,
        post: PostState | None,
        world: Ambassadors,
        *,
        reacted: bool = False,
    ) -> Effects:
        """`reacted`: the engagement's actor already liked/shared this post (its marker exists)."""
        fx = Effects()
        # Engagement first: it is most events, and an isinstance that matches the exact class
        # costs less than one that does not.
        if isinstance(event, EngagementReceived):
            assert post is not None, "post events need their post state"
            self.on_engagement(post, event, world, fx, reacted)
        elif isinstance(event, AmbassadorRegistered):
            me = self._amb(world, event.ambassador_id, fx)
            # An erased person left their team's members already.
            fx.moved = (event.ambassador_id, None if me.erased else me.team, event.team)
            me.team = event.team
            me.erased = False  # a new, consented registration; older posts stay anonymous (era)
            return fx
        elif isinstance(event, AmbassadorErased):
            me = self._amb(world, event.ambassador_id, fx)
            fx.moved = (event.ambassador_id, me.team, None)
            me.erase()
            self._pairs(world, event.ambassador_id, fx, write=True).erase()
            fx.erased.append(event.ambassador_id)
            return fx
        else:
            assert post is not None, "post events need their post state"
            if isinstance(event, PostReceived):
                self.on_post(post, event, world, fx)
            elif isinstance(event, PostModerated):
                post.verdict = event.verdict
                self._settle(post, event.event_id, world, fx)
            else:
                post.review = event.outcome
                self._settle(post, event.event_id, world, fx)
        if post.author is not None:
            # Whether the author is erased decides what is personal: their state is guarded
            # (version-checked) by every step on their posts, so an erasure committed meanwhile
            # by another instance refuses the step (CONFLICT) and it is recomputed.
            if post.author not in fx.wrote:
                fx.read.add(post.author)
            if fx.ledger and self._anonymous(post, world, fx):
                fx.ledger = []  # every line of a post event is its author's
        return fx

    @staticmethod
    def _anonymous(post: PostState, world: Ambassadors, fx: Effects) -> bool:
        """The post's author was erased (since the post arrived, or is now); asked once per
        event (an event pays several items, and each asks)."""
        anonymous = fx.anonymous
        if anonymous is None:
            assert post.author is not None
            me = world.ambassador(post.author)
            anonymous = fx.anonymous = me.erased or post.era != me.era
        return anonymous

    @staticmethod
    def _amb(world: Ambassadors, aid: str, fx: Effects, *, write: bool = True) -> AmbassadorState:
        (fx.wrote if write else fx.read).add(aid)
        if write:
            fx.read.discard(aid)
        return world.ambassador(aid)

    @staticmethod
    def _pairs(world: Ambassadors, aid: str, fx: Effects, *, write: bool) -> ColleaguePairs:
        """Colleague pairs are written only in a step that writes the ambassador's state too."""
        fx.pairs[aid] = write or fx.pairs.get(aid, False)
        pairs = world.pairs(aid)
        if write:
            me = world.ambassador(aid)
            if me.recv:
                me.recv = {}  # stored before pairs had their own state: moved there now
        return pairs

    # -- events ----------------------------------------------------------------------------
    def on_post(self, post: PostState, ev: PostReceived, world: Ambassadors, fx: Effects) -> None:
        if post.author is not None:
            return  # the post is already known (an edit or a replay): its points are set
        at = _iso(ev.occurred_at)
        day = self.local_day(at)
        post.author, post.kind, post.network = ev.ambassador_id, ev.kind, ev.network
        post.era = world.ambassador(ev.ambassador_id).era
        post.campaigns, post.multiplier = self.table.campaigns_of(
            ev.post_key, ev.campaign, ev.hashtags, ev.occurred_at, day
        )
        reach = self.table.reach_of(ev.network)
        followers = ev.followers if ev.followers is not None else reach.default_followers
        post.impressions = round(followers * reach.reach_rate)
        rule = "original_post" if ev.kind == "original" else "relay"
        own = HeldItem(ev.event_id, rule, 0, at, earned=False)
        early, post.held = post.held, []  # engagement that arrived before its post
        for item in [own, *early]:
            self._place(post, self._earn(post, item, world, fx), ev.event_id, world, fx)

    def on_engagement(
        self,
        post: PostState,
        ev: EngagementReceived,
        world: Ambassadors,
        fx: Effects,
        reacted: bool,
    ) -> None:
        item = HeldItem(
            ev.event_id, ev.engagement, 0, _iso(ev.occurred_at), ev.actor_ambassador_id, False
        )
        if ev.engagement in ("like", "share"):
            if reacted:  # one like and one share per actor per post
                if post.author is not None:
                    fx.ledger.append(self._entry(post, item, "void", 0, f"{item.rule}:repeat"))
                return
            # No marker keyed by an erased actor (their in-flight engagement still counts).
            actor = ev.actor_ambassador_id
            fx.reaction = actor is None or not self._amb(world, actor, fx, write=False).erased
        if post.author is None:
            post.held.append(item)  # kept until its post arrives
            return
        self._place(post, self._earn(post, item, world, fx), ev.event_id, world, fx)

    # -- rules -----------------------------------------------------------------------------
    def _earn(self, post: PostState, item: HeldItem, world: Ambassadors, fx: Effects) -> HeldItem:
        """The item with its final points: table × campaign × colleague/ring weights, capped."""
        assert post.author is not None and post.network is not None
        author, actor = post.author, item.actor
        rule = item.rule
        suffix = ""
        if actor is not None and actor == author and rule not in ("original_post", "relay"):
            if rule != "comment":
                return HeldItem(item.event_id, f"{rule}:self", 0, item.at, actor, earned=True)
            rule = "reply"  # an author answering the comments on their post
        day = self.local_day(item.at)
        weight = post.multiplier
        anonymous = self._anonymous(post, world, fx)
        # An erased author's tombstone records nothing (no caps, no colleague counts).
        self._amb(world, author, fx, write=not anonymous)
        if actor is not None and actor != author:
            weight *= self.table.fair_play.colleague_weight
            suffix = ":colleague"
            rings = self.table.fair_play.rings
            them = self._amb(world, actor, fx, write=actor in fx.wrote)
            # Ring counters need both people's history: none for an erased one.
            if rule in rings.actions and not anonymous and not them.erased:
                mine = self._pairs(world, author, fx, write=True)
                given = mine.count_from(actor, day, rings.window_days)
                theirs = self._pairs(world, actor, fx, write=False)
                back = theirs.received_from(author, day, rings.window_days)
                if given > rings.threshold and back >= rings.threshold:
                    weight *= rings.weight
                    suffix = ":ring"
        base = self._cp.get((rule, post.network))
        if base is None:
            base = self._cp[(rule, post.network)] = self.table.cp(rule, post.network)
        wanted = round(base * weight)
        # The daily cap is applied when the item is paid (`_pay`), not now.
        return HeldItem(item.event_id, rule + suffix, wanted, item.at, actor, True, capped=False)

    def _capped(
        self, item: HeldItem, action: str, day: str, me: AmbassadorState
    ) -> tuple[int, str]:
        """(points, rule) of the item as paid (`action`: its base rule): its points within
        what the day's cap still allows, `:cap` added to its rule if the cap cut them."""
        if item.capped:
            return item.points, item.rule
        cap = self._cap.get(action, -1)
        if cap == -1:
            cap = self._cap[action] = self.table.daily_cap_cp(action)
        if cap is None:  # most actions have no cap (received engagement, by default)
            return item.points, item.rule
        granted = me.capped(day, action, item.points, cap)
        return granted, item.rule + ":cap" if granted < item.points else item.rule

    def _place(
        self, post: PostState, item: HeldItem, cause: str, world: Ambassadors, fx: Effects
    ) -> None:
        if item.rule.endswith(":self"):
            fx.ledger.append(self._entry(post, item, "void", 0))
            return
        status = post.status
        if status == "released":
            self._pay(post, item, world, fx, op="award")
        elif status in ("blocked", "removed"):
            fx.ledger.append(self._entry(post, item, "void", 0, cause=cause))
            if status == "blocked":
                post.voided.append(item)
        else:
            post.held.append(item)
            fx.ledger.append(self._entry(post, item, "hold", item.points))

    def _settle(self, post: PostState, cause: str, world: Ambassadors, fx: Effects) -> None:
        """A verdict or a review changed the post's status: release, void or reverse."""
        if post.author is None:
            return  # verdict before post (redelivery order): applied when the post arrives
        status = post.status
        if status == "released":
            items, post.held, post.voided = post.held + post.voided, [], []
            for item in items:
                self._pay(post, item, world, fx, op="release", cause=cause)
        elif status in ("blocked", "removed"):
            for item in post.held:
                fx.ledger.append(self._entry(post, item, "void", 0, cause=cause))
            if status == "blocked":
                post.voided += post.held
            post.held = []
            self._reverse(post, cause, world, fx)

    def _pay(
        self,
        post: PostState,
        item: HeldItem,
        world: Ambassadors,
        fx: Effects,
        *,
        op: str,
        cause: str | None = None,
    ) -> None:
        assert post.author is not None
        day = self.local_day(item.at)
        if self._anonymous(post, world, fx):
            self._pay_anonymously(post, item, day, world, fx)
            return
        me = self._amb(world, post.author, fx)
        rule = base_rule(item.rule)  # once per payment: `_capped` gets it too
        points, paid_rule = self._capped(item, rule, day, me)
        fx.ledger.append(self._entry(post, item, op, points, paid_rule, cause))
        if points:
            fx.credits.append(Credit(post.author, points, day, me.team, tuple(post.campaigns)))
            post.credited[day] = post.credited.get(day, 0) + points
            me.points += points
        changed: list[str] = ["points"] if points else []
        counts = me.counts
        if rule in ("original_post", "relay"):
            kind = "original_posts" if rule == "original_post" else "relays"
            counts["posts"] = counts.get("posts", 0) + 1
            counts[kind] = counts.get(kind, 0) + 1
            me.active_on(day)
            changed += ("posts", kind, "streak_days")
        elif rule in REACTIONS:
            counts["reactions_received"] = counts.get("reactions_received", 0) + 1
            changed.append("reactions_received")
            if rule == "comment":
                counts["comments_received"] = counts.get("comments_received", 0) + 1
                changed.append("comments_received")
        values = self._reach_of(rule, post)
        if values:
            reach = post.reach
            for k, v in values.items():
                reach[k] = reach.get(k, 0) + v
            fx.reach.append(ReachDelta(post.author, values))
        grants: list[tuple[int, Badge]] = []
        for metric in changed:
            tiers = self._tiers.get(metric)
            if not tiers:
                continue
            value = me.metric(metric)
            for threshold, rank, badge in tiers:  # by threshold: stop at the first not reached
                if threshold > value:
                    break
                if badge.id not in me.badges:
                    grants.append((rank, badge))
        if grants:
            grants.sort(key=_rank)  # badges are granted in table order
            for _, badge in grants:
                me.badges.append(badge.id)
                fx.badges.append(
                    BadgeGrant(post.author, badge.id, dict(badge.title), item.event_id, item.at,
                               badge.level)
                )  # fmt: skip

    def _reach_of(self, rule: str, post: PostState) -> dict[str, int] | None:
        """Reach and EMV an item of `rule` moves (memoised; callers only read it)."""
        if rule in ("original_post", "relay"):
            key = ("post", post.network or "other", post.impressions)
        elif rule in REACTIONS:
            key = ("reactions", post.network or "other", 0)
        elif rule == "click":
            key = ("clicks", post.network or "other", 0)
        else:
            return None
        out = self._reach_cache.get(key)
        if out is None:
            kind, network, impressions = key
            out = {"posts": 1, "impressions": impressions} if kind == "post" else {kind: 1}
            out.update(self._emv(network, out))
            if len(self._reach_cache) > 65_536:
                self._reach_cache.clear()
            self._reach_cache[key] = out
        return out

    def _pay_anonymously(
        self, post: PostState, item: HeldItem, day: str, world: Ambassadors, fx: Effects
    ) -> None:
        """An erased author's item: team boards and organisation totals move as they would
        have; nothing personal is written (no board member, ledger line, counter or badge)."""
        assert post.author is not None
        if item.points:
            team = world.ambassador(post.author).team
            fx.credits.append(Credit(None, item.points, day, team))
            post.credited[day] = post.credited.get(day, 0) + item.points
        rule = base_rule(item.rule)
        if rule in ("original_post", "relay"):
            values = {"posts": 1, "impressions": post.impressions}
        elif rule in REACTIONS:
            values = {"reactions": 1}
        elif rule == "click":
            values = {"clicks": 1}
        else:
            return
        values.update(self._emv(post.network or "other", values))
        for k, v in values.items():
            post.reach[k] = post.reach.get(k, 0) + v
        fx.reach.append(ReachDelta(None, values))

    def _emv(self, network: str, values: dict[str, int]) -> dict[str, int]:
        """EMV of the reach moved (memoised: a handful of distinct inputs; callers only read
        the result)."""
        key = (
            network,
            values.get("impressions", 0),
            values.get("reactions", 0),
            values.get("clicks", 0),
        )
        out = self._emv_of.get(key)
        if out is None:
            out = self._emv_of[key] = self._emv_uncached(network, values)
            if len(self._emv_of) > 65_536:
                self._emv_of.clear()
        return out

    def _emv_uncached(self, network: str, values: dict[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for currency, rates in self.table.emv.items():
            r = rates.get(network) or rates["default"]
            value = r.cpm * values.get("impressions", 0) / 1000 + r.cpc * (
                r.reaction_multiplier * values.get("reactions", 0) + values.get("clicks", 0)
            )
            out[f"emv:{currency}"] = round(value * EMV_UNIT)
            # The same value per network, for the programme dashboards (pv_emv{network}).
            out[f"emvnet:{currency}:{network}"] = out[f"emv:{currency}"]
        return out

    def _reverse(self, post: PostState, cause: str, world: Ambassadors, fx: Effects) -> None:
        assert post.author is not None
        if not post.credited and not post.reach:
            return
        # An erased author's reversal takes points back from the team and organisation only
        # (the personal boards they were paid to were emptied by the erasure).
        anonymous = self._anonymous(post, world, fx)
        me = self._amb(world, post.author, fx, write=not anonymous)
        who = None if anonymous else post.author
        campaigns = () if anonymous else tuple(post.campaigns)
        why = "takedown" if post.status == "removed" else "rejected"
        for day, pts in sorted(post.credited.items()):
            if pts:
                fx.ledger.append(
                    LedgerEntry(post.author, "reverse", -pts, why, cause, post.post_key, day, cause)
                )
                fx.credits.append(Credit(who, -pts, day, me.team, campaigns))
                if not anonymous:
                    me.points -= pts
        if post.reach:
            fx.reach.append(ReachDelta(who, {k: -v for k, v in post.reach.items()}))
        post.credited, post.reach = {}, {}

    @staticmethod
    def _entry(
        post: PostState,
        item: HeldItem,
        op: str,
        points: int,
        rule: str | None = None,
        cause: str | None = None,
    ) -> LedgerEntry:
        assert post.author is not None
        return LedgerEntry(
            post.author, op, points, rule or item.rule, item.event_id, post.post_key, item.at,
            cause,
        )  # fmt: skip

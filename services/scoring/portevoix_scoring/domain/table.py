"""The points table: data, versioned, validated.

Points are written in the table as points (decimals allowed: a colleague's like may be worth
0.5); scoring counts in centipoints (1 point = 100 cp) so every sum is an exact integer, in
memory and in Redis.
"""

from __future__ import annotations

from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ACTIONS = ("original_post", "relay", "comment", "share", "like", "click", "reply")
ENGAGEMENT_ACTIONS = ("comment", "share", "like", "click")
BADGE_METRICS = (
    "posts",  # posts paid (original or relay)
    "original_posts",
    "relays",
    "comments_received",
    "reactions_received",  # likes + shares + comments
    "streak_days",  # consecutive local days with a paid post
    "points",  # lifetime points (levels)
)
CP = 100  # centipoints per point


def to_cp(points: float) -> int:
    return round(points * CP)


class PointsTableError(ValueError):
    pass


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Campaign(_Model):
    """Posts of a campaign (and the engagement on them) earn `multiplier` × their points."""

    id: str = Field(min_length=1)
    start: date
    end: date  # inclusive, local day
    hashtag: str | None = None  # without '#', case-insensitive
    campaign: str | None = None  # the `campaign` field of ingested posts
    posts: list[str] = Field(default_factory=list)  # content ids: post keys "network:post_id"
    multiplier: float = Field(default=1.0, ge=0, le=100)

    @model_validator(mode="after")
    def _has_a_match(self) -> Campaign:
        if not (self.hashtag or self.campaign or self.posts):
            raise ValueError(f"campaign {self.id!r} needs a hashtag, a campaign or posts")
        if self.end < self.start:
            raise ValueError(f"campaign {self.id!r} ends before it starts")
        return self


RingAction = Literal["like", "share", "comment"]


class Rings(_Model):
    """Reciprocal engagement between two colleagues (A→B and B→A, each at least `threshold`
    times within `window_days`) is a ring: its points are weighted by `weight`."""

    actions: list[RingAction] = Field(default_factory=lambda: list[RingAction](["like"]))
    threshold: int = Field(default=3, ge=1)
    weight: float = Field(default=0.1, ge=0, le=1)
    window_days: int = Field(default=30, ge=1)


class FairPlay(_Model):
    # Points per ambassador per action per local day (organisation zone); absent = no cap.
    daily_caps: dict[str, float] = Field(default_factory=dict)
    colleague_weight: float = Field(default=0.5, ge=0, le=1)
    rings: Rings = Field(default_factory=Rings)


class Reach(_Model):
    # Impressions of a post = followers × reach_rate (networks give us no impressions).
    reach_rate: float = Field(default=0.1, ge=0, le=10)
    default_followers: int = Field(default=300, ge=0)


class EmvRates(_Model):
    cpm: float = Field(ge=0)  # cost per 1000 impressions
    cpc: float = Field(ge=0)  # cost per click
    reaction_multiplier: float = Field(default=0.1, ge=0)


class Badge(_Model):
    id: str = Field(min_length=1)
    metric: Literal[
        "posts",
        "original_posts",
        "relays",
        "comments_received",
        "reactions_received",
        "streak_days",
        "points",
    ]
    threshold: int = Field(ge=1)
    level: bool = False  # levels are badges on lifetime points, shown as the current level
    title: dict[str, str] = Field(default_factory=dict)


class PointsTable(_Model):
    version: str = Field(min_length=1)
    actions: dict[str, float]
    networks: dict[str, dict[str, float]] = Field(default_factory=dict)
    campaigns: list[Campaign] = Field(default_factory=list)
    fair_play: FairPlay = Field(default_factory=FairPlay)
    reach: dict[str, Reach] = Field(default_factory=lambda: {"default": Reach()})
    # currency -> network (or "default") -> rates
    emv: dict[str, dict[str, EmvRates]] = Field(default_factory=dict)
    badges: list[Badge] = Field(default_factory=list)

    def model_post_init(self, _ctx: object) -> None:
        for where, table in [("actions", self.actions), *self.networks.items()]:
            unknown = set(table) - set(ACTIONS)
            if unknown:
                raise PointsTableError(
                    f"{where}: unknown action(s) {sorted(unknown)}; known: {list(ACTIONS)}"
                )
            negative = {k: v for k, v in table.items() if v < 0}
            if negative:
                raise PointsTableError(f"{where}: points must be >= 0, got {negative}")
        unknown_caps = set(self.fair_play.daily_caps) - set(ACTIONS)
        if unknown_caps:
            raise PointsTableError(f"daily_caps: unknown action(s) {sorted(unknown_caps)}")
        ids = [b.id for b in self.badges]
        if len(ids) != len(set(ids)):
            raise PointsTableError("badge ids must be unique")
        for currency, rates in self.emv.items():
            if "default" not in rates:
                raise PointsTableError(f"emv.{currency}: a 'default' network entry is required")

    # -- lookups (centipoints) -------------------------------------------------------------
    def points(self, action: str, network: str | None = None) -> float:
        if network is not None and action in self.networks.get(network, {}):
            return self.networks[network][action]
        return self.actions.get(action, 0)

    def cp(self, action: str, network: str | None = None) -> int:
        return to_cp(self.points(action, network))

    def daily_cap_cp(self, action: str) -> int | None:
        cap = self.fair_play.daily_caps.get(action)
        return None if cap is None else to_cp(cap)

    def reach_of(self, network: str) -> Reach:
        return self.reach.get(network) or self.reach.get("default") or Reach()

    def campaigns_of(
        self, post_key: str, campaign: str | None, hashtags: list[str], at: datetime, day: str
    ) -> tuple[list[str], float]:
        """Campaign ids a post belongs to (on its local day) and the multiplier it earns (the
        highest of its campaigns'). A `campaign` field unknown to the table still names a
        campaign board, with multiplier 1."""
        d = date.fromisoformat(day)
        tags = {h.lower() for h in hashtags}
        ids: list[str] = []
        mults: list[float] = []
        for c in self.campaigns:
            if not c.start <= d <= c.end:
                continue
            hit = (
                (c.hashtag is not None and c.hashtag.lower().lstrip("#") in tags)
                or (c.campaign is not None and c.campaign == campaign)
                or post_key in c.posts
            )
            if hit:
                ids.append(c.id)
                mults.append(c.multiplier)
        if campaign and campaign not in ids:
            ids.append(campaign)
        return ids, max(mults, default=1.0)

    def dumps(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def load_table(source: str | Path) -> PointsTable:
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) else source
    if isinstance(source, str) and "\n" not in source and Path(source).exists():
        text = Path(source).read_text(encoding="utf-8")
    try:
        return PointsTable.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as exc:
        raise PointsTableError(f"invalid points table: {exc}") from exc


def default_table() -> PointsTable:
    text = resources.files("portevoix_scoring").joinpath("data/points.yaml").read_text("utf-8")
    return load_table(text)

"""The charter as data: pydantic models of the YAML file, and its JSON Schema."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

Verdict = Literal["allow", "nudge", "review", "block"]
PostKind = Literal["original", "relay"]

SEVERITY: dict[str, int] = {"allow": 0, "nudge": 1, "review": 2, "block": 3}

DEFAULT_DISCLOSURE_TAGS = ["#employee", "#collaborateur", "#collaboratrice", "#salarié", "#ad"]


class Principle(StrEnum):
    """The nine principles of the charter (seed 004); ids are the unaccented French names."""

    sincerite = "sincerite"
    correction = "correction"
    modestie = "modestie"
    vraisemblance = "vraisemblance"
    conversation = "conversation"
    utilite = "utilite"
    responsabilite = "responsabilite"
    circonspection = "circonspection"
    humilite = "humilite"


# Ids and labels are a public contract (portevoix/contracts/charter.py).

_ACCENTS = str.maketrans("éèêàùûîôç", "eeeauuioc")


def _utc(value: datetime | date | None) -> datetime | None:
    # Naive dates/datetimes in a charter are read as UTC so comparisons never fail.
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Localized(_Strict):
    fr: str
    en: str


class Scope(_Strict):
    networks: list[str] | None = None
    kinds: list[PostKind] | None = None
    languages: list[str] | None = None


class Condition(_Strict):
    """Exactly one of ``all``/``any``/``not``/``detector`` (with its ``params``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    all_: list[Condition] | None = Field(default=None, alias="all")
    any_: list[Condition] | None = Field(default=None, alias="any")
    not_: Condition | None = Field(default=None, alias="not")
    detector: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        given = [
            n
            for n, v in (("all", self.all_), ("any", self.any_), ("not", self.not_))
            if v is not None
        ]
        if self.detector is not None:
            given.append("detector")
        if len(given) != 1:
            raise ValueError(
                "a condition needs exactly one of 'all', 'any', 'not', 'detector'"
                f" (got {', '.join(given) or 'none'})"
            )
        if self.params and self.detector is None:
            raise ValueError("'params' is only allowed next to 'detector'")
        if (self.all_ is not None and not self.all_) or (self.any_ is not None and not self.any_):
            raise ValueError("'all'/'any' need at least one condition")
        return self

    def detectors(self) -> list[str]:
        """Every detector name used in this condition tree."""
        if self.detector is not None:
            return [self.detector]
        if self.not_ is not None:
            return self.not_.detectors()
        return [d for c in (self.all_ or self.any_ or []) for d in c.detectors()]


class HistoryPost(_Strict):
    """A post already seen, to seed the history when running a stateful example."""

    text: str
    ambassador_id: str | None = None
    post_id: str | None = None
    occurred_at: datetime | None = None
    campaign: str | None = None


class Example(_Strict):
    """A ``must_match``/``must_not_match`` example: a string or a full post."""

    text: str
    kind: PostKind = "original"
    network: str | None = None
    lang: str | None = None
    author_registered: bool = True
    author_consenting: bool = True
    campaign: str | None = None
    ambassador_id: str | None = None
    occurred_at: datetime | None = None
    history: list[HistoryPost] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value


class Rule(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    principle: Principle
    family: str | None = None
    description: str | None = None
    scope: Scope = Field(default_factory=Scope)
    conditions: Condition
    verdict: Verdict
    message: Localized
    remediation: Localized
    must_match: list[Example] = Field(default_factory=list)
    must_not_match: list[Example] = Field(default_factory=list)
    shadow: bool = False
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    @field_validator("principle", mode="before")
    @classmethod
    def _unaccent(cls, value: Any) -> Any:
        return value.lower().translate(_ACCENTS) if isinstance(value, str) else value

    @field_validator("valid_from", "valid_until", mode="before")
    @classmethod
    def _dates(cls, value: Any) -> Any:
        return _utc(value) if isinstance(value, date) else value

    @field_validator("valid_from", "valid_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @model_validator(mode="after")
    def _window(self) -> Rule:
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class Embargo(_Strict):
    """A topic that must not be mentioned publicly between ``valid_from`` and ``valid_until``."""

    id: str
    terms: list[str] = Field(min_length=1)
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    @field_validator("valid_from", "valid_until", mode="before")
    @classmethod
    def _dates(cls, value: Any) -> Any:
        return _utc(value) if isinstance(value, date) else value

    @field_validator("valid_from", "valid_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _utc(value)


class Organisation(_Strict):
    name: str = ""
    code_names: list[str] = Field(default_factory=list)
    embargoes: list[Embargo] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)
    public_mailboxes: list[str] = Field(default_factory=list)
    hotlines: list[str] = Field(default_factory=list)
    siren: list[str] = Field(default_factory=list)
    disclosure_tags: list[str] = Field(default_factory=lambda: list(DEFAULT_DISCLOSURE_TAGS))
    campaigns: dict[str, str] = Field(default_factory=dict)
    """Campaign id -> template text that ambassadors are expected to personalise."""


class Lexicon(_Strict):
    """A word list (``words`` + ``files``, with an allow-list) or a list of regexes."""

    kind: Literal["words", "regex"] = "words"
    lang: str | None = None
    words: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    allow: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)


class Charter(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    name: str
    languages: list[str] = Field(min_length=1)
    organisation: Organisation = Field(default_factory=Organisation)
    lexicons: dict[str, Lexicon] = Field(default_factory=dict)
    model_hook: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*[:.][A-Za-z_]\w*$")
    rules: list[Rule] = Field(min_length=1)

    # Set by the loader: where lexicon files are looked up, and the compiled form.
    _base_dirs: tuple[str, ...] = PrivateAttr(default=())
    _source: str = PrivateAttr(default="<charter>")
    _compiled: Any = PrivateAttr(default=None)

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, value: Any) -> Any:
        # YAML reads ``version: 1.2`` as a float; a version is a string.
        return str(value) if isinstance(value, int | float) else value

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


def charter_json_schema() -> dict[str, Any]:
    """JSON Schema of the charter file (for editors and CI validation)."""
    return Charter.model_json_schema(by_alias=True)

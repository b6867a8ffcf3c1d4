"""What a detector sees: the post, and lazily computed views of it (computed once per post)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from .text import Skeleton, fold, skeleton, words

if TYPE_CHECKING:
    from .history import PostHistory
    from .language import LanguageGuesser
    from .similarity import Signature

ModelScorer = Callable[[str, str | None], float]
"""A model hook: ``scorer(text, lang) -> score in [0, 1]``."""


@dataclass(frozen=True, slots=True)
class PostToCheck:
    post_id: str
    text: str
    kind: Literal["original", "relay"] = "original"
    network: str | None = None
    lang: str | None = None
    author_registered: bool = True
    author_consenting: bool = True
    campaign: str | None = None
    ambassador_id: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """One reason a detector fired; ``start``/``end`` index the original text."""

    start: int | None = None
    end: int | None = None
    matched: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class PostContext:
    """Per-post state shared by all rules; every view is computed at most once."""

    def __init__(
        self,
        post: PostToCheck,
        *,
        now: datetime,
        history: PostHistory | None,
        model_hook: ModelScorer | None,
        guesser: LanguageGuesser,
        signer: Callable[[list[str]], Signature],
    ) -> None:
        self.post = post
        self.text = post.text
        self.now = now
        self.history = history
        self.model_hook = model_hook
        self._guesser = guesser
        self._signer = signer
        self.cache: dict[object, Any] = {}  # per-post results shared between rules

    @cached_property
    def folded(self) -> str:
        return fold(self.text)

    @cached_property
    def skeleton(self) -> Skeleton:
        return skeleton(self.folded)

    @cached_property
    def words(self) -> list[str]:
        return words(self.folded)

    @cached_property
    def detected_lang(self) -> tuple[str | None, float]:
        return self._guesser.guess(self.folded, self.words)

    @property
    def lang(self) -> str | None:
        """The declared language if any, else the detected one."""
        return self.post.lang or self.detected_lang[0]

    @cached_property
    def signature(self) -> Signature:
        return self._signer(self.words)

"""Detector registry: a detector is a factory ``(params, compile context) -> check function``.

Factories run once at charter load (compile everything there); check functions run once
per post and rule and return ``None`` (did not fire) or the list of hits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict

from ..context import Hit, PostContext

if TYPE_CHECKING:
    from ..model import Charter
    from .lexicon import CompiledLexicon, LexiconBank, PatternBank

DetectorFn = Callable[[PostContext], list[Hit] | None]


class Params(BaseModel):
    """Base of detector parameter models: unknown parameters are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=Params)


@dataclass
class CompileContext:
    charter: Charter
    base_dirs: tuple[str, ...]
    lexicon_cache: dict[str, CompiledLexicon] = field(default_factory=dict)
    _bank: LexiconBank | None = None
    _pattern_bank: PatternBank | None = None

    @property
    def pattern_bank(self) -> PatternBank:
        """The charter-wide literal prefilter of regexes."""
        if self._pattern_bank is None:
            from .lexicon import PatternBank

            self._pattern_bank = PatternBank()
        return self._pattern_bank

    @property
    def bank(self) -> LexiconBank:
        """The charter-wide automaton every word list registers into."""
        if self._bank is None:
            from .lexicon import LexiconBank

            self._bank = LexiconBank()
        return self._bank

    def lexicon(self, name: str) -> CompiledLexicon:
        from .lexicon import compile_named_lexicon

        if name not in self.lexicon_cache:
            self.lexicon_cache[name] = compile_named_lexicon(self, name)
        return self.lexicon_cache[name]


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    family: str
    params: type[Params]
    build: Callable[[Any, CompileContext], DetectorFn]
    stateful: bool = False
    doc: str = ""


REGISTRY: dict[str, DetectorSpec] = {}


def detector(
    name: str, family: str, params: type[P], *, stateful: bool = False
) -> Callable[
    [Callable[[P, CompileContext], DetectorFn]], Callable[[P, CompileContext], DetectorFn]
]:
    """Register a detector factory under ``name``."""

    def deco(
        build: Callable[[P, CompileContext], DetectorFn],
    ) -> Callable[[P, CompileContext], DetectorFn]:
        REGISTRY[name] = DetectorSpec(
            name, family, params, build, stateful, (build.__doc__ or "").strip()
        )
        return build

    return deco

"""Language: fires when the post is confidently in a language the charter does not allow."""

from __future__ import annotations

from ..context import Hit, PostContext
from .base import CompileContext, DetectorFn, Params, detector


class LanguageParams(Params):
    min_letters: int = 40
    min_confidence: float = 0.9
    allowed: list[str] | None = None
    """Overrides the charter's ``languages``."""


@detector("language_not_allowed", "language", LanguageParams)
def language_detector(params: LanguageParams, cctx: CompileContext) -> DetectorFn:
    """Detected language (py3langid / stop words) not among the allowed ones.

    The declared ``lang`` of a post is not trusted here: this is the check of it."""
    allowed = set(params.allowed if params.allowed is not None else cctx.charter.languages)

    def check(ctx: PostContext) -> list[Hit] | None:
        if sum(len(w) for w in ctx.words) < params.min_letters:
            return None  # too short to tell
        lang, conf = ctx.detected_lang
        if lang is None or lang in allowed or conf < params.min_confidence:
            return None
        return [Hit(None, None, None, {"lang": lang})]

    return check

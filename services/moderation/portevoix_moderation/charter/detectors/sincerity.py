"""Sincerity: who speaks (registered, consenting ambassador) and whether the link is disclosed."""

from __future__ import annotations

import re

from ..context import Hit, PostContext
from ..text import fold
from .base import CompileContext, DetectorFn, Params, detector

_TAG = re.compile(r"(?<![\w#])#[\w-]+")


class NoParams(Params):
    pass


@detector("unregistered_author", "sincerity", NoParams)
def unregistered_detector(params: NoParams, cctx: CompileContext) -> DetectorFn:
    """Fires when the author is not a registered ambassador."""

    def check(ctx: PostContext) -> list[Hit] | None:
        return None if ctx.post.author_registered else [Hit()]

    return check


@detector("no_consent", "sincerity", NoParams)
def no_consent_detector(params: NoParams, cctx: CompileContext) -> DetectorFn:
    """Fires when the author has not (or no longer) consented to the programme."""

    def check(ctx: PostContext) -> list[Hit] | None:
        return None if ctx.post.author_consenting else [Hit()]

    return check


class DisclosureParams(Params):
    tags: list[str] | None = None
    """Overrides ``organisation.disclosure_tags``."""


@detector("missing_disclosure", "sincerity", DisclosureParams)
def missing_disclosure_detector(params: DisclosureParams, cctx: CompileContext) -> DetectorFn:
    """Fires when a post carries none of the disclosure tags (case and accents ignored)."""
    tags = params.tags if params.tags is not None else cctx.charter.organisation.disclosure_tags
    for t in tags:
        if not t.startswith("#") or " " in t:
            raise ValueError(f"disclosure tag {t!r} must look like '#employee'")
    wanted = {fold(t) for t in tags}

    def check(ctx: PostContext) -> list[Hit] | None:
        if "#" in ctx.text and any(fold(m) in wanted for m in _TAG.findall(ctx.text)):
            return None
        return [Hit(None, None, None, {"tags": " ".join(tags)})]

    return check

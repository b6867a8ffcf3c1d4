"""Usefulness: stuffing, shouting, near-duplicates, copy-paste bursts, unpersonalised templates."""

from __future__ import annotations

import re
from datetime import timedelta

from ..context import Hit, PostContext
from ..similarity import Signature, signature, similarities, similarity
from ..text import fold, words
from .base import CompileContext, DetectorFn, Params, detector

_HASHTAG = re.compile(r"(?<![\w#])#\w+")
_MENTION = re.compile(r"(?<![\w@])@\w+")
_LINK = re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.IGNORECASE)
_UPPER = re.compile(r"[A-ZÀ-ÖØ-Þ]")
_LETTER = re.compile(r"[^\W\d_]")


class MaxParams(Params):
    max: int = 5


def _stuffing(
    name: str, pattern: re.Pattern[str], default_max: int, marks: tuple[str, ...]
) -> None:
    class _P(MaxParams):
        max: int = default_max

    _P.__name__ = f"{name.title().replace('_', '')}Params"

    @detector(name, "usefulness", _P)
    def build(params: _P, cctx: CompileContext) -> DetectorFn:
        limit = params.max

        def check(ctx: PostContext) -> list[Hit] | None:
            text = ctx.text
            if sum(text.count(m) for m in marks) <= limit:
                return None  # cheap upper bound: not enough '#'/'@'/links to matter
            found = pattern.findall(text)
            if len(found) <= limit:
                return None
            return [Hit(None, None, None, {"count": len(found), "limit": limit})]

        return check

    build.__doc__ = f"Fires when a post has more than ``max`` ({default_max}) {name[:-9]}s."


_stuffing("hashtag_stuffing", _HASHTAG, 5, ("#",))
_stuffing("mention_stuffing", _MENTION, 5, ("@",))
_stuffing("link_stuffing", _LINK, 3, ("http", "www.", "WWW."))


class ShoutingParams(Params):
    min_letters: int = 30
    ratio: float = 0.7


@detector("shouting", "usefulness", ShoutingParams)
def shouting_detector(params: ShoutingParams, cctx: CompileContext) -> DetectorFn:
    """Fires when upper-case letters exceed ``ratio`` of at least ``min_letters`` letters."""

    need_upper = params.ratio * params.min_letters

    def check(ctx: PostContext) -> list[Hit] | None:
        text = ctx.text
        upper = len(_UPPER.findall(text))
        if upper < need_upper:
            return None  # too few capitals to ever reach the ratio
        if "#" in text or "@" in text or "http" in text or "www." in text:
            # Tags, handles and links are not prose: do not count their letters.
            text = _LINK.sub(" ", _MENTION.sub(" ", _HASHTAG.sub(" ", text)))
            upper = len(_UPPER.findall(text))
        letters = len(_LETTER.findall(text))
        if letters < params.min_letters:
            return None
        share = upper / letters
        if share < params.ratio:
            return None
        return [Hit(None, None, None, {"share": f"{share:.0%}"})]

    return check


class DuplicateParams(Params):
    threshold: float = 0.8
    min_words: int = 8
    within_hours: float = 24 * 7


@detector("near_duplicate", "usefulness", DuplicateParams, stateful=True)
def near_duplicate_detector(params: DuplicateParams, cctx: CompileContext) -> DetectorFn:
    """Fires when the author already posted a near-identical text (MinHash Jaccard)."""
    within = timedelta(hours=params.within_hours)

    def check(ctx: PostContext) -> list[Hit] | None:
        author = ctx.post.ambassador_id
        if ctx.history is None or author is None or len(ctx.words) < params.min_words:
            return None
        when = ctx.post.occurred_at or ctx.now
        since = when - within
        me = ctx.post.post_id
        # Only earlier posts count: the first of two twins is the original.
        earlier = [
            e
            for e in ctx.history.recent_by_author(author)
            if e.post_id != me and since <= e.occurred_at <= when
        ]
        if not earlier:
            return None
        sims = similarities(ctx.signature, [e.signature for e in earlier])  # one numpy pass
        for e, sim in zip(reversed(earlier), reversed(sims), strict=True):  # latest first
            if sim >= params.threshold:
                return [Hit(None, None, None, {"similar_to": e.post_id, "similarity": sim})]
        return None

    return check


class BurstParams(Params):
    threshold: float = 0.8
    min_words: int = 8
    window_minutes: float = 60
    min_authors: int = 5


@detector("burst", "usefulness", BurstParams, stateful=True)
def burst_detector(params: BurstParams, cctx: CompileContext) -> DetectorFn:
    """Fires when ``min_authors`` ambassadors (this one included) posted near-identical
    texts within ``window_minutes``: a copy-paste flood."""
    window = timedelta(minutes=params.window_minutes)

    def check(ctx: PostContext) -> list[Hit] | None:
        if ctx.history is None or len(ctx.words) < params.min_words:
            return None
        since = (ctx.post.occurred_at or ctx.now) - window
        me = ctx.post.ambassador_id
        authors = ctx.history.similar_authors(
            ctx.signature,
            since,
            params.threshold,
            exclude_post=ctx.post.post_id,
            stop_at=params.min_authors,
        )
        if me is not None:
            authors.add(me)
        if len(authors) < params.min_authors:
            return None
        return [Hit(None, None, None, {"count": len(authors)})]

    return check


class TemplateParams(Params):
    threshold: float = 0.8


@detector("campaign_template", "usefulness", TemplateParams)
def campaign_template_detector(params: TemplateParams, cctx: CompileContext) -> DetectorFn:
    """Fires when a post is (nearly) the campaign's template text, unpersonalised.

    Templates come from ``organisation.campaigns`` and, at runtime, from the history."""
    campaigns = cctx.charter.organisation.campaigns
    static: dict[str, Signature] = {
        cid: signature(words(fold(text))) for cid, text in campaigns.items()
    }
    static_words = [set(words(fold(text))) for text in campaigns.values()]
    # Rules of one charter asking the same question (the template rule, and the burst rule's
    # "not a template") share the answer for a post.
    key = ("campaign_template", id(cctx.charter), params.threshold)

    def check(ctx: PostContext) -> list[Hit] | None:
        cache = ctx.cache
        if key in cache:
            hits: list[Hit] | None = cache[key]
            return hits
        hits = cache[key] = template(ctx)
        return hits

    def template(ctx: PostContext) -> list[Hit] | None:
        campaign = ctx.post.campaign
        if campaign is not None:
            cands = [(campaign, static[campaign])] if campaign in static else []
        else:
            cands = list(static.items())
        if ctx.history is not None:
            cands += ctx.history.templates(campaign)
        if not cands or len(ctx.words) < 3:
            return None
        if static_words and campaign is None and ctx.history is None:
            # Most posts share few words with any template: skip the MinHash then.
            n = len(ctx.words)
            if all(n < 0.5 * len(w) for w in static_words):
                return None
            mine = set(ctx.words)
            if all(len(mine & w) < 0.5 * len(w) for w in static_words):
                return None
        sig = ctx.signature
        for cid, tsig in cands:
            sim = similarity(sig, tsig)
            if sim >= params.threshold:
                return [Hit(None, None, None, {"campaign": cid, "similarity": sim})]
        return None

    return check

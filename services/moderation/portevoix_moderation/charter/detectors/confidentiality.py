"""Confidentiality: the organisation's code names and embargoed topics.

Generic markers ("confidentiel", "internal only", "sous embargo"...) are plain word lists
used with the ``lexicon`` detector; this module adds what comes from the organisation section.
"""

from __future__ import annotations

from ..context import Hit, PostContext
from .base import CompileContext, DetectorFn, Params, detector
from .lexicon import CompiledLexicon


class NoParams(Params):
    pass


@detector("code_names", "confidentiality", NoParams)
def code_names_detector(params: NoParams, cctx: CompileContext) -> DetectorFn:
    """Fires on any internal code name listed in ``organisation.code_names``."""
    lex = CompiledLexicon("code_names", list(cctx.charter.organisation.code_names), [], cctx.bank)

    def check(ctx: PostContext) -> list[Hit] | None:
        return lex.find(ctx) or None

    return check


@detector("embargo", "confidentiality", NoParams)
def embargo_detector(params: NoParams, cctx: CompileContext) -> DetectorFn:
    """Fires on an embargoed topic, only while the embargo is active at the post's date."""
    embargoes = [
        (e, CompiledLexicon(f"embargo:{e.id}", list(e.terms), [], cctx.bank))
        for e in cctx.charter.organisation.embargoes
    ]

    def check(ctx: PostContext) -> list[Hit] | None:
        hits: list[Hit] = []
        for emb, lex in embargoes:
            found = lex.find(ctx)
            if not found:
                continue
            when = ctx.post.occurred_at or ctx.now
            if emb.valid_from and when < emb.valid_from:
                continue
            if emb.valid_until and when >= emb.valid_until:
                continue
            until = emb.valid_until.date().isoformat() if emb.valid_until else ""
            for h in found:
                hits.append(Hit(h.start, h.end, h.matched, {"embargo": emb.id, "until": until}))
        return hits or None

    return check

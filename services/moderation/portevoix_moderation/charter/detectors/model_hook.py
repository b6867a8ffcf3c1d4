"""Optional model hook: an external scorer (e.g. a local toxicity model) behind a threshold.

A model can be wrong in ways nobody can explain to the ambassador, so the loader refuses a
rule using this detector with verdict ``block``: at most ``review`` (a human decides).
"""

from __future__ import annotations

import importlib
from typing import cast

from ..context import Hit, ModelScorer, PostContext
from .base import CompileContext, DetectorFn, Params, detector


class ModelParams(Params):
    threshold: float = 0.8
    label: str = "model"


@detector("model_score", "model", ModelParams)
def model_score_detector(params: ModelParams, cctx: CompileContext) -> DetectorFn:
    """Fires when the engine's model hook scores the post at or above ``threshold``.
    Never fires when no hook is configured."""
    if not 0.0 <= params.threshold <= 1.0:
        raise ValueError("threshold must be within [0, 1]")

    def check(ctx: PostContext) -> list[Hit] | None:
        hook = ctx.model_hook
        if hook is None:
            return None
        score = float(hook(ctx.text, ctx.lang))
        if score < params.threshold:
            return None
        return [Hit(None, None, None, {"score": f"{score:.2f}", "label": params.label})]

    return check


def resolve_hook(path: str) -> ModelScorer:
    """Import ``package.module:attr`` (or ``package.module.attr``); call it if it is a factory
    marked with ``__model_hook_factory__ = True``."""
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    obj = getattr(importlib.import_module(module), attr)
    if getattr(obj, "__model_hook_factory__", False):
        obj = obj()
    if not callable(obj):
        raise TypeError(f"model hook {path!r} is not callable")
    return cast(ModelScorer, obj)

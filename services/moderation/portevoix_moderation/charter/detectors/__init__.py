"""Detectors available to charter rules; importing this package registers all of them."""

from . import (  # noqa: F401  (imported for their registration side effect)
    confidentiality,
    language,
    lexicon,
    model_hook,
    personal_data,
    sincerity,
    usefulness,
)
from .base import REGISTRY, CompileContext, DetectorFn, DetectorSpec

__all__ = ["REGISTRY", "CompileContext", "DetectorFn", "DetectorSpec"]

"""Charter moderation core of Porte-Voix: pure, I/O-free, offline.

A charter (YAML, validated by pydantic) lists rules; each rule belongs to one of the nine
principles, combines detector calls with all/any/not, and yields a verdict on the scale
allow < nudge < review < block. ``CharterEngine.check`` evaluates every rule and returns a
``Decision`` whose verdict is the most severe non-shadow finding.
"""

from .context import Hit, ModelScorer, PostToCheck
from .engine import ENGINE_VERSION, CharterEngine, Decision, Finding
from .errors import CharterError
from .history import HistoryEntry, InMemoryPostHistory, PostHistory
from .loader import default_charter, load_charter, load_charter_text
from .model import Charter, Principle, Rule, Verdict, charter_json_schema

__all__ = [
    "ENGINE_VERSION",
    "Charter",
    "CharterEngine",
    "CharterError",
    "Decision",
    "Finding",
    "HistoryEntry",
    "Hit",
    "InMemoryPostHistory",
    "ModelScorer",
    "PostHistory",
    "PostToCheck",
    "Principle",
    "Rule",
    "Verdict",
    "charter_json_schema",
    "default_charter",
    "load_charter",
    "load_charter_text",
]

"""Runs each rule's ``must_match`` / ``must_not_match`` examples (``portevoix charter test``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .context import ModelScorer, PostToCheck
from .engine import CharterEngine, Decision
from .history import HistoryEntry, InMemoryPostHistory
from .model import Charter, Example, Rule
from .similarity import signature
from .text import fold, words


@dataclass(frozen=True, slots=True)
class ExampleResult:
    rule: str
    expectation: str  # "must_match" | "must_not_match"
    text: str
    passed: bool
    verdict: str


def example_post(ex: Example, post_id: str) -> PostToCheck:
    return PostToCheck(
        post_id=post_id,
        text=ex.text,
        kind=ex.kind,
        network=ex.network,
        lang=ex.lang,
        author_registered=ex.author_registered,
        author_consenting=ex.author_consenting,
        campaign=ex.campaign,
        ambassador_id=ex.ambassador_id,
        occurred_at=ex.occurred_at,
    )


def check_example(
    charter: Charter, ex: Example, post_id: str, model_hook: ModelScorer | None = None
) -> Decision:
    """Check one example in a fresh history seeded with the example's ``history`` posts."""
    history = InMemoryPostHistory()
    engine = CharterEngine(charter, history=history, model_hook=model_hook)
    now = ex.occurred_at or engine._clock()
    for i, h in enumerate(ex.history):
        when: datetime = h.occurred_at or now
        history.record(
            HistoryEntry(
                h.post_id or f"{post_id}:h{i}",
                h.ambassador_id,
                when,
                signature(words(fold(h.text))),
                h.campaign,
            )
        )
    return engine.check(example_post(ex, post_id), record=False)


def run_examples(charter: Charter, model_hook: ModelScorer | None = None) -> list[ExampleResult]:
    results: list[ExampleResult] = []
    for rule in charter.rules:
        results += _run_rule(charter, rule, model_hook)
    return results


def _run_rule(charter: Charter, rule: Rule, hook: ModelScorer | None) -> list[ExampleResult]:
    out = []
    for expectation, examples in (
        ("must_match", rule.must_match),
        ("must_not_match", rule.must_not_match),
    ):
        for i, ex in enumerate(examples):
            d = check_example(charter, ex, f"example:{rule.id}:{expectation}:{i}", hook)
            fired = any(f.rule == rule.id for f in d.findings)
            passed = fired if expectation == "must_match" else not fired
            out.append(ExampleResult(rule.id, expectation, ex.text, passed, d.verdict))
    return out

"""The charter engine: every rule on every post, the most severe non-shadow verdict wins."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from portevoix.contracts.charter import PRINCIPLE_LABELS

from .context import Hit, ModelScorer, PostContext, PostToCheck
from .detectors.model_hook import resolve_hook
from .history import HistoryEntry, PostHistory
from .loader import compiled_of
from .model import SEVERITY, Charter, Verdict
from .similarity import signature
from .text import content_hash

ENGINE_VERSION = "1.0.0"
MAX_FINDINGS_PER_RULE = 10
_VERDICTS: tuple[Verdict, ...] = ("allow", "nudge", "review", "block")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    principle: str
    verdict: Verdict
    span: tuple[int, int] | None
    matched: str | None
    message: dict[str, str]
    remediation: dict[str, str]
    shadow: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "principle": self.principle,
            "verdict": self.verdict,
            "span": list(self.span) if self.span is not None else None,
            "matched": self.matched,
            "message": dict(self.message),
            "remediation": dict(self.remediation),
            "shadow": self.shadow,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    post_id: str
    content_hash: str
    charter_version: str
    engine_version: str
    lang: str | None
    verdict: Verdict
    findings: tuple[Finding, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "post_id": self.post_id,
            "content_hash": self.content_hash,
            "charter_version": self.charter_version,
            "engine_version": self.engine_version,
            "lang": self.lang,
            "verdict": self.verdict,
            "findings": [f.to_dict() for f in self.findings],
        }


def _render(template: str, values: dict[str, Any]) -> str:
    if "{" not in template:
        return template
    return _PLACEHOLDER.sub(
        lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CharterEngine:
    """Checks posts against a charter. Pure: no I/O besides the optional history object.

    ``check`` records each post into the history (``record=True``) so that the next posts
    are compared with it (near-duplicates, bursts); pass ``record=False`` for a dry run.
    """

    def __init__(
        self,
        charter: Charter,
        history: PostHistory | None = None,
        model_hook: ModelScorer | str | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.charter = charter
        self.history = history
        self._compiled = compiled_of(charter)
        if isinstance(model_hook, str):
            model_hook = resolve_hook(model_hook)
        elif model_hook is None and charter.model_hook:
            model_hook = resolve_hook(charter.model_hook)
        self.model_hook: ModelScorer | None = model_hook
        self._clock = clock
        self._guesser = self._compiled.guesser

    def warm_up(self) -> None:
        """Load the language model now rather than on the first unclear post (~0.6 s)."""
        self._guesser.warm_up()

    def check(self, post: PostToCheck, *, record: bool = True) -> Decision:
        now = self._clock()
        if post.occurred_at is not None and post.occurred_at.tzinfo is None:
            # A naive timestamp is read as UTC rather than failing every date comparison.
            post = replace(post, occurred_at=post.occurred_at.replace(tzinfo=UTC))
        ctx = PostContext(
            post,
            now=now,
            history=self.history,
            model_hook=self.model_hook,
            guesser=self._guesser,
            signer=signature,
        )
        when = post.occurred_at or now
        findings: list[Finding] = []
        worst = 0
        for cr in self._compiled.rules:
            if not cr.always and not cr.applies(ctx, when):
                continue
            hits = cr.check(ctx)
            if hits is None:
                continue
            findings.extend(self._findings(cr.rule, hits))
            if not cr.rule.shadow and cr.severity > worst:
                worst = cr.severity
        chash = content_hash(post.text)
        version = self.charter.version
        did = hashlib.sha256(f"{post.post_id}\x1f{chash}\x1f{version}".encode()).hexdigest()[:32]
        decision = Decision(
            decision_id=did,
            post_id=post.post_id,
            content_hash=chash,
            charter_version=version,
            engine_version=ENGINE_VERSION,
            lang=ctx.lang,
            verdict=_VERDICTS[worst],
            findings=tuple(findings),
        )
        if record and self.history is not None:
            self.history.record(
                HistoryEntry(post.post_id, post.ambassador_id, when, ctx.signature, post.campaign)
            )
        return decision

    def check_many(self, posts: Iterable[PostToCheck], *, record: bool = True) -> list[Decision]:
        return [self.check(p, record=record) for p in posts]

    def _findings(self, rule: Any, hits: list[Hit]) -> list[Finding]:
        spanned: list[Hit] = []
        seen: set[tuple[int | None, int | None]] = set()
        data: dict[str, Any] = {}
        for h in hits:
            for k, v in h.data.items():
                data.setdefault(k, v)
            if h.start is not None and (h.start, h.end) not in seen:
                seen.add((h.start, h.end))
                spanned.append(h)
        targets: list[Hit] = spanned[:MAX_FINDINGS_PER_RULE] or [Hit()]
        labels = PRINCIPLE_LABELS[rule.principle]
        out = []
        for h in targets:
            values = {**data, **h.data, "rule": rule.id, "match": h.matched or ""}
            if "similarity" in values:
                values["similarity"] = f"{float(values['similarity']):.0%}"
            msg = {}
            rem = {}
            for lang in ("fr", "en"):
                values["principle"] = labels[lang]
                msg[lang] = _render(getattr(rule.message, lang), values)
                rem[lang] = _render(getattr(rule.remediation, lang), values)
            span = (h.start, h.end) if h.start is not None and h.end is not None else None
            out.append(
                Finding(
                    rule=rule.id,
                    principle=str(rule.principle),
                    verdict=rule.verdict,
                    span=span,
                    matched=h.matched,
                    message=msg,
                    remediation=rem,
                    shadow=rule.shadow,
                )
            )
        return out


def most_severe(verdicts: Iterable[str]) -> Verdict:
    worst = max((SEVERITY[v] for v in verdicts), default=0)
    return _VERDICTS[worst]

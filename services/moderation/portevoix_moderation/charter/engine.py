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


class _Template:
    """A message template split once into literal text and ``{placeholder}`` names."""

    __slots__ = ("_names", "_parts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        parts = _PLACEHOLDER.split(text)  # literal, name, literal, name, ..., literal
        self._parts = parts
        self._names = parts[1::2]

    def render(self, values: dict[str, Any]) -> str:
        if not self._names:
            return self.text
        parts = list(self._parts)
        for i, name in enumerate(self._names):
            parts[2 * i + 1] = str(values[name]) if name in values else "{" + name + "}"
        return "".join(parts)


_LANGS = ("fr", "en")


class _RuleMessages:
    """A rule's message and remediation templates per language, and its principle labels."""

    __slots__ = ("labels", "message", "needs_principle", "remediation")

    def __init__(self, rule: Any) -> None:
        self.labels = PRINCIPLE_LABELS[rule.principle]
        self.message = [_Template(getattr(rule.message, lang)) for lang in _LANGS]
        self.remediation = [_Template(getattr(rule.remediation, lang)) for lang in _LANGS]


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
        self._messages: dict[str, _RuleMessages] = {}  # rule id -> split templates

    def warm_up(self, *, language_model: bool = False) -> None:
        """Check one post so first-use costs are paid now, not inside the first batch.

        The language model (~0.5 s, ~45 MB) is only loaded with ``language_model=True``:
        otherwise it is loaded on the first post the stop-word vote cannot settle, which most
        processes never see (see ``language``)."""
        self.check(PostToCheck("warm-up", "Warm-up post, checked and forgotten."), record=False)
        if language_model:
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
        texts = self._messages.get(rule.id)
        if texts is None:
            texts = self._messages[rule.id] = _RuleMessages(rule)
        labels = texts.labels
        out = []
        for h in targets:
            values = {**data, **h.data, "rule": rule.id, "match": h.matched or ""}
            if "similarity" in values:
                values["similarity"] = f"{float(values['similarity']):.0%}"
            msg = {}
            rem = {}
            for lang, m_tpl, r_tpl in zip(_LANGS, texts.message, texts.remediation, strict=True):
                values["principle"] = labels[lang]
                msg[lang] = m_tpl.render(values)
                rem[lang] = r_tpl.render(values)
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

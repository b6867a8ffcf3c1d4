"""Turns a validated ``Charter`` into closures, once: detectors, lexicons, regexes, scopes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from .context import Hit, PostContext
from .detectors import REGISTRY, CompileContext, DetectorFn
from .errors import CharterError
from .language import LanguageGuesser
from .model import SEVERITY, Charter, Condition, Rule, Scope

PLACEHOLDERS = frozenset(
    [
        "match",
        "principle",
        "rule",
        "count",
        "limit",
        "kind",
        "lang",
        "share",
        "embargo",
        "until",
        "campaign",
        "similarity",
        "similar_to",
        "tags",
        "score",
        "label",
    ]
)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    check: DetectorFn
    severity: int
    kinds: frozenset[str] | None
    networks: frozenset[str] | None
    languages: frozenset[str] | None
    always: bool  # no scope and no validity window: skip ``applies``

    def applies(self, ctx: PostContext, when: datetime) -> bool:
        r = self.rule
        if r.valid_from is not None and when < r.valid_from:
            return False
        if r.valid_until is not None and when >= r.valid_until:
            return False
        if self.kinds is not None and ctx.post.kind not in self.kinds:
            return False
        if self.networks is not None and (ctx.post.network or "") not in self.networks:
            return False
        return self.languages is None or ctx.lang in self.languages


@dataclass(frozen=True, slots=True)
class CompiledCharter:
    rules: tuple[CompiledRule, ...]
    guesser: LanguageGuesser
    stateful: bool


def _compile_condition(cond: Condition, cctx: CompileContext, path: str) -> DetectorFn:
    if cond.detector is not None:
        spec = REGISTRY.get(cond.detector)
        if spec is None:
            known = ", ".join(sorted(REGISTRY))
            raise ValueError(
                f"{path}.detector: unknown detector {cond.detector!r} (known: {known})"
            )
        try:
            params = spec.params.model_validate(cond.params)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(
                f"{path}.params{'.' + where if where else ''}: {first['msg']}"
                f" (detector {cond.detector!r})"
            ) from None
        try:
            return spec.build(params, cctx)
        except ValueError as exc:
            raise ValueError(f"{path}.params: {exc}") from None
    if cond.not_ is not None:
        inner = _compile_condition(cond.not_, cctx, f"{path}.not")

        def negate(ctx: PostContext) -> list[Hit] | None:
            return [] if inner(ctx) is None else None

        return negate
    if cond.all_ is not None:
        parts = [_compile_condition(c, cctx, f"{path}.all[{i}]") for i, c in enumerate(cond.all_)]

        def all_of(ctx: PostContext) -> list[Hit] | None:
            out: list[Hit] = []
            for p in parts:
                r = p(ctx)
                if r is None:
                    return None
                out.extend(r)
            return out

        return all_of
    assert cond.any_ is not None
    alts = [_compile_condition(c, cctx, f"{path}.any[{i}]") for i, c in enumerate(cond.any_)]

    def any_of(ctx: PostContext) -> list[Hit] | None:
        # Every alternative runs so that all matched spans are reported.
        out: list[Hit] | None = None
        for p in alts:
            r = p(ctx)
            if r is not None:
                out = r if out is None else out + r
        return out

    return any_of


def _check_messages(rule: Rule) -> None:
    for field in ("message", "remediation"):
        loc = getattr(rule, field)
        for lang in ("fr", "en"):
            for name in _PLACEHOLDER.findall(getattr(loc, lang)):
                if name not in PLACEHOLDERS:
                    raise ValueError(
                        f"{field}.{lang}: unknown placeholder {{{name}}}"
                        f" (known: {', '.join(sorted(PLACEHOLDERS))})"
                    )


def compile_charter(
    charter: Charter, base_dirs: Sequence[str], source: str = "<charter>"
) -> CompiledCharter:
    """Compile every rule; any problem becomes a ``CharterError`` naming the rule and field."""
    cctx = CompileContext(charter, tuple(base_dirs))
    seen: set[str] = set()
    rules: list[CompiledRule] = []
    stateful = False
    for rule in charter.rules:
        if rule.id in seen:
            raise CharterError("id: duplicate rule id", source=source, rule=rule.id)
        seen.add(rule.id)
        try:
            check = _compile_condition(rule.conditions, cctx, "conditions")
            _check_messages(rule)
        except (ValueError, OSError) as exc:
            raise CharterError(str(exc), source=source, rule=rule.id) from None
        used = rule.conditions.detectors()
        if "model_score" in used and rule.verdict == "block":
            raise CharterError(
                "verdict: a rule using the model hook ('model_score') can at most be 'review';"
                " a model score alone never blocks a post",
                source=source,
                rule=rule.id,
            )
        stateful = stateful or any(REGISTRY[d].stateful for d in used)
        scope = rule.scope
        rules.append(
            CompiledRule(
                rule=rule,
                check=check,
                severity=SEVERITY[rule.verdict],
                kinds=frozenset(scope.kinds) if scope.kinds is not None else None,
                networks=frozenset(scope.networks) if scope.networks is not None else None,
                languages=frozenset(scope.languages) if scope.languages is not None else None,
                always=scope == Scope() and rule.valid_from is None and rule.valid_until is None,
            )
        )
    cctx.bank.finalize()
    cctx.pattern_bank.finalize()
    return CompiledCharter(tuple(rules), LanguageGuesser(charter.languages), stateful)

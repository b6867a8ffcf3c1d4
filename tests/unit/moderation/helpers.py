"""Helpers for the moderation tests: posts and tiny custom charters."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

from portevoix_moderation.charter import Charter, Decision, PostToCheck, load_charter

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def post(text: str, **kw: object) -> PostToCheck:
    kw.setdefault("post_id", "t:1")
    return PostToCheck(text=text, **kw)  # type: ignore[arg-type]


def rules_fired(decision: Decision) -> set[str]:
    return {f.rule for f in decision.findings}


MINI_HEADER = """\
version: "t-1"
name: test charter
languages: [fr, en]
"""


def mini_charter(rules_yaml: str, header: str = MINI_HEADER) -> Charter:
    """Load a charter made of ``header`` and the given ``rules:`` body (YAML, dedented)."""
    return load_charter(header + "rules:\n" + textwrap.indent(textwrap.dedent(rules_yaml), "  "))


RULE_TEMPLATE = """\
- id: {id}
  principle: {principle}
  conditions: {conditions}
  verdict: {verdict}
  message: {{fr: "m {{match}}", en: "m {{match}}"}}
  remediation: {{fr: r, en: r}}
"""


def rule(
    id: str = "r1",
    conditions: str = "{detector: regex, params: {pattern: 'foo'}}",
    verdict: str = "block",
    principle: str = "responsabilite",
    extra: str = "",
) -> str:
    text = RULE_TEMPLATE.format(id=id, principle=principle, conditions=conditions, verdict=verdict)
    return text + textwrap.indent(textwrap.dedent(extra), "  ") if extra else text

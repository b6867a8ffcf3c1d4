from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portevoix_moderation.charter import (
    ENGINE_VERSION,
    Charter,
    CharterEngine,
    Decision,
    Finding,
    default_charter,
)
from portevoix_moderation.charter.examples import check_example

from .helpers import mini_charter, post, rule, rules_fired


def _examples() -> list[tuple[str, str, int]]:
    out = []
    for r in default_charter().rules:
        out += [(r.id, "must_match", i) for i in range(len(r.must_match))]
        out += [(r.id, "must_not_match", i) for i in range(len(r.must_not_match))]
    return out


@pytest.mark.parametrize(("rule_id", "kind", "index"), _examples())
def test_default_charter_examples(charter: Charter, rule_id: str, kind: str, index: int) -> None:
    r = charter.rule(rule_id)
    example = getattr(r, kind)[index]
    fired = rule_id in rules_fired(check_example(charter, example, f"ex:{rule_id}:{index}"))
    assert fired is (kind == "must_match"), example.text


def test_every_rule_is_evaluated_and_the_most_severe_wins(engine: CharterEngine) -> None:
    d = engine.check(
        post("Commentez OUI ! Ce connard a laissé le projet Colibri en démo", kind="relay"),
        record=False,
    )
    assert {
        "utilite.engagement-bait",
        "responsabilite.insult",
        "correction.code-name",
        "sincerite.disclosure",
    } <= rules_fired(d)
    assert d.verdict == "block"


def test_shadow_rules_are_recorded_but_not_enforced(engine: CharterEngine) -> None:
    long_text = "Nous avons livré la nouvelle plateforme. " * 12
    d = engine.check(post(long_text), record=False)
    assert [f.rule for f in d.findings] == ["conversation.no-question"]
    assert d.findings[0].shadow is True
    assert d.verdict == "allow"


def test_shadow_block_does_not_block() -> None:
    charter = mini_charter(rule(extra="shadow: true\n"))
    d = CharterEngine(charter).check(post("foo"))
    assert d.verdict == "allow" and d.findings[0].shadow and d.findings[0].verdict == "block"


def test_rule_validity_window() -> None:
    charter = mini_charter(
        rule(extra="valid_from: 2026-06-01\nvalid_until: 2026-07-01T00:00:00Z\n")
    )
    engine = CharterEngine(charter)
    at = lambda *a: post("foo", occurred_at=datetime(*a, tzinfo=UTC))  # noqa: E731
    assert engine.check(at(2026, 5, 31, 23)).verdict == "allow"
    assert engine.check(at(2026, 6, 1)).verdict == "block"
    assert engine.check(at(2026, 7, 1)).verdict == "allow"


def test_scope_by_kind_network_and_language() -> None:
    charter = mini_charter(
        rule(extra="scope: {kinds: [relay], networks: [linkedin], languages: [fr]}\n")
    )
    engine = CharterEngine(charter)
    base = {"kind": "relay", "network": "linkedin", "lang": "fr"}
    assert engine.check(post("foo", **base)).verdict == "block"
    assert engine.check(post("foo", **{**base, "kind": "original"})).verdict == "allow"
    assert engine.check(post("foo", **{**base, "network": "x"})).verdict == "allow"
    assert engine.check(post("foo", **{**base, "lang": "en"})).verdict == "allow"


def test_not_and_any_combinators() -> None:
    cond = "{all: [{any: [{detector: regex, params: {pattern: foo}}, {detector: regex, params: {pattern: bar}}]}, {not: {detector: regex, params: {pattern: ok}}}]}"
    engine = CharterEngine(mini_charter(rule(conditions=cond)))
    assert engine.check(post("foo")).verdict == "block"
    assert engine.check(post("bar")).verdict == "block"
    assert engine.check(post("foo ok")).verdict == "allow"
    d = engine.check(post("foo and bar"))
    assert [f.matched for f in d.findings] == ["foo", "bar"]  # every alternative reports


def test_decision_shape_and_determinism(engine: CharterEngine, charter: Charter) -> None:
    p = post("Quel connard", post_id="linkedin:42")
    d1, d2 = engine.check(p, record=False), engine.check(p, record=False)
    assert d1 == d2 and d1.decision_id == d2.decision_id
    assert d1.charter_version == charter.version and d1.engine_version == ENGINE_VERSION
    assert len(d1.content_hash) == 64
    as_dict = d1.to_dict()
    assert set(as_dict) == {
        "decision_id",
        "post_id",
        "content_hash",
        "charter_version",
        "engine_version",
        "lang",
        "verdict",
        "findings",
    }
    assert set(as_dict["findings"][0]) == {
        "rule",
        "principle",
        "verdict",
        "span",
        "matched",
        "message",
        "remediation",
        "shadow",
    }
    assert as_dict["findings"][0]["span"] == [5, 12]
    other = engine.check(post("Quel connard", post_id="linkedin:43"), record=False)
    assert other.decision_id != d1.decision_id
    bumped = charter.model_copy(update={"version": "other"})
    assert CharterEngine(bumped).check(p, record=False).decision_id != d1.decision_id


def test_messages_name_the_principle(engine: CharterEngine) -> None:
    f: Finding = engine.check(post("Quel connard"), record=False).findings[0]
    assert f.principle == "responsabilite"
    assert f.message["fr"].startswith("Responsabilité") and f.message["en"].startswith(
        "Responsibility"
    )


def test_check_many(engine: CharterEngine) -> None:
    ds: list[Decision] = engine.check_many(
        [post("Bonjour", post_id="a"), post("Quel con", post_id="b")]
    )
    assert [d.verdict for d in ds] == ["allow", "block"]


def test_engine_works_with_a_charter_built_in_code() -> None:
    loaded = mini_charter(rule())
    fresh = Charter.model_validate(loaded.model_dump(by_alias=True))
    assert CharterEngine(fresh).check(post("foo")).verdict == "block"


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("abcon0134@$.- #@:/éÉ\u00ad\u200b12345678\n😀?!")),
        max_size=120,
    ),
    kind=st.sampled_from(["original", "relay"]),
)
def test_engine_never_crashes_and_spans_are_valid(text: str, kind: str) -> None:
    d = _HYPO_ENGINE.check(post(text, kind=kind), record=False)
    assert d.verdict in {"allow", "nudge", "review", "block"}
    for f in d.findings:
        if f.span is not None:
            assert 0 <= f.span[0] < f.span[1] <= len(text)


def test_naive_timestamps_are_read_as_utc(engine: CharterEngine) -> None:
    d = engine.check(post("Globex arrive", occurred_at=datetime(2026, 12, 1, 10, 0)), record=False)
    assert "correction.embargo" in rules_fired(d)


_HYPO_ENGINE = CharterEngine(default_charter(), history=None)

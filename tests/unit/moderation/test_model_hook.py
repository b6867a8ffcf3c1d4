import pytest

from portevoix_moderation.charter import CharterEngine, CharterError

from .helpers import mini_charter, post, rule

MODEL_RULE = rule(conditions="{detector: model_score, params: {threshold: 0.7}}", verdict="review")


def fake_scorer(text: str, lang: str | None) -> float:
    return 0.95 if "toxic" in text else 0.1


def test_hook_passed_at_construction() -> None:
    engine = CharterEngine(mini_charter(MODEL_RULE), model_hook=fake_scorer)
    assert engine.check(post("so toxic")).verdict == "review"
    assert engine.check(post("lovely")).verdict == "allow"


def test_no_hook_means_the_rule_never_fires() -> None:
    assert CharterEngine(mini_charter(MODEL_RULE)).check(post("so toxic")).verdict == "allow"


def test_hook_by_dotted_path() -> None:
    path = f"{__name__}:fake_scorer"
    engine = CharterEngine(mini_charter(MODEL_RULE), model_hook=path)
    assert engine.check(post("toxic")).verdict == "review"
    header = f'version: "t"\nname: t\nlanguages: [en]\nmodel_hook: "{path}"\n'
    assert CharterEngine(mini_charter(MODEL_RULE, header)).check(post("toxic")).verdict == "review"


def test_a_model_can_never_block() -> None:
    with pytest.raises(CharterError, match=r"rule 'r1'.*at most be 'review'"):
        mini_charter(rule(conditions="{detector: model_score}", verdict="block"))
    both = "{all: [{detector: model_score}, {detector: regex, params: {pattern: x}}]}"
    with pytest.raises(CharterError, match="model_score"):
        mini_charter(rule(conditions=both, verdict="block"))

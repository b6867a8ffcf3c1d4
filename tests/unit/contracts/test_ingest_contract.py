import pytest
from pydantic import ValidationError

from portevoix.contracts.ingest import describe_validation_error, parse_ingest_event

POST = {
    "type": "post", "event_id": "e1", "network": "linkedin", "post_id": "p1",
    "author": "@Alice", "text": "Bonjour", "kind": "original",
    "occurred_at": "2026-11-21T10:00:00+01:00",
}  # fmt: skip


def test_valid_post_is_normalised() -> None:
    ev = parse_ingest_event(POST)
    assert ev.author == "alice"
    assert ev.occurred_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert ev.occurred_at.hour == 9


@pytest.mark.parametrize(
    ("patch", "field", "rule"),
    [
        ({"kind": "story"}, "kind", "literal_error"),
        ({"occurred_at": "2026-11-21T10:00:00"}, "occurred_at", "value_error"),
        # Valid text whose UTC time falls past year 9999: explained, not an OverflowError.
        ({"occurred_at": "9999-12-31T23:59:59-01:00"}, "occurred_at", "value_error"),
        ({"network": "myspace"}, "network", "literal_error"),
        ({"event_id": ""}, "event_id", "string_too_short"),
        ({"followers": -3}, "followers", "greater_than_equal"),
        ({"surprise": 1}, "surprise", "extra_forbidden"),
    ],
)
def test_errors_name_the_field_and_the_rule(patch: dict, field: str, rule: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_ingest_event({**POST, **patch})
    problems = describe_validation_error(exc.value)
    assert [(p.field, p.rule) for p in problems] == [(field, rule)]


def test_missing_field_and_unknown_type() -> None:
    body = dict(POST)
    del body["author"]
    with pytest.raises(ValidationError) as exc:
        parse_ingest_event(body)
    assert describe_validation_error(exc.value)[0].field == "author"
    with pytest.raises(ValidationError) as exc:
        parse_ingest_event({**POST, "type": "retweet"})
    assert describe_validation_error(exc.value)[0].rule == "union_tag_invalid"


def test_ambassador_idempotency_key_is_stable_and_content_based() -> None:
    a = {"type": "ambassador", "ambassador_id": "a1", "display_name": "A", "team": "T",
         "handles": {"linkedin": "@A"}, "consent": True}  # fmt: skip
    k1 = parse_ingest_event(a).idempotency_key()
    assert k1 == parse_ingest_event(dict(a)).idempotency_key()
    assert k1 != parse_ingest_event({**a, "team": "U"}).idempotency_key()
    assert parse_ingest_event({**a, "event_id": "x"}).idempotency_key() == "x"

"""Hypothesis strategies for what a broken or hostile producer sends: random bytes, invalid UTF-8,
JSON of the wrong shape, contract-v1 events with a field missing, of the wrong type, too long,
or dated in the future."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

NOW = datetime.now(UTC)
RECENT = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

VALID: dict[str, dict[str, Any]] = {
    "post": {"type": "post", "event_id": "x", "network": "linkedin", "post_id": "p",
             "author": "someone", "text": "Bonjour", "kind": "original", "occurred_at": RECENT},
    "like": {"type": "like", "event_id": "x", "network": "linkedin", "post_id": "p",
             "actor": "fan", "occurred_at": RECENT},
    "comment": {"type": "comment", "event_id": "x", "network": "x", "post_id": "p",
                "actor": "fan", "occurred_at": RECENT, "text": "Bravo"},
    "ambassador": {"type": "ambassador", "ambassador_id": "a", "display_name": "A",
                   "team": "T", "handles": {"linkedin": "a"}, "consent": True},
}  # fmt: skip
OPTIONAL = {"text"}  # a comment's text may be left out
REQUIRED = {
    kind: [k for k in body if k != "type" and not (kind == "comment" and k in OPTIONAL)]
    for kind, body in VALID.items()
}

# Values pydantic (lax mode) never coerces into the field's type.
_never_text = st.one_of(
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_huge = st.integers(min_value=20_001, max_value=100_000).map(lambda n: "é" * n)
_bad_dates = st.one_of(
    st.datetimes(min_value=datetime(2100, 1, 1), max_value=datetime(9999, 1, 1)).map(
        lambda d: d.isoformat() + "Z"
    ),  # the future
    st.datetimes(max_value=datetime(2000, 1, 1)).map(lambda d: d.isoformat() + "Z"),  # too old
    st.datetimes().map(lambda d: d.isoformat()),  # no time zone
    st.text(max_size=30).filter(lambda s: not s[:4].isdigit()),  # not a date
)


@st.composite
def broken_event(draw: st.DrawFn) -> dict[str, Any]:
    """A contract-v1 event with exactly one thing wrong."""
    kind = draw(st.sampled_from(sorted(VALID)))
    event = dict(VALID[kind])
    how = draw(st.sampled_from(["missing", "wrong_type", "huge", "date", "enum", "extra"]))
    if kind == "ambassador" and how == "date":
        how = "wrong_type"
    if how == "missing":
        del event[draw(st.sampled_from(REQUIRED[kind]))]
    elif how == "wrong_type":
        field = draw(st.sampled_from(REQUIRED[kind]))
        if field == "consent":  # a boolean field: booleans are its right type
            event[field] = draw(st.sampled_from([None, [], {}, "maybe", 2]))
        else:
            event[field] = draw(_never_text)
    elif how == "huge":
        field = (
            "text"
            if kind in ("post", "comment")
            else "event_id"
            if kind != "ambassador"
            else "team"
        )
        event[field] = draw(_huge)
    elif how == "date":
        event["occurred_at"] = draw(_bad_dates)
    elif how == "enum":
        event["network" if kind != "ambassador" else "consent"] = draw(
            st.sampled_from(["myspace", "LinkedIn ", "", "yes please"])
        )
    else:
        event[draw(st.sampled_from(["points", "score", "__proto__", "admin"]))] = 1
    return event


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def dumps(value: Any) -> bytes:
    """JSON with what orjson refuses to write (integers beyond 64 bits, lone surrogates as
    \\ud800 escapes): exactly what a hostile producer would try."""
    return json.dumps(value).encode()


def _invalid_utf8(b: bytes) -> bytes:
    return b'{"type": "like", "actor": "' + b + b'\xff\xfe"}'


junk_bytes = st.one_of(
    st.binary(min_size=1, max_size=200),  # random bytes (mostly not JSON)
    st.binary(max_size=40).map(_invalid_utf8),  # JSON-looking, invalid UTF-8
    json_values.filter(lambda v: not isinstance(v, dict)).map(dumps),  # not an object
    st.dictionaries(st.sampled_from(["type", "event_id", "network", "text", "actor"]), json_values,
                    max_size=5).map(dumps),  # an object of random fields
    broken_event().map(dumps),
)  # fmt: skip

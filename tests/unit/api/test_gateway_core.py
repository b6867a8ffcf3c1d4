"""Pure parts of the API gateway: projection planning, ETags, JWT claims, cursors, SSE framing,
the completed OpenAPI document."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from portevoix_api.etag import matches, weak_etag
from portevoix_api.jwks import claim, looks_like_jwt, role_from
from portevoix_api.openapi import complete
from portevoix_api.pagination import decode_cursor, decode_offset, encode_cursor, offset_cursor
from portevoix_api.problems import Problem
from portevoix_api.projections.analytics import (
    AnalyticsPlanner,
    InvalidEvent,
    fold,
    local_day,
    person,
    worst_per_principle,
)
from portevoix_api.routes.feed import parse_last_id, parse_types, sse_event

PARIS = ZoneInfo("Europe/Paris")
PLANNER = AnalyticsPlanner(PARIS, ["idée", "idea", "ideas"], retention_days=10)


def post_event(**over: object) -> dict[str, object]:
    return {"type": "post.received", "event_id": "e1", "occurred_at": "2026-11-20T23:30:00Z",
            "post_key": "linkedin:p1", "network": "linkedin", "post_id": "p1",
            "ambassador_id": "a1", "author": "h", "text": "t", "kind": "relay",
            "hashtags": ["Idées", "RSE", "rse", ""], **over}  # fmt: skip


def test_hashtags_fold_case_accents_and_hash() -> None:
    assert fold("#Idées") == "idees"
    assert fold("IDÉE") == "idee"
    assert fold("Ideas") == "ideas"
    assert PLANNER.is_idea(["Idée"]) and PLANNER.is_idea(["#IDEA"])
    assert not PLANNER.is_idea(["idealiste", "rse"])


def test_local_day_follows_the_organisation_zone() -> None:
    assert local_day("2026-11-20T23:30:00Z", PARIS) == "2026-11-21"
    assert local_day("2026-07-01T21:59:00Z", PARIS) == "2026-07-01"
    with pytest.raises(InvalidEvent):
        local_day("2026-11-20T10:00:00", PARIS)  # no zone
    with pytest.raises(InvalidEvent):
        local_day("yesterday", PARIS)


def test_post_step_keys_args_and_idea_detail() -> None:
    step = PLANNER.plan(post_event(hashtags=["Idées", "RSE", "rse", ""]))
    assert step is not None and step.op == "post"
    assert step.keys[0] == "pv:{an}:seen:2026-11-21"
    assert all("{an}" in k for k in step.keys)  # one Redis Cluster slot
    event_id, ttl, post_key, network, kind, day, idea, detail, who, *tags = step.args
    assert (event_id, ttl, post_key, network, kind, day) == (
        "e1", 864_000, "linkedin:p1", "linkedin", "relay", "2026-11-21"
    )  # fmt: skip
    assert idea == "0"  # "idees" is not in this planner's list
    assert detail == "" and tags == ["idees", "rse"]  # folded, deduplicated, no empty tag
    assert who == person("a1") and "a1" not in str(who)
    idea_step = PLANNER.plan(post_event(hashtags=["Idée"]))
    assert idea_step is not None and idea_step.args[6] == "1"
    assert '"text":"t"' in str(idea_step.args[7])


def test_engagement_moderation_registration_erasure_steps() -> None:
    base = {"event_id": "x", "occurred_at": "2026-11-20T10:00:00Z"}
    eng = PLANNER.plan({**base, "type": "engagement.received", "engagement": "like",
                        "post_key": "x:1", "network": "x", "actor_ambassador_id": "a2"})  # fmt: skip
    assert eng is not None and eng.args[3:] == ["like", "x", person("a2"), "2026-11-20"]
    outsider = PLANNER.plan({**base, "type": "engagement.received", "engagement": "click",
                             "post_key": "x:1", "network": "x"})  # fmt: skip
    assert outsider is not None and outsider.args[5] == ""
    mod = PLANNER.plan({**base, "type": "post.moderated", "post_key": "x:1", "verdict": "review",
                        "findings": [{"principle": "utilite", "verdict": "nudge"},
                                     {"principle": "utilite", "verdict": "review"},
                                     {"principle": "modestie", "verdict": "block", "shadow": True}]})  # fmt: skip
    assert mod is not None and mod.args[3:] == ["review", "utilite:review"]
    reg = PLANNER.plan({**base, "type": "ambassador.registered", "ambassador_id": "a1",
                        "team": "Ventes", "consent": False})  # fmt: skip
    assert reg is not None and reg.args[2:] == [person("a1"), "Ventes", "0"]
    gone = PLANNER.plan({**base, "type": "ambassador.erased", "ambassador_id": "a1"})
    assert gone is not None and gone.args[-1] == "pv:{an}:post:"
    assert PLANNER.plan({**base, "type": "badge.awarded"}) is None
    with pytest.raises(InvalidEvent):
        PLANNER.plan({**base, "type": "post.moderated", "post_key": "x:1", "verdict": "maybe"})
    with pytest.raises(InvalidEvent):
        PLANNER.plan({"type": "post.received", "occurred_at": "2026-11-20T10:00:00Z"})


def test_worst_per_principle_ignores_shadow_and_unknown() -> None:
    findings: list[dict[str, object]] = [
        {"principle": "a", "verdict": "allow"}, {"principle": "a", "verdict": "block"},
        {"principle": "b", "verdict": "nudge", "shadow": True}, {"principle": "c", "verdict": "?"},
    ]  # fmt: skip
    assert worst_per_principle(findings) == {"a": "block"}


def test_weak_etag_comparison() -> None:
    tag = weak_etag(b'{"items":[]}')
    assert tag.startswith('W/"') and tag == weak_etag(b'{"items":[]}')
    assert tag != weak_etag(b'{"items":[1]}')
    assert matches(tag, tag) and matches("*", tag)
    assert matches(f'"abc", {tag.removeprefix("W/")}', tag)  # strong form, in a list
    assert not matches('W/"other"', tag)


def test_jwt_claims_and_roles() -> None:
    claims = {"realm_access": {"roles": ["offline", "moderator", "ambassador"]}, "role": "admin"}
    assert claim(claims, "realm_access.roles") == ["offline", "moderator", "ambassador"]
    assert claim(claims, "realm_access.missing.deeper") is None
    assert role_from(claim(claims, "realm_access.roles")) == "moderator"  # most privileged
    assert role_from("service") == "service"
    assert role_from(["viewer"]) is None and role_from(None) is None and role_from(3) is None
    assert looks_like_jwt("eyJhbGciOi.eyJzdWIi.sig")
    assert not looks_like_jwt("pvk_abc.def") and not looks_like_jwt("plain-token")


def test_cursors_are_opaque_and_checked() -> None:
    assert decode_offset(offset_cursor(40)) == 40
    assert decode_offset(None) == 0
    assert decode_cursor(encode_cursor("t", "2026:x"), "t") == "2026:x"
    for bad in ("%%%", encode_cursor("t", "1"), encode_cursor("o", "-1"), "bm9wZQ"):
        with pytest.raises(Problem) as exc:
            decode_offset(bad)
        assert exc.value.status == 422 and exc.value.kind == "invalid-cursor"


def test_sse_framing_and_feed_parameters() -> None:
    assert sse_event(7, "post.moderated", b'{"a":1}') == (
        b'id: 7\nevent: post.moderated\ndata: {"a":1}\n\n'
    )
    assert sse_event(8, "x.y", b"l1\nl2") == b"id: 8\nevent: x.y\ndata: l1\ndata: l2\n\n"
    assert parse_types("post.moderated, post.reviewed,post.moderated") == [
        "post.moderated", "post.reviewed"
    ]  # fmt: skip
    assert parse_types(None) == [] and parse_types("") == []
    with pytest.raises(Problem):
        parse_types("post.moderated,drop.tables")
    assert parse_last_id("12", None) == 12 and parse_last_id(None, "5") == 5
    assert parse_last_id(None, None) is None
    for bad in ("-1", "1e3", "x", "9" * 25):
        with pytest.raises(Problem):
            parse_last_id(bad, None)


def test_openapi_is_completed_with_problem_answers() -> None:
    schema = {
        "paths": {
            "/v1/things/{id}": {
                "get": {"security": [{"HTTPBearer": []}], "responses": {"200": {}, "422": {}}},
                "put": {"responses": {"202": {}}},
            }
        },
        "components": {"schemas": {"HTTPValidationError": {}, "ValidationError": {}}},
    }
    done = complete(schema)
    get = done["paths"]["/v1/things/{id}"]["get"]["responses"]
    assert {"401", "403", "404", "422", "429", "500"} <= set(get)
    assert "413" not in get
    put = done["paths"]["/v1/things/{id}"]["put"]["responses"]
    assert {"404", "413", "422", "500"} <= set(put) and "401" not in put
    problem = get["422"]["content"]["application/problem+json"]
    assert problem["schema"] == {"$ref": "#/components/schemas/ProblemDetails"}
    assert problem["example"]["status"] == 422
    assert "HTTPValidationError" not in done["components"]["schemas"]
    assert "ProblemDetails" in done["components"]["schemas"]

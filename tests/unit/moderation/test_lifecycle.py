"""The pure life of a post after its decision: queue, reviews, appeals, overturns, audit."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import orjson
import pytest

from portevoix.contracts.events import AppealFiled, FindingOut, PostModerated, PostReviewed
from portevoix_moderation.charter import CharterError, load_charter_text
from portevoix_moderation.charter.similarity import (
    signature,
    signature_bytes,
    signature_from_bytes,
    similarity,
)
from portevoix_moderation.domain.lifecycle import (
    MISSED,
    PostRecord,
    on_appeal,
    on_decision,
    on_review,
    overturned_rules,
)
from portevoix_moderation.domain.notification import notification, signed_request, verify
from portevoix_moderation.store import Change, plan
from portevoix_moderation.webhooks import Subscriber, WebhookNotifier

AT = datetime(2026, 11, 20, 9, tzinfo=UTC)


def _finding(rule: str, principle: str, verdict: str, shadow: bool = False) -> FindingOut:
    return FindingOut(rule=rule, principle=principle, verdict=verdict,
                      message={"fr": "m", "en": "m"}, shadow=shadow)  # fmt: skip


def _decision(verdict: str, *findings: FindingOut, did: str = "d1") -> PostModerated:
    return PostModerated(
        event_id=f"decision:{did}", occurred_at=AT, producer="t", decision_id=did,
        post_key="linkedin:p1", post_event_id="e1", ambassador_id="alice",
        verdict=verdict, findings=list(findings), charter_version="1",
        engine_version="1", content_hash="h",
    )  # fmt: skip


def _review(outcome: str) -> PostReviewed:
    return PostReviewed(event_id="r", occurred_at=AT, producer="t", review_id="r",
                        post_key="linkedin:p1", outcome=outcome,
                        moderator="ann", note="n")  # fmt: skip


def _held() -> PostRecord:
    rec, _ = on_decision(
        None,
        _decision("review", _finding("conf", "correction", "review"),
                  _finding("tags", "utilite", "nudge"), _finding("shadowy", "utilite", "block",
                                                                 shadow=True)),
        text="t", network="linkedin", team="Ventes", now_ms=1000,
    )  # fmt: skip
    return rec


def test_a_held_post_is_queued_under_its_facets_and_announced() -> None:
    rec, fx = on_decision(
        None, _decision("review", _finding("conf", "correction", "review"),
                        _finding("shadowy", "utilite", "block", shadow=True)),
        text="t", network="linkedin", team="Ventes", now_ms=1000,
    )  # fmt: skip
    assert rec.status == "held" and rec.queued and fx.enqueue and fx.notify == "post.held"
    # A shadow rule counts as a fire but neither indexes nor stops the post.
    assert rec.facets() == [("rule", "conf"), ("principle", "correction"),
                            ("network", "linkedin"), ("team", "Ventes")]  # fmt: skip
    assert fx.counters == {"fires:conf": 1, "fires:shadowy": 1}
    assert fx.audit[0]["action"] == "held" and fx.audit_global


def test_an_allowed_post_is_not_queued_and_a_new_decision_leaves_the_queue() -> None:
    held = _held()
    rec, fx = on_decision(held, _decision("allow", did="d2"), text="t2", network="linkedin",
                          team="Ventes", now_ms=2000)  # fmt: skip
    assert rec.status == "allowed" and not rec.queued and not fx.enqueue
    assert fx.dequeue == held.facets() and fx.notify is None and not fx.audit_global


@pytest.mark.parametrize(
    ("verdict", "findings", "outcome", "overturned", "confirmed"),
    [
        ("review", [("conf", "review"), ("tags", "nudge")], "approved", ["conf"], []),
        ("review", [("conf", "review")], "rejected", [], ["conf"]),
        ("nudge", [("tags", "nudge")], "taken_down", ["tags"], []),
        ("allow", [], "taken_down", [MISSED], []),
        ("allow", [], "approved", [], []),
    ],
)
def test_overturns(verdict: str, findings: list[tuple[str, str]], outcome: str,
                   overturned: list[str], confirmed: list[str]) -> None:  # fmt: skip
    rec, _ = on_decision(
        None, _decision(verdict, *(_finding(r, "utilite", v) for r, v in findings)),
        text=None, network=None, team=None, now_ms=0,
    )  # fmt: skip
    assert overturned_rules(rec, outcome) == (overturned, confirmed)


def test_a_review_settles_the_post_and_counts_overturns() -> None:
    rec, fx = on_review(_held(), _review("approved"))
    assert rec is not None and rec.status == "approved" and not rec.queued
    assert fx.counters == {"overturns:conf": 1} and fx.overturned == ["conf"]
    assert fx.dequeue and fx.audit[0]["actor"] == "ann" and fx.audit[0]["note"] == "n"
    orphan, fx2 = on_review(None, _review("taken_down"))
    assert orphan is None and fx2.counters == {} and fx2.audit[0]["action"] == "taken_down"


def test_an_appeal_requeues_a_stopped_post_only() -> None:
    appeal = AppealFiled(event_id="a", occurred_at=AT, producer="t", appeal_id="a",
                         post_key="linkedin:p1", ambassador_id="alice", message="m")  # fmt: skip
    rejected, _ = on_review(_held(), _review("rejected"))
    rec, fx = on_appeal(rejected, appeal, now_ms=5000)
    assert rec is not None and rec.queued and fx.enqueue and rec.arrived_ms == 5000
    assert rec.appeals == 1 and fx.notify == "appeal.filed"
    allowed, _ = on_decision(None, _decision("allow"), text=None, network=None, team=None,
                             now_ms=0)  # fmt: skip
    rec2, fx2 = on_appeal(allowed, appeal, now_ms=5000)
    assert rec2 is not None and not rec2.queued and not fx2.enqueue and rec2.appeals == 1


def test_record_round_trips_and_plan_names_every_key_once() -> None:
    held = _held()
    assert PostRecord.loads(held.dumps()) == held
    reviewed, _ = on_review(held, _review("approved"))
    assert reviewed is not None and reviewed.rules and reviewed.review
    for rec in (held, reviewed):  # what the store kept before: the record as a plain dict
        assert rec.dumps() == orjson.dumps(dataclasses.asdict(rec))
    _, fx = on_decision(None, _decision("review", _finding("conf", "correction", "review")),
                        text="t", network="linkedin", team="Ventes", now_ms=1000)  # fmt: skip
    ops = plan(Change("post:e1", "linkedin:p1", held, fx, _decision("review")))
    assert ops.keys[0] == "pv:{mod}:seen:post:e1"
    assert len(set(ops.keys)) == len(ops.keys)
    assert all(k.startswith("pv:{mod}:") for k in ops.keys)  # one slot: one Lua call
    commands = [o[0] for o in ops.ops]
    assert commands.count("ZADD") == 1 + len(held.facets()) == 7
    assert "XADD" in commands and "RPUSH" in commands
    assert all(isinstance(a, str) for o in ops.ops for a in o[2:])


def test_webhook_payload_is_slack_compatible_and_signed() -> None:
    payload = notification("post.held", _held(), delivery_id="d1")
    assert payload["text"].startswith("*Post held for review*") and "correction" in payload["text"]
    body, headers = signed_request("secret-123", payload, 1_700_000_000)
    assert orjson.loads(body)["post_key"] == "linkedin:p1"
    assert verify("secret-123", headers["X-PV-Timestamp"], body, headers["X-PV-Signature"])
    assert not verify(
        "secret-123", headers["X-PV-Timestamp"], body + b" ", headers["X-PV-Signature"]
    )
    with pytest.raises(ValueError, match="unknown webhook event"):
        WebhookNotifier([Subscriber(url="http://x", secret="12345678", events=["post.liked"])])


def test_untrusted_charter_text_is_never_read_as_a_path() -> None:
    with pytest.raises(CharterError, match="mapping"):
        load_charter_text("/etc/hostname.yaml")


def test_signature_bytes_round_trip() -> None:
    sig = signature(
        [
            "une",
            "phrase",
            "assez",
            "longue",
            "pour",
            "faire",
            "plusieurs",
            "trigrammes",
            "de",
            "mots",
        ]
    )
    assert similarity(sig, signature_from_bytes(signature_bytes(sig))) == 1.0

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portevoix.contracts.ingest import AmbassadorIn, PostIn, parse_ingest_event
from portevoix_ingest.domain.normalise import (
    to_ambassador_registered,
    to_engagement_received,
    to_post_received,
)
from portevoix_ingest.domain.webhooks import (
    ADAPTERS,
    WebhookAuthError,
    WebhookPayloadError,
    adapt,
    linkedin_challenge_response,
    sign,
    verify_linkedin_signature,
    verify_signature,
    verify_x_signature,
    x_crc_response,
)

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = b"s3cr3t-webhook-key"
NOW = 1_795_250_000.0
TS = str(int(NOW))
BODY = b'{"type":"like","event_id":"e1"}'


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


# ---- Porte-Voix signature scheme ----------------------------------------------------------


def test_sign_format_and_verify() -> None:
    sig = sign(BODY, TS, SECRET)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    expected = hmac.new(SECRET, TS.encode() + b"." + BODY, hashlib.sha256).hexdigest()
    assert sig == "sha256=" + expected
    verify_signature(BODY, TS, sig, SECRET, NOW)
    verify_signature(BODY, TS, sig.upper().replace("SHA256=", "sha256="), SECRET, NOW)


def _reason(**kw: Any) -> str:
    args: dict[str, Any] = {
        "body": BODY,
        "timestamp": TS,
        "signature": sign(BODY, TS, SECRET),
        "secret": SECRET,
        "now": NOW,
    }
    args.update(kw)
    with pytest.raises(WebhookAuthError) as info:
        verify_signature(**args)
    reason: str = info.value.reason
    return reason


def test_verify_reasons() -> None:
    assert _reason(timestamp=None) == "missing_timestamp"
    assert _reason(timestamp=" ") == "missing_timestamp"
    assert _reason(signature=None) == "missing_signature"
    assert _reason(signature="") == "missing_signature"
    assert _reason(timestamp="2026-11-21T10:00:00Z") == "malformed_timestamp"
    assert _reason(timestamp="1795250000.5") == "malformed_timestamp"
    assert _reason(signature="md5=abc") == "malformed_signature"
    assert _reason(signature="sha256=xyz") == "malformed_signature"
    assert _reason(signature=",") == "malformed_signature"
    assert _reason(body=BODY + b" ") == "bad_signature"
    assert _reason(secret=b"other") == "bad_signature"
    old = str(int(NOW) - 301)
    assert _reason(timestamp=old, signature=sign(BODY, old, SECRET)) == "stale_timestamp"
    future = str(int(NOW) + 301)
    assert _reason(timestamp=future, signature=sign(BODY, future, SECRET)) == "future_timestamp"
    # A forged request with an old timestamp is a bad signature, not "stale".
    assert _reason(timestamp=old) == "bad_signature"


def test_verify_window_edges_and_rotation() -> None:
    edge = str(int(NOW) - 300)
    verify_signature(BODY, edge, sign(BODY, edge, SECRET), SECRET, NOW)
    verify_signature(BODY, TS, sign(BODY, TS, SECRET), SECRET, NOW + 1000, window_s=1000)
    # Sender rotating: two signatures; receiver rotating: two secrets.
    both = sign(BODY, TS, b"old-key") + "," + sign(BODY, TS, b"new-key")
    verify_signature(BODY, TS, both, b"new-key", NOW)
    verify_signature(BODY, TS, sign(BODY, TS, b"old-key"), [b"new-key", b"old-key"], NOW)
    with pytest.raises(ValueError):
        verify_signature(BODY, TS, sign(BODY, TS, SECRET), b"", NOW)
    too_many = ",".join([sign(BODY, TS, SECRET)] * 6)
    assert _reason(signature=too_many) == "malformed_signature"


@given(
    body=st.binary(max_size=2048),
    ts=st.integers(0, 10**11),
    secret=st.binary(min_size=1, max_size=64),
)
def test_verify_of_sign_always_passes(body: bytes, ts: int, secret: bytes) -> None:
    verify_signature(body, str(ts), sign(body, str(ts), secret), secret, float(ts))


@given(body=st.binary(min_size=1, max_size=512), data=st.data())
def test_one_bit_change_fails(body: bytes, data: st.DataObject) -> None:
    sig = sign(body, TS, SECRET)
    bit = data.draw(st.integers(0, len(body) * 8 - 1))
    flipped = bytearray(body)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(WebhookAuthError) as info:
        verify_signature(bytes(flipped), TS, sig, SECRET, NOW)
    assert info.value.reason == "bad_signature"
    # Flipping a bit of the signature itself fails too.
    digest = bytearray(bytes.fromhex(sig[7:]))
    sig_bit = data.draw(st.integers(0, 255))
    digest[sig_bit // 8] ^= 1 << (sig_bit % 8)
    with pytest.raises(WebhookAuthError):
        verify_signature(body, TS, "sha256=" + digest.hex(), SECRET, NOW)


# ---- network-native schemes ----------------------------------------------------------------


def test_linkedin_native_signature_and_challenge() -> None:
    good = hmac.new(SECRET, b"hmacsha256=" + BODY, hashlib.sha256).hexdigest()
    verify_linkedin_signature(BODY, good, SECRET)
    with pytest.raises(WebhookAuthError, match="bad_signature"):
        verify_linkedin_signature(BODY + b"x", good, SECRET)
    with pytest.raises(WebhookAuthError, match="missing_signature"):
        verify_linkedin_signature(BODY, None, SECRET)
    resp = linkedin_challenge_response("f3b1c2d4-0000-4000-8000-000000000000", SECRET)
    assert (
        resp["challengeResponse"]
        == hmac.new(SECRET, b"f3b1c2d4-0000-4000-8000-000000000000", hashlib.sha256).hexdigest()
    )


def test_x_native_signature_and_crc() -> None:
    mac = base64.b64encode(hmac.new(SECRET, BODY, hashlib.sha256).digest()).decode()
    verify_x_signature(BODY, "sha256=" + mac, SECRET)
    with pytest.raises(WebhookAuthError, match="bad_signature"):
        verify_x_signature(b"{}", "sha256=" + mac, SECRET)
    with pytest.raises(WebhookAuthError, match="malformed_signature"):
        verify_x_signature(BODY, "sha256=***", SECRET)
    assert x_crc_response("tok", SECRET)["response_token"].startswith("sha256=")


# ---- payload adapters -----------------------------------------------------------------------

SAMPLES = [
    ("linkedin", "linkedin_social_actions.json"),
    ("linkedin", "linkedin_rest_elements.json"),
    ("x", "x_tweet_create_events.json"),
    ("x", "x_favorite_events.json"),
    ("x", "x_tweet_delete_events.json"),
    ("mastodon", "mastodon_status_created.json"),
    ("mastodon", "mastodon_status_reblog.json"),
    ("mastodon", "mastodon_status_reply_cw.json"),
    ("mastodon", "mastodon_status_direct.json"),
    ("mastodon", "mastodon_notifications.json"),
    ("mastodon", "mastodon_stream_notification.json"),
    ("generic", "generic_single.json"),
    ("generic", "generic_batch.json"),
]


@pytest.mark.parametrize(("network", "name"), SAMPLES)
def test_every_sample_yields_valid_contract_events(network: str, name: str) -> None:
    events = adapt(network, load(name))
    ids = [e.get("event_id") for e in events if e["type"] != "ambassador"]
    assert len(ids) == len(set(ids))
    for raw in events:
        parsed = parse_ingest_event(raw)  # raises on any contract violation
        if isinstance(parsed, PostIn):
            evt: Any = to_post_received(parsed, "amb", "test")
        elif isinstance(parsed, AmbassadorIn):
            evt = to_ambassador_registered(parsed, "test", parsed_now())
        else:
            evt = to_engagement_received(parsed, None, "test")
        assert evt.event_id
    # Re-sent webhook -> identical events (so identical event ids: duplicates).
    assert adapt(network, load(name)) == events


def parsed_now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 11, 21, tzinfo=UTC)


def _by_id(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["event_id"]: e for e in events}


def test_linkedin_notifications_mapping() -> None:
    events = _by_id(adapt("linkedin", load("linkedin_social_actions.json")))
    org_post = "urn:li:share:7094637247487995904"
    comment = events[
        "linkedin:comment:urn:li:comment:(urn:li:activity:7094637247890620418,7094977717598625792)"
    ]
    assert comment["type"] == "comment"
    assert comment["post_id"] == org_post  # the share URN, not the activity URN
    assert comment["actor"] == "urn:li:person:Ab3xYz_Q1"
    assert comment["occurred_at"] == "2026-11-21T09:30:06.310Z"
    like = events[f"linkedin:like:urn:li:person:Ab3xYz_Q1:{org_post}"]
    assert like["type"] == "like"
    share = events["linkedin:share:urn:li:share:7095000000000000001"]
    assert (share["type"], share["post_id"]) == ("share", org_post)
    relay = events["linkedin:post:urn:li:share:7095000000000000001"]
    assert relay["kind"] == "relay"
    assert relay["text"] == (
        "Fière de mon entreprise : on recrute ! (je travaille chez Acme) #Alternance Acme France"
    )
    # A bare repost is a share only: no text of its own to moderate.
    assert "linkedin:post:urn:li:share:7095000000000000002" not in events
    assert "linkedin:share:urn:li:share:7095000000000000002" in events
    mention = events["linkedin:post:urn:li:share:7095000000000000003"]
    assert mention["kind"] == "original"
    assert len(events) == 6  # COMMENT_DELETE ignored


def test_linkedin_rest_elements_mapping() -> None:
    events = _by_id(adapt("linkedin", load("linkedin_rest_elements.json")))
    post = events["linkedin:post:urn:li:share:7096000000000000001"]
    assert post["text"].startswith("Ravie d'annoncer l'ouverture de notre agence de Lyon (enfin) !")
    assert "#Lyon #Recrutement" in post["text"]
    assert events["linkedin:post:urn:li:share:7096000000000000002"]["kind"] == "relay"
    assert "linkedin:post:urn:li:share:7096000000000000003" not in events  # connections only
    ugc = events["linkedin:post:urn:li:ugcPost:7096000000000000004"]
    assert ugc["text"] == "Our #sustainability report is out: https://acme.example/rse"
    like = events["linkedin:like:urn:li:person:Kq9_mm2:urn:li:share:7096000000000000001"]
    assert like["type"] == "like"  # PRAISE counts as a like
    # The same like from the webhook and from the Reactions API has one event id.
    assert like["occurred_at"] == "2026-11-21T09:46:40.000Z"


def test_x_mapping() -> None:
    events = _by_id(adapt("x", load("x_tweet_create_events.json")))
    post = events["x:tweet:1861000000000000001"]
    assert post["kind"] == "original"
    assert post["author"] == "AliceM"
    assert "&amp;" not in post["text"] and "Acme & de" in post["text"]
    assert "https://www.acme.example/fr/usine-lyon" in post["text"]  # t.co expanded
    assert "t.co" not in post["text"]
    assert post["text"].endswith("(je travaille chez Acme)")  # full text, media link dropped
    assert post["occurred_at"] == "2026-11-21T08:15:02.000Z"
    assert post["followers"] == 1834
    reply = events["x:reply:1861000000000000002"]
    assert reply["type"] == "comment"
    assert reply["text"] == "Bravo ! Vous recrutez des techniciens de maintenance ?"
    assert reply["post_id"] == "1861000000000000001"
    rt = events["x:retweet:1861000000000000003"]
    assert (rt["type"], rt["post_id"], rt["actor"]) == ("share", "1861000000000000001", "CharlieRH")
    quote = events["x:tweet:1861000000000000004"]
    assert quote["kind"] == "relay"
    assert quote["text"].endswith("proud to be part of this team.")
    assert events["x:quote:1861000000000000004"]["post_id"] == "1860000000000000555"
    # A stranger's tweet merely mentioning the user is not ingested.
    assert not any("1861000000000000005" in k for k in events)
    assert len(events) == 5


def test_x_favorite() -> None:
    [like] = adapt("x", load("x_favorite_events.json"))
    assert like == {
        "type": "like",
        "event_id": "x:fav:990000000000000077:1861000000000000001",
        "network": "x",
        "post_id": "1861000000000000001",
        "actor": "bob_dupont",
        "occurred_at": "2026-11-21T08:40:26.140Z",
    }


def test_x_created_at_fallback() -> None:
    payload = load("x_favorite_events.json")
    del payload["favorite_events"][0]["timestamp_ms"]
    assert adapt("x", payload)[0]["occurred_at"] == "2026-11-21T08:40:26Z"


def test_mastodon_status_html_to_text() -> None:
    [post] = adapt("mastodon", load("mastodon_status_created.json"))
    assert post["author"] == "alice@piaille.fr"
    assert post["text"] == (
        "Notre équipe R&D publie ses outils en open source 🎉\n"
        "Merci @bob pour la relecture !\n\n"
        "Tout est ici : https://code.acme.example/rnd/outils-ouverts #OpenSource #Idée"
    )
    parsed = parse_ingest_event(post)
    assert isinstance(parsed, PostIn)
    evt = to_post_received(parsed, "amb", "t")
    assert evt.hashtags == ["opensource", "idée"]
    assert evt.links == ["https://code.acme.example/rnd/outils-ouverts"]
    assert evt.lang == "fr"


def test_mastodon_routes_agree_on_event_ids() -> None:
    [reblog] = adapt("mastodon", load("mastodon_status_reblog.json"))
    [reply] = adapt("mastodon", load("mastodon_status_reply_cw.json"))
    notifications = _by_id(adapt("mastodon", load("mastodon_notifications.json")))
    assert notifications[reblog["event_id"]] == reblog
    assert notifications[reply["event_id"]] == reply
    assert reply["text"].startswith("question technique\n\n@alice La licence")
    assert "mastodon:fav:bob@mastodon.social:113512345678901234" in notifications
    assert len(notifications) == 3  # follow ignored


def test_mastodon_private_statuses_are_not_ingested() -> None:
    assert adapt("mastodon", load("mastodon_status_direct.json")) == []


def test_generic_passthrough() -> None:
    assert adapt("generic", load("generic_single.json")) == [load("generic_single.json")]
    assert len(adapt("generic", load("generic_batch.json"))) == 3
    assert adapt("generic", []) == []


@pytest.mark.parametrize(
    ("network", "payload", "fragment"),
    [
        ("linkedin", {"type": "LEAD_ACTION"}, "unknown type"),
        ("linkedin", {"foo": 1}, "not a LinkedIn post"),
        ("linkedin", [1], "expected a JSON object"),
        ("linkedin", {"type": "ORGANIZATION_SOCIAL_ACTION_NOTIFICATIONS"}, "notifications"),
        ("x", {"for_user_id": "1"}, "no Account Activity event array"),
        ("x", {"tweet_create_events": [{"id_str": "1"}]}, "tweet_create_events[0].user"),
        ("x", {"favorite_events": "nope"}, "expected a list"),
        ("mastodon", {"event": "account.deleted", "object": {}}, "unknown event"),
        ("mastodon", {"hello": "world"}, "expected a webhook"),
        ("mastodon", {"event": "notification", "payload": "{not json"}, "not JSON"),
        ("generic", "text", "expected a JSON object or list"),
        ("generic", {"events": {}}, "expected a list"),
        ("generic", {"events": [1]}, "events[0]"),
        ("generic", {"no": "type"}, '"type"'),
        ("facebook", {}, "unknown webhook source"),
    ],
)
def test_unknown_shapes(network: str, payload: Any, fragment: str) -> None:
    with pytest.raises(WebhookPayloadError) as info:
        adapt(network, payload)
    assert fragment in info.value.reason


def test_registry_keys() -> None:
    assert set(ADAPTERS) == {"linkedin", "x", "mastodon", "generic"}

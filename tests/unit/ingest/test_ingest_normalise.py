from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portevoix.contracts.events import DOMAIN_EVENT
from portevoix.contracts.ingest import EngagementIn, PostIn, parse_ingest_event
from portevoix_ingest.domain.normalise import (
    classify_time,
    detect_language,
    extract_hashtags,
    extract_links,
    extract_mentions,
    natural_key,
    normalise_lang_tag,
    normalise_text,
    to_ambassador_registered,
    to_engagement_received,
    to_post_received,
)

# ---- normalise_text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  bonjour  ", "bonjour"),
        ("a\r\nb\rc\u2028d", "a\nb\nc\nd"),
        ("ligne  \t\nsuivante", "ligne\nsuivante"),
        ("con\u200bnard", "connard"),  # zero-width space used to dodge word filters
        ("con\u00adnard", "connard"),  # soft hyphen
        ("con\u200dnard", "connard"),  # ZWJ between letters
        ("\ufeffBOM", "BOM"),
        ("bell\x07 null\x00", "bell null"),
        ("tab\tkept", "tab\tkept"),
        ("e\u0301", "é"),  # NFD -> NFC
        ("e\u200b\u0301", "é"),  # accent re-attached after removing the invisible
        ("\u202eevil\u202c", "evil"),  # bidi override (Trojan source)
    ],
)
def test_normalise_text_cases(raw: str, expected: str) -> None:
    assert normalise_text(raw) == expected


def test_normalise_text_keeps_emoji_sequences() -> None:
    family = "👩\u200d💻 et 🏳️\u200d🌈"
    assert normalise_text(family) == family
    flag = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # Scotland
    assert normalise_text(flag) == flag
    assert normalise_text("a\U000e0041\U000e0042b") == "ab"  # hidden ASCII "tags"


@given(st.text())
@settings(max_examples=400)
def test_normalise_text_idempotent(text: str) -> None:
    once = normalise_text(text)
    assert normalise_text(once) == once
    assert unicodedata.is_normalized("NFC", once)
    assert "\r" not in once
    assert once == once.strip()


@given(
    st.text(
        alphabet=st.sampled_from(
            list("ae\u0301\u200b\u200c\u200d\u2060\r\n\t #👩💻\ufe0f\U000e0041\U000e007f\U0001f3f4")
        )
    )
)
def test_normalise_text_idempotent_on_tricky_alphabet(text: str) -> None:
    once = normalise_text(text)
    assert normalise_text(once) == once


# ---- entities -----------------------------------------------------------------------------------


def test_hashtags_unicode_lowercased_deduplicated_in_order() -> None:
    text = "Merci ! #idée #Collaborateur #IDÉE #RSE2026 #1 C# page#3 ＃Télétravail"
    assert extract_hashtags(text) == ["idée", "collaborateur", "rse2026", "télétravail"]


def test_hashtags_ignore_url_fragments() -> None:
    assert extract_hashtags("voir https://acme.example/page#section et example.com/#/route") == []


def test_hashtags_survive_obfuscation_and_nfd() -> None:
    assert extract_hashtags("#ide\u0301e #Co\u200bllab") == ["idée", "collab"]


@given(st.text())
def test_hashtags_never_empty_or_hash(text: str) -> None:
    for tag in extract_hashtags(text):
        assert tag
        assert tag not in ("#", "＃")
        assert not tag.startswith(("#", "＃"))
        assert any(c.isalpha() for c in tag)


def test_mentions() -> None:
    text = "Bravo @Alice et @bob.martin, cc @carol@piaille.fr — écrire à rh@acme.example ou @Alice."
    assert extract_mentions(text) == ["alice", "bob.martin", "carol@piaille.fr"]


def test_mentions_ignore_urls() -> None:
    assert extract_mentions("https://piaille.fr/@alice/123") == []


@pytest.mark.parametrize(
    ("text", "links"),
    [
        ("Lisez https://acme.example/a.", ["https://acme.example/a"]),
        ("(voir https://acme.example/b)", ["https://acme.example/b"]),
        (
            "https://fr.wikipedia.org/wiki/Lyon_(ville)!",
            ["https://fr.wikipedia.org/wiki/Lyon_(ville)"],
        ),
        ("« https://acme.example/c » et…", ["https://acme.example/c"]),
        ("HTTPS://ACME.example/D?x=1&y=2#top, merci", ["HTTPS://ACME.example/D?x=1&y=2#top"]),
        ("sur example.com/x, et www.acme.fr.", ["example.com/x", "www.acme.fr"]),
        ("e.g. fin.Ensuite rapport.pdf Node.js v2.3", []),
        ("écrire à rh@acme.fr", []),
        ("deux fois https://a.example et https://a.example", ["https://a.example"]),
        ("http://", []),
    ],
)
def test_links(text: str, links: list[str]) -> None:
    assert extract_links(text) == links


# ---- language -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Bonjour à tous, je suis ravi de partager notre nouveau produit", "fr"),
        ("Hello everyone, proud to share our new product launch today", "en"),
        ("ok", None),
        ("", None),
        ("👏👏👏 #top", None),
        ("https://acme.example/une-tres-longue-adresse @quelquun", None),
        # Mixed: mostly English with a French aside -> English, and vice versa.
        (
            "Super fier ! We shipped the new release today and the whole team made it happen. "
            "Thanks to everyone involved in testing.",
            "en",
        ),
        (
            "Très heureuse de vous annoncer l'ouverture de notre nouvelle agence à Lyon. "
            "Nous recrutons des profils variés dans toute la région. Stay tuned!",
            "fr",
        ),
    ],
)
def test_detect_language(text: str, lang: str | None) -> None:
    assert detect_language(text) == lang


def test_detect_language_respects_allowed_set() -> None:
    assert detect_language("Buenos días a todos, estamos muy contentos", allowed=("fr", "en")) in (
        "fr",
        "en",
    )
    assert detect_language("Bonjour à tous, très heureux de partager", allowed=("en",)) == "en"
    # A second language set does not disturb the first (separate restricted identifiers).
    assert detect_language("Hallo zusammen, wir freuen uns sehr", allowed=("de", "en")) == "de"
    assert detect_language("Bonjour à tous, je suis ravi de partager ceci") == "fr"


def test_normalise_lang_tag() -> None:
    assert normalise_lang_tag("fr-FR") == "fr"
    assert normalise_lang_tag("EN_gb") == "en"


# ---- domain events ------------------------------------------------------------------------

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def _post(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "post",
        "event_id": "evt-1",
        "network": "linkedin",
        "post_id": "urn:li:share:1",
        "author": "@Alice",
        "text": "  Fière de notre #Idée chez @Acme ! Voir acme.example/rse\r\n ",
        "kind": "original",
        "occurred_at": "2026-11-21T10:30:00+01:00",
    }
    base.update(over)
    return base


def test_to_post_received() -> None:
    post = parse_ingest_event(_post())
    assert post.type == "post"
    evt = to_post_received(post, "amb-1", "ingest-test")
    assert evt.event_id == "evt-1"
    assert evt.post_key == "linkedin:urn:li:share:1"
    assert evt.occurred_at == datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
    assert evt.occurred_at.utcoffset() == timedelta(0)
    assert evt.text == "Fière de notre #Idée chez @Acme ! Voir acme.example/rse"
    assert evt.hashtags == ["idée"]
    assert evt.mentions == ["acme"]
    assert evt.links == ["acme.example/rse"]
    assert evt.lang == "fr"
    assert evt.author == "alice"
    assert evt.ambassador_id == "amb-1"
    assert evt.schema_version == 1
    # The event round-trips through the public domain-event adapter.
    assert DOMAIN_EVENT.validate_json(evt.model_dump_json()) == evt
    # Re-ingesting the same raw event gives the same domain event.
    again = parse_ingest_event(_post())
    assert isinstance(again, PostIn)
    assert to_post_received(again, "amb-1", "ingest-test") == evt


def test_to_post_received_given_lang_wins() -> None:
    post = parse_ingest_event(_post(lang="EN-gb"))
    assert post.type == "post"
    assert to_post_received(post, "a", "p").lang == "en"


def test_to_post_received_short_text_has_no_lang() -> None:
    post = parse_ingest_event(_post(text="👍"))
    assert post.type == "post"
    assert to_post_received(post, "a", "p").lang is None


def test_to_engagement_received() -> None:
    raw = {
        "type": "comment",
        "event_id": "c-1",
        "network": "x",
        "post_id": "123",
        "actor": "@Bob",
        "occurred_at": "2026-11-21T09:00:00-05:00",
        "text": "Bravo\u200b !\r\n",
    }
    e = parse_ingest_event(raw)
    assert e.type == "comment"
    evt = to_engagement_received(e, None, "p")
    assert evt.engagement == "comment"
    assert evt.post_key == "x:123"
    assert evt.actor == "bob"
    assert evt.text == "Bravo !"
    assert evt.occurred_at == datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
    blank = parse_ingest_event({**raw, "text": "\u200b"})
    assert blank.type == "comment"
    assert to_engagement_received(blank, "amb-2", "p").text is None


def test_to_ambassador_registered() -> None:
    raw = {
        "type": "ambassador",
        "ambassador_id": "emp-42",
        "display_name": "Alice  Martin ",
        "team": "RH",
        "handles": {"linkedin": "urn:li:person:Abc", "x": "@AliceM"},
        "consent": True,
    }
    a = parse_ingest_event(raw)
    assert a.type == "ambassador"
    paris = timezone(timedelta(hours=1))
    evt = to_ambassador_registered(a, "p", datetime(2026, 11, 21, 11, 0, tzinfo=paris))
    assert evt.event_id == a.idempotency_key()
    assert evt.occurred_at == datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    assert evt.handles == {"linkedin": "urn:li:person:abc", "x": "alicem"}
    assert evt.display_name == "Alice  Martin"
    with pytest.raises(ValueError):
        to_ambassador_registered(a, "p", datetime(2026, 11, 21, 11, 0))


# ---- natural keys -------------------------------------------------------------------------


def _eng(kind: str, event_id: str, actor: str = "@Bob") -> dict[str, object]:
    return {
        "type": kind,
        "event_id": event_id,
        "network": "x",
        "post_id": "123",
        "actor": actor,
        "occurred_at": "2026-11-21T09:00:00Z",
    }


def test_natural_keys() -> None:
    post = parse_ingest_event(_post())
    assert isinstance(post, PostIn)
    assert natural_key(post) == "post:linkedin:urn:li:share:1"
    assert natural_key(to_post_received(post, "a", "p")) == natural_key(post)
    like1 = parse_ingest_event(_eng("like", "webhook-1"))
    like2 = parse_ingest_event(_eng("like", "import-77", actor="BOB"))
    assert natural_key(like1) == natural_key(like2) == "like:x:123:bob"
    assert natural_key(parse_ingest_event(_eng("share", "s"))) == "share:x:123:bob"
    like_in = parse_ingest_event(_eng("like", "w"))
    assert isinstance(like_in, EngagementIn)
    like_evt = to_engagement_received(like_in, None, "p")
    assert natural_key(like_evt) == "like:x:123:bob"
    assert natural_key(parse_ingest_event(_eng("comment", "c"))) is None
    assert natural_key(parse_ingest_event(_eng("click", "k"))) is None


# ---- time policy --------------------------------------------------------------------------


def test_classify_time() -> None:
    assert classify_time(NOW - timedelta(days=30), NOW) is None  # late but fine
    assert classify_time(NOW + timedelta(minutes=4), NOW) is None  # clock skew
    future = classify_time(NOW + timedelta(minutes=6), NOW)
    assert future is not None
    assert (future.field, future.rule) == ("occurred_at", "future_timestamp")
    assert future.value == "2026-11-21T10:06:00Z"
    old = classify_time(NOW - timedelta(days=401), NOW)
    assert old is not None
    assert (old.field, old.rule) == ("occurred_at", "too_old")
    assert classify_time(NOW - timedelta(days=2), NOW, max_age=timedelta(days=1)) is not None
    with pytest.raises(ValueError):
        classify_time(datetime(2026, 1, 1), NOW)


def test_restricted_language_model_is_the_library_model_restricted() -> None:
    import numpy as np
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from portevoix_ingest.domain import normalise

    ours = normalise._load_restricted(("en", "fr"))
    ref = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ref.set_languages(["en", "fr"])
    assert ours.nb_classes == ref.nb_classes == ["en", "fr"]
    assert np.array_equal(ours.nb_ptc, ref.nb_ptc) and np.array_equal(ours.nb_pc, ref.nb_pc)
    assert ours.tk_nextmove.typecode == ref.tk_nextmove.typecode
    assert ours.tk_nextmove == ref.tk_nextmove and ours.tk_output == ref.tk_output
    assert ours.tk_row == ref.tk_row
    for text in ("Bonjour à tous, ravie de vous voir", "Proud of our team today", "Guten Tag"):
        assert ours.classify(text) == ref.classify(text)
    with pytest.raises(ValueError, match="Unknown language"):
        normalise._load_restricted(("en", "xx"))

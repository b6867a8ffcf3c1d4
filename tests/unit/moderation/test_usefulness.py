from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from portevoix_moderation.charter import (
    Charter,
    CharterEngine,
    Decision,
    InMemoryPostHistory,
)

from .helpers import NOW, mini_charter, post, rule, rules_fired

TEXT = (
    "Nous recrutons 20 techniciens de maintenance à Lyon, postulez dès maintenant sur notre site !"
)
TEMPLATE = (
    "Retrouvez Acme au salon VivaTech du 17 au 20 juin, stand B42 : venez découvrir nos "
    "solutions pour une industrie plus responsable ! #VivaTech #Acme"
)


def test_stuffing_thresholds(check: Callable[..., Decision]) -> None:
    five = "Bravo " + " ".join(f"#t{i}" for i in range(5))
    six = "Bravo " + " ".join(f"#t{i}" for i in range(6))
    assert check(five).verdict == "allow"
    assert "utilite.hashtag-stuffing" in rules_fired(check(six))
    f = next(f for f in check(six).findings if f.rule == "utilite.hashtag-stuffing")
    assert "6 hashtags" in f.message["fr"] and "5" in f.message["en"]
    mentions = "Merci " + " ".join(f"@p{i}" for i in range(6))
    assert "utilite.mention-stuffing" in rules_fired(check(mentions))
    links = " ".join(f"https://acme.fr/{i}" for i in range(4))
    assert "utilite.link-stuffing" in rules_fired(check(links))


def test_stuffing_threshold_is_a_parameter() -> None:
    charter = mini_charter(rule(conditions="{detector: hashtag_stuffing, params: {max: 1}}"))
    assert CharterEngine(charter).check(post("#a #b")).verdict == "block"
    assert CharterEngine(charter).check(post("#a")).verdict == "allow"


@pytest.mark.parametrize(
    "text",
    [
        "Commentez OUI pour recevoir le guide",
        "Like si tu es d'accord",
        "Tag 3 friends who need this",
        "Partagez si vous êtes d'accord",
        "Identifiez deux collègues",
        "Comment YES below",
        "1 like = 1 bravo pour l'équipe",
    ],
)
def test_engagement_bait(check: Callable[..., Decision], text: str) -> None:
    assert "utilite.engagement-bait" in rules_fired(check(text))


def test_shouting(check: Callable[..., Decision]) -> None:
    assert "utilite.shouting" in rules_fired(check("INCROYABLE JOURNÉE AVEC TOUTE L'ÉQUIPE !!!"))
    assert check("Fiers de notre label RSE et ISO 14001 !").verdict == "allow"
    assert check("OK !").verdict == "allow"  # too short to shout
    # Hashtags in capitals are not shouting.
    assert check("Belle journée avec l'équipe #RSE #ISO14001 #CDI #VIVATECH").verdict == "allow"


def test_stateful_detectors_do_not_fire_without_history(check: Callable[..., Decision]) -> None:
    for _ in range(3):
        assert check(TEXT, ambassador_id="a1").verdict == "allow"


def _engine(charter: Charter) -> tuple[CharterEngine, InMemoryPostHistory]:
    history = InMemoryPostHistory()
    return CharterEngine(charter, history=history, clock=lambda: NOW), history


def test_near_duplicate_of_own_recent_post(charter: Charter) -> None:
    engine, history = _engine(charter)
    t0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
    first = engine.check(post(TEXT, post_id="p1", ambassador_id="a1", occurred_at=t0))
    assert first.verdict == "allow" and len(history) == 1
    again = engine.check(
        post(TEXT + "!", post_id="p2", ambassador_id="a1", occurred_at=t0 + timedelta(hours=2))
    )
    assert "utilite.near-duplicate" in rules_fired(again)
    other = engine.check(
        post(TEXT, post_id="p3", ambassador_id="a2", occurred_at=t0 + timedelta(hours=2))
    )
    assert "utilite.near-duplicate" not in rules_fired(other)  # another author
    # Re-checking the same post is not a duplicate of itself.
    assert "utilite.near-duplicate" not in rules_fired(
        engine.check(post(TEXT, post_id="p1", ambassador_id="a1", occurred_at=t0), record=False)
    )


def test_record_false_leaves_history_untouched(charter: Charter) -> None:
    engine, history = _engine(charter)
    engine.check(post(TEXT, ambassador_id="a1"), record=False)
    assert len(history) == 0


def test_burst_of_copy_paste_by_many_ambassadors(charter: Charter) -> None:
    engine, _ = _engine(charter)
    t0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
    verdicts = [
        engine.check(
            post(
                TEXT, post_id=f"p{i}", ambassador_id=f"a{i}", occurred_at=t0 + timedelta(minutes=i)
            )
        )
        for i in range(5)
    ]
    assert [("utilite.burst" in rules_fired(d)) for d in verdicts] == [False] * 3 + [True] * 2
    assert verdicts[-1].verdict == "review"
    late = engine.check(
        post(TEXT, post_id="late", ambassador_id="z", occurred_at=t0 + timedelta(hours=5))
    )
    assert "utilite.burst" not in rules_fired(late)  # outside the 60-minute window


def test_campaign_template_nudges_not_blocks(check: Callable[..., Decision]) -> None:
    d = check(TEMPLATE + " #employee", kind="relay", campaign="cmp-vivatech")
    assert rules_fired(d) == {"utilite.campaign-template"}
    assert d.verdict == "nudge"
    personal = (
        "J'y serai avec mon équipe : on présente notre robot de tri au salon VivaTech, "
        "stand B42. Passez nous voir ! #employee"
    )
    assert check(personal, kind="relay", campaign="cmp-vivatech").verdict == "allow"
    # Without a campaign id, the post is compared with every known template.
    assert "utilite.campaign-template" in rules_fired(check(TEMPLATE + " #employee", kind="relay"))


def test_campaign_template_registered_at_runtime(charter: Charter) -> None:
    engine, history = _engine(charter)
    text = "Notre nouvelle usine de Valence ouvre ses portes : 80 emplois créés d'ici 2028 !"
    assert engine.check(post(text, campaign="cmp-x"), record=False).verdict == "allow"
    history.register_template("cmp-x", text)
    d = engine.check(post(text, campaign="cmp-x"), record=False)
    assert "utilite.campaign-template" in rules_fired(d)


def test_burst_does_not_count_the_campaign_template(charter: Charter) -> None:
    engine, _ = _engine(charter)
    t0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
    last = None
    for i in range(6):
        last = engine.check(
            post(
                TEMPLATE + " #employee",
                post_id=f"p{i}",
                kind="relay",
                campaign="cmp-vivatech",
                ambassador_id=f"a{i}",
                occurred_at=t0 + timedelta(minutes=i),
            )
        )
    assert last is not None
    assert "utilite.burst" not in rules_fired(last) and last.verdict == "nudge"


def test_history_is_bounded() -> None:
    from portevoix_moderation.charter.history import HistoryEntry
    from portevoix_moderation.charter.similarity import signature

    history = InMemoryPostHistory(max_global=10, per_author=3, window=timedelta(hours=1))
    sig = signature(["a", "b", "c"])
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    for i in range(25):
        history.record(HistoryEntry(f"p{i}", "a1", t0 + timedelta(seconds=i), sig))
    assert len(history) == 10
    assert [e.post_id for e in history.recent_by_author("a1")] == ["p22", "p23", "p24"]
    history.record(HistoryEntry("later", "a2", t0 + timedelta(hours=3), sig))
    assert len(history) == 1  # everything else fell out of the time window

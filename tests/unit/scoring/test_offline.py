"""`portevoix score` composes ingest's normalisation, the charter and the scorer offline."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import orjson

from portevoix_scoring.domain.table import default_table
from portevoix_scoring.offline import OfflineScoring

AT = "2026-11-20T09:00:00Z"
CLEAN = (
    "Retour sur notre journée portes ouvertes à Nantes : merci aux 300 visiteurs ! #collaborateur"
)
INSULT = "Ce client est un vrai connard, je ne le supporte plus."


def line(**e: object) -> bytes:
    return orjson.dumps(e)


def test_offline_totals_follow_ingest_moderation_and_scoring() -> None:
    lines = [
        line(type="post", event_id="p0", network="linkedin", post_id="0", author="@Zed-Z",
             text=CLEAN, kind="original", occurred_at=AT),  # unknown author: parked
        line(type="ambassador", ambassador_id="a", display_name="A", team="T",
             handles={"linkedin": "ann"}, consent=True),
        line(type="ambassador", ambassador_id="n", display_name="N", team="T",
             handles={"linkedin": "nope"}, consent=False),
        line(type="post", event_id="p1", network="linkedin", post_id="1", author="ANN",
             text=CLEAN.replace("Nantes", "Rennes"), kind="original", occurred_at=AT),
        line(type="post", event_id="p2", network="linkedin", post_id="2", author="ann",
             text=INSULT, kind="original", occurred_at=AT),  # blocked by the charter
        line(type="post", event_id="p3", network="linkedin", post_id="3", author="nope",
             text=CLEAN, kind="original", occurred_at=AT),  # no consent: withheld
        line(type="like", event_id="l1", network="linkedin", post_id="1", actor="fan",
             occurred_at=AT),
        line(type="comment", event_id="c1", network="linkedin", post_id="1", actor="nope",
             occurred_at=AT, text="Bravo"),  # non-consenting actor: withheld
        b"{not json",
        b"",
        line(type="ambassador", ambassador_id="z", display_name="Z", team="T",
             handles={"linkedin": "zed-z"}, consent=True),  # replays p0
    ]  # fmt: skip
    offline = OfflineScoring(default_table(), ZoneInfo("Europe/Paris"))
    offline.feed(lines)
    report = offline.report()
    assert report["totals"] == {"a": 11, "z": 10}
    assert report["counts"] == {"lines": 10, "invalid": 1, "parked": 0, "withheld": 2,
                                "scored_events": 10}  # fmt: skip
    assert report["verdicts"]["block"] == 1
    assert report["ambassadors"]["a"]["badges"] == ["first-post"]
    assert report["ambassadors"]["a"]["reach"]["reactions"] == 1

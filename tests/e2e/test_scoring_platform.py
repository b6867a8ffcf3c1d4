"""Scoring on the running platform: online totals equal `portevoix score` offline, the score,
ledger, badges and team/campaign boards over HTTP, ambassador access rules, and a rebuild with a
new points table while the platform keeps serving."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson
import pytest
from redis import Redis

from portevoix.runtime.platform import Platform
from tests.e2e.helpers import act, amb, eventually, post

pytestmark = pytest.mark.e2e
PORTEVOIX = str(Path(sys.executable).with_name("portevoix"))
DAY = (datetime.now(UTC) - timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
TEXTS = [
    "Retour sur notre journée portes ouvertes à Nantes : merci aux 300 visiteurs ! #collaborateur",
    "Our engineering team just shipped the new mobile app. Proud of this launch! #employee",
    "Nous recrutons des alternants en logistique à Rennes, parlez-en autour de vous #salarié",
    "Great panel today on sustainable packaging with our partners in Lille. #employee",
    "Belle victoire de notre équipe au challenge inter-entreprises de course à pied #collaboratrice",
    "Merci à nos clients pour leur confiance cette année, rendez-vous au salon de Lyon #collaborateur",
    "Notre rapport RSE 2026 est en ligne, bonne lecture #collaborateur",
    "Fière de présenter notre nouvelle usine de Lyon ! Venez découvrir nos métiers. #collaboratrice",
    "Le nouveau catalogue d'automne est disponible dans toutes nos agences #collaborateur",
    "Our Lisbon office welcomed twelve new apprentices this week, welcome aboard! #employee",
]
INSULT = "Ce client est un vrai connard, je ne le supporte plus."
CONFIDENTIAL = "Document confidentiel, ne pas diffuser : nos résultats du troisième trimestre."


def at(minutes: int) -> str:
    return (DAY + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def scenario() -> list[dict[str, Any]]:
    """Colleagues, a like-ring, a capped author, held and blocked posts, early engagement,
    repeats, self-likes and replies, a campaign."""
    events: list[dict[str, Any]] = [
        amb("sa", "Sara Aubert", "Ventes", {"linkedin": "sara-a"}),
        amb("sb", "Sam Blanc", "Tech", {"linkedin": "sam-b"}),
        amb("sc", "Sol Colin", "Tech", {"linkedin": "sol-c"}),
        amb("sd", "Sid Dumas", "RH", {"linkedin": "sid-d"}, consent=False),
        act("like", "s-early", "sp1", "fan-early", at=at(0)),  # before its post
    ]
    # Sara posts 4 times the same day: 3 earn points (daily cap on original posts).
    for i in range(4):
        events.append({**post(f"s-p{i}", f"sp{i}", "sara-a", TEXTS[i], at=at(10 + i)),
                       "campaign": "salon-lyon" if i == 0 else None})  # fmt: skip
    events += [
        post("s-p4", "sp4", "sam-b", TEXTS[4], at=at(20)),
        post("s-p5", "sp5", "sam-b", TEXTS[6], kind="relay", at=at(21)),
        post("s-p10", "sp10", "sam-b", TEXTS[8], kind="relay", at=at(26)),
        post("s-p11", "sp11", "sam-b", TEXTS[9], kind="relay", at=at(27)),
        post("s-p6", "sp6", "sol-c", INSULT, at=at(22)),  # blocked
        post("s-p7", "sp7", "sol-c", CONFIDENTIAL, at=at(23)),  # held for review
        post("s-p8", "sp8", "sol-c", TEXTS[5], at=at(24)),
        post("s-p9", "sp9", "sid-d", TEXTS[7], at=at(25)),  # no consent: withheld
    ]
    n = 0
    for i in range(4):  # Sara and Sam like each other's posts: a ring after 3 each way
        events += [act("like", f"s-r{n}", f"sp{i}", "sam-b", at=at(30 + n)),
                   act("like", f"s-r{n + 1}", ["sp4", "sp5", "sp10", "sp11"][i], "sara-a",
                       at=at(31 + n))]  # fmt: skip
        n += 2
    events += [
        act("comment", "s-c1", "sp0", "fan1", at=at(40), text="Bravo !"),
        act("comment", "s-c2", "sp0", "sara-a", at=at(41), text="Merci !"),  # reply
        act("like", "s-l1", "sp0", "sara-a", at=at(42)),  # self-like
        act("like", "s-l2", "sp0", "fan1", at=at(43)),
        act("like", "s-l3", "sp0", "fan1", at=at(44)),  # repeat (ingest drops it already)
        act("share", "s-s1", "sp8", "fan2", at=at(45)),
        act("click", "s-k1", "sp8", "fan3", at=at(46)),
        act("comment", "s-c3", "sp6", "fan4", at=at(47), text="?"),  # blocked post
        act("comment", "s-c4", "sp7", "fan5", at=at(48), text="?"),  # held
        act("like", "s-l4", "sp8", "sid-d", at=at(49)),  # non-consenting actor: withheld
    ]
    return [{k: v for k, v in e.items() if v is not None} for e in events]


def offline_totals(lines: list[dict[str, Any]], tmp: Path, *args: str) -> dict[str, Any]:
    path = tmp / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in lines))
    out = subprocess.run([PORTEVOIX, "score", "--jsonl", str(path), *args], check=True,
                         capture_output=True, timeout=120)  # fmt: skip
    report: dict[str, Any] = orjson.loads(out.stdout)
    return report


def all_time(api: httpx.Client) -> dict[str, float]:
    r = api.get("/v1/leaderboards/all-time", params={"limit": 500})
    assert r.status_code == 200, r.text
    return {i["ambassador_id"]: i["points"] for i in r.json()["items"]}


def test_online_totals_equal_offline_totals(
    platform: Platform, api: httpx.Client, tmp_path: Path
) -> None:
    events = scenario()
    r = api.post("/v1/events", json=events)
    assert r.status_code == 202 and r.json()["accepted"] == len(events), r.text
    report = offline_totals(events, tmp_path)
    expected = report["totals"]
    # Sara: 3 posts (cap) 30 + early like 1 + comment 5 + reply 2 + like 1 + ring likes from Sam;
    # Sam: 10 + 4 + ring likes from Sara; Sol: 10 + share 3.
    assert set(expected) == {"sa", "sb", "sc"} and expected["sc"] == 13
    eventually(lambda: all_time(api) == expected or None, timeout_s=40)
    assert report["counts"]["withheld"] == 2 and report["verdicts"]["block"] == 1


def test_score_ledger_badges_and_team_boards(platform: Platform, api: httpx.Client) -> None:
    eventually(lambda: all_time(api).get("sc") == 13 or None, timeout_s=40)
    r = api.get("/v1/ambassadors/sa/score")
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["periods"]["all-time"]["rank"] == 1 and s["team"] == "Ventes"
    assert s["periods"]["all-time"]["points"] == all_time(api)["sa"]
    assert s["periods"]["rolling-30"]["points"] == s["periods"]["all-time"]["points"]
    assert s["reach"]["posts"] == 4 and s["reach"]["impressions"] == 4 * 75  # 500 × 0.15
    assert s["emv"]["EUR"] > 0 and s["table_version"] == "default-2"
    # Ledger: newest first, paginated, every rule visible.
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.get("/v1/ambassadors/sa/ledger",
                       params={"limit": 7, **({"cursor": cursor} if cursor else {})}).json()  # fmt: skip
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == page["total"]
    rules = {e["rule"] for e in seen}
    assert {"original_post:cap", "reply", "like:self", "like:colleague", "like:ring"} <= rules
    paid = sum(e["points"] for e in seen if e["op"] in ("award", "release", "reverse"))
    assert round(paid, 2) == all_time(api)["sa"]
    badges = api.get("/v1/ambassadors/sa/badges").json()["items"]
    assert [b["badge"] for b in badges] == ["first-post"]
    # Team boards: total and average per active ambassador; team= and campaign= boards.
    teams = api.get("/v1/leaderboards/all-time/teams").json()["items"]
    tech = next(t for t in teams if t["team"] == "Tech")
    board = all_time(api)
    assert tech["points"] == board["sb"] + board["sc"] and tech["active_ambassadors"] == 2
    assert abs(tech["average"] - (board["sb"] + board["sc"]) / 2) <= 0.01  # to the centipoint
    r = api.get("/v1/leaderboards/all-time", params={"team": "Tech"}).json()
    assert [i["ambassador_id"] for i in r["items"]] == sorted(["sb", "sc"], key=lambda a: -board[a])
    r = api.get("/v1/leaderboards/month", params={"campaign": "salon-lyon"}).json()
    assert [i["ambassador_id"] for i in r["items"]] == ["sa"]
    # The badge was published on the bus.

    async def published() -> list[dict[str, Any]]:
        nc = await nats.connect(str(platform.nats_url))
        js = nc.jetstream()
        sub = await js.pull_subscribe("pv.evt.badge.awarded", stream="PV_EVENTS")
        try:
            msgs = await sub.fetch(50, timeout=2)
        except TimeoutError:
            msgs = []
        await nc.close()
        return [orjson.loads(m.data) for m in msgs]

    got = eventually(lambda: asyncio.run(published()) or None, timeout_s=20)
    assert {(b["ambassador_id"], b["badge"]) for b in got} >= {("sa", "first-post")}


def test_ambassadors_read_only_their_own_score(platform: Platform) -> None:
    token = "amb-token-sb"
    with Redis.from_url(str(platform.redis_url)) as redis:
        redis.hset(f"pv:apikey:{hashlib.sha256(token.encode()).hexdigest()}",
                   mapping={"role": "ambassador", "subject": "sam", "ambassador_id": "sb"})  # fmt: skip
    auth = {"Authorization": f"Bearer {token}"}
    for what in ("score", "ledger", "badges"):
        assert (
            httpx.get(f"{platform.api_url}/v1/ambassadors/sb/{what}", headers=auth).status_code
            == 200
        )
        r = httpx.get(f"{platform.api_url}/v1/ambassadors/sa/{what}", headers=auth)
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{platform.api_url}/v1/ambassadors/sb/score").status_code == 401
    admin = {"Authorization": f"Bearer {platform.admin_token}"}
    assert (
        httpx.get(f"{platform.api_url}/v1/ambassadors/nobody/score", headers=admin).status_code
        == 404
    )


def test_rebuild_with_a_new_table_while_serving(
    platform: Platform, api: httpx.Client, tmp_path: Path
) -> None:
    eventually(lambda: all_time(api).get("sc") == 13 or None, timeout_s=40)
    table = tmp_path / "points.yaml"
    from portevoix_scoring.domain.table import default_table

    table.write_text(default_table().dumps().replace("comment: 5.0", "comment: 8.0")
                     .replace("version: default-2", "version: comments-8"))  # fmt: skip
    env = {**os.environ, "NATS_URL": str(platform.nats_url), "REDIS_URL": str(platform.redis_url)}
    proc = subprocess.run([PORTEVOIX, "scores", "rebuild", "--table", str(table)], env=env,
                          capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    report = orjson.loads(proc.stdout.splitlines()[-1])
    assert report["generation"] == "2"
    expected = offline_totals(scenario(), tmp_path, "--table", str(table))["totals"]
    assert expected["sa"] > 0 and all_time(api) == expected
    # The live consumer moved to the new generation and its table: new events still count.
    r = api.post("/v1/events", json=[act("comment", "s-after", "sp8", "fan9", at=at(60),
                                         text="Top")])  # fmt: skip
    assert r.json()["accepted"] == 1
    eventually(lambda: all_time(api)["sc"] == expected["sc"] + 8 or None, timeout_s=30)
    assert api.get("/v1/ambassadors/sc/score").json()["table_version"] == "comments-8"


def test_points_table_versions_are_validated_by_scoring_and_listed(
    platform: Platform, api: httpx.Client
) -> None:
    yaml_headers = {"Content-Type": "application/yaml"}
    r = api.post("/v1/points-tables", content=b"version: bad\nactions: {retweet_party: 3}\n",
                 headers=yaml_headers)  # fmt: skip
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "retweet_party" in r.json()["detail"]
    live = api.get("/v1/points-tables/live")
    assert live.status_code == 200, live.text
    table = live.json()["yaml"].replace(f"version: {live.json()['version']}", "version: e2e-3")
    assert "version: e2e-3" in table
    r = api.post("/v1/points-tables", content=table.encode(), headers=yaml_headers)
    assert r.status_code == 202 and r.json()["version"] == "e2e-3", r.text
    listed = eventually(
        lambda: (
            [i for i in api.get("/v1/points-tables").json()["items"] if i["version"] == "e2e-3"]
            or None
        )
    )
    assert listed == [{"version": "e2e-3", "live": False}]
    got = api.get("/v1/points-tables/e2e-3").json()
    assert got["version"] == "e2e-3" and "actions:" in got["yaml"]
    assert api.get("/v1/points-tables/nope").status_code == 404


def test_erasure_removes_the_person_and_online_still_equals_offline(
    platform: Platform, api: httpx.Client, tmp_path: Path
) -> None:
    """Runs after the rebuild (live table comments-8): an erasure in the middle of the log,
    engagement on the erased person's post after it; online == offline, team kept."""
    eventually(lambda: all_time(api).get("sc") or None, timeout_s=40)
    before = [
        amb("se", "Sue Ernst", "Ventes", {"linkedin": "sue-e"}),
        post("s-e1", "se1", "sue-e", TEXTS[1], at=at(70)),
        act("like", "s-e2", "se1", "fan7", at=at(71)),
    ]
    assert api.post("/v1/events", json=before).json()["accepted"] == len(before)
    eventually(lambda: all_time(api).get("se") or None, timeout_s=30)

    def ventes() -> float:
        teams = api.get("/v1/leaderboards/all-time/teams").json()["items"]
        return float(next(t["points"] for t in teams if t["team"] == "Ventes"))

    team_before = ventes()
    r = api.delete("/v1/ambassadors/se")
    assert r.status_code == 202, r.text
    eventually(lambda: api.get(r.json()["status_url"]).json()["status"] == "done")
    eventually(lambda: "se" not in all_time(api) or None, timeout_s=30)
    for what in ("ledger", "badges"):  # unknown now, or known with nothing left
        got = api.get(f"/v1/ambassadors/se/{what}")
        assert got.status_code == 404 or got.json()["items"] == [], got.text
    assert ventes() == team_before  # the team keeps what she earned
    after = [act("comment", "s-e3", "se1", "fan8", at=at(72), text="Super")]
    assert api.post("/v1/events", json=after).json()["accepted"] == 1
    eventually(lambda: ventes() == team_before + 8 or None, timeout_s=30)  # comments-8 table
    assert "se" not in all_time(api)

    table = tmp_path / "points.yaml"
    from portevoix_scoring.domain.table import default_table

    table.write_text(default_table().dumps().replace("comment: 5.0", "comment: 8.0")
                     .replace("version: default-2", "version: comments-8"))  # fmt: skip
    erasure = {"type": "ambassador.erasure_requested", "request_id": "req-se",
               "ambassador_id": "se", "requested_by": "admin", "requested_at": at(71)}  # fmt: skip
    log = [*scenario(), act("comment", "s-after", "sp8", "fan9", at=at(60), text="Top"),
           *before, erasure, *after]  # fmt: skip
    report = offline_totals(log, tmp_path, "--table", str(table))
    assert "se" not in report["totals"] and report["totals"] == all_time(api)
    assert report["teams"]["Ventes"] == ventes()

"""The scoring pipeline on a real Valkey (and JetStream for the rebuild): the Redis projections
equal the in-memory ones computed by the same scorer, under redelivery, concurrency and a
rebuild with generation swap while live writes go on."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis

from portevoix.contracts.events import (
    AmbassadorErased,
    AmbassadorRegistered,
    EngagementReceived,
    PostModerated,
    PostReceived,
    PostReviewed,
    subject_for,
)
from portevoix.contracts.readmodels import (
    SCORING_GENERATION,
    SCORING_OUTBOX,
    ambassador_key,
    badges_key,
    board_key,
    ledger_key,
    stats_key,
    stats_total_key,
    team_members_key,
    team_view_key,
    teams_board_key,
)
from portevoix.runtime.delivery import Delivery, handle_collecting
from portevoix.runtime.publisher import Pending
from portevoix.runtime.streams import ensure_streams
from portevoix_scoring.domain.projection import Projection
from portevoix_scoring.domain.scorer import Scored, Scorer
from portevoix_scoring.domain.table import default_table, load_table
from portevoix_scoring.metrics import EVENTS_SCORED
from portevoix_scoring.pipeline import ScoringPipeline, ScoringRefused
from portevoix_scoring.rebuild import Rebuild
from portevoix_scoring.store import APPLIED, CONFLICT, DUPLICATE, ScoreStore
from tests.e2e.api_harness import ADMIN, api_settings, in_process
from tests.infra import Server, seen_while_the_loop_is_blocked

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
TEAMS = ["Ventes", "Tech", "RH"]


def workload(n_posts: int = 60, seed: int = 7, colleagues: bool = True) -> list[Scored]:
    """Ambassadors, posts with verdicts (some held, reviewed, blocked, taken down) and engagement
    (external and colleagues, repeats, some before their post), in a plausible stream order."""
    rnd = random.Random(seed)
    amb = [f"a{i}" for i in range(8)]
    out: list[Scored] = [
        AmbassadorRegistered(
            event_id=f"reg-{a}",
            occurred_at=T0,
            producer="t",
            ambassador_id=a,
            display_name=a.upper(),
            team=TEAMS[i % 3],
            handles={"linkedin": a},
            consent=True,
        )
        for i, a in enumerate(amb)
    ]
    for p in range(n_posts):
        author = rnd.choice(amb)
        at = T0 + timedelta(hours=7 * p)
        pk = f"linkedin:p{p}"
        eng: list[Scored] = []
        for e in range(rnd.randint(0, 12)):
            kind = rnd.choice(["like", "like", "share", "comment", "click"])
            actor_amb = rnd.choice(amb) if colleagues and rnd.random() < 0.3 else None
            actor = actor_amb or f"fan{rnd.randint(0, 9)}"
            eng.append(EngagementReceived(
                event_id=f"e{p}-{e}", occurred_at=at + timedelta(minutes=e), producer="t",
                engagement=kind, post_key=pk, network="linkedin", post_id=f"p{p}", actor=actor,
                actor_ambassador_id=actor_amb))  # fmt: skip
        post = PostReceived(event_id=f"post{p}", occurred_at=at, producer="t", post_key=pk,
                            network="linkedin", post_id=f"p{p}", ambassador_id=author,
                            author=author, text="t", kind=rnd.choice(["original", "relay"]),
                            hashtags=["rentree"] if p % 5 == 0 else [],
                            followers=rnd.choice([None, 800]))  # fmt: skip
        verdict = rnd.choice(["allow", "allow", "nudge", "review", "block"])
        mod = PostModerated(event_id=f"d{p}", occurred_at=at, producer="t", decision_id=f"d{p}",
                            post_key=pk, post_event_id=f"post{p}", ambassador_id=author,
                            verdict=verdict, charter_version="1", engine_version="1",
                            content_hash="h")  # fmt: skip
        early = eng[:1] if p % 4 == 0 else []
        out += [*early, post, mod, *eng[len(early) :]]
        if verdict == "review" or p % 9 == 0:
            outcome = rnd.choice(["approved", "rejected", "taken_down"])
            out.append(PostReviewed(event_id=f"r{p}", occurred_at=at, producer="t",
                                    review_id=f"r{p}", post_key=pk, outcome=outcome,
                                    moderator="m"))  # fmt: skip
    return out


def with_erasures(events: list[Scored], *who: str) -> list[Scored]:
    """The workload with `who` erased, one after the other, from the middle of the log on
    (engagement, verdicts and reviews on their posts keep arriving after)."""
    out = list(events)
    for n, aid in enumerate(who):
        at = len(out) * (n + 2) // (len(who) + 2)
        out.insert(at, AmbassadorErased(event_id=f"erased:req-{aid}", occurred_at=T0,
                                        producer="ingest", ambassador_id=aid,
                                        request_id=f"req-{aid}", requested_by="self",
                                        networks=["linkedin"], existed=True))  # fmt: skip
    return out


async def assert_erased(redis: Redis, gen: str, aid: str) -> None:
    """Nothing about `aid` is left but the tombstone (and their colleague pairs, emptied): no
    board entry, ledger, badges, stats, reaction marker."""
    keys = [k.decode() async for k in redis.scan_iter(match=f"pv:{{sc}}:{gen}:*")]
    for key in keys:
        kind = await redis.type(key)
        if kind == b"zset":
            assert await redis.zscore(key, aid) is None, key
        elif kind == b"set" and ":members:" in key:  # no team lists them any more
            assert not await redis.sismember(key, aid), key  # type: ignore[misc]
    tomb_key, pairs_key = f"pv:{{sc}}:{gen}:amb:{aid}", f"pv:{{sc}}:{gen}:pairs:{aid}"
    mine = {k for k in keys if k.endswith(f":{aid}")}
    assert tomb_key in mine and mine <= {tomb_key, pairs_key}, mine
    raw = await redis.get(tomb_key)
    assert isinstance(raw, bytes)
    tomb = orjson.loads(raw.partition(b"\n")[2])
    assert tomb["erased"] and not tomb["counts"] and not tomb["recv"] and not tomb["badges"]
    raw = await redis.get(pairs_key)
    if raw is not None:
        assert orjson.loads(raw.partition(b"\n")[2]) == {"recv": {}, "pruned": ""}


async def zmap(redis: Redis, key: str) -> dict[str, int]:
    rows: list[Any] = await redis.zrange(key, 0, -1, withscores=True)
    return {m.decode(): int(s) for m, s in rows if int(s)}


async def board(redis: Redis, gen: str, period: str = "all") -> dict[str, int]:
    return await zmap(redis, board_key(gen, period))


def expected(events: list[Scored], table_yaml: str | None = None) -> Projection:
    table = load_table(table_yaml) if table_yaml else default_table()
    proj = Projection(table, TZ)
    for e in events:
        proj.apply(e)
    return proj


@pytest.mark.parametrize("erased", [(), ("a3", "a5")], ids=["", "with-erasures"])
@pytest.mark.parametrize("script_batch", [125, 4], ids=["whole", "overlapped"])
async def test_redis_projections_equal_the_in_memory_ones_despite_redelivery(
    redis: Redis, erased: tuple[str, ...], script_batch: int
) -> None:
    await projections_equal_despite_redelivery(redis, erased, script_batch)


async def test_on_a_redis_cluster_too(
    redis_on_cluster: Redis, redis_cluster_server: Server, nats_server: Server
) -> None:
    # Three primaries: every script call's keys share the {sc} hash tag (one slot), and what
    # the pipeline reads around its scripts (MGET, item lists, erasure scans) works there too.
    await projections_equal_despite_redelivery(redis_on_cluster, ("a3", "a5"), 4)
    assert len(redis_on_cluster.get_nodes()) == 3  # type: ignore[attr-defined]
    # And the API reads them there: the board and every ledger, as the in-memory projection.
    proj = expected(with_erasures(workload(), "a3", "a5"))
    settings = api_settings(nats_server.url, redis_cluster_server.url, redis_cluster=True,
                            analytics_projection=False)  # fmt: skip
    async with in_process(settings) as api:
        r = await api.client.get("/v1/leaderboards/all-time?limit=500", headers=api.auth(ADMIN))
        assert r.status_code == 200, r.text
        got = {i["ambassador_id"]: round(i["points"] * 100) for i in r.json()["items"]}
        assert got == {a: cp for a, cp in proj.boards["all"].items() if cp}
        for aid, cp in proj.boards["all"].items():
            r = await api.client.get(f"/v1/ambassadors/{aid}/ledger?limit=500",
                                     headers=api.auth(ADMIN))  # fmt: skip
            assert r.status_code == 200, r.text
            lines = r.json()["items"]
            assert len(lines) == r.json()["total"] > 0
            paid = sum(x["points"] for x in lines if x["op"] in ("award", "release", "reverse"))
            assert round(paid * 100) == cp
        # A team's board (a view built in the {sc} slot from the board and the members).
        r = await api.client.get("/v1/leaderboards/all-time?team=Tech&limit=500",
                                 headers=api.auth(ADMIN))  # fmt: skip
        assert r.status_code == 200, r.text
        got = {i["ambassador_id"]: round(i["points"] * 100) for i in r.json()["items"]}
        tech = {a for a, st in proj.book.states.items() if st.team == "Tech" and not st.erased}
        assert got == {a: cp for a, cp in proj.boards["all"].items() if a in tech and cp}
        assert got


async def projections_equal_despite_redelivery(
    redis: Redis, erased: tuple[str, ...], script_batch: int
) -> None:
    events = with_erasures(workload(), *erased)
    store, table = await ScoreStore.open(redis, default_table())
    pipe = ScoringPipeline(Scorer(table, TZ), store, chunk=script_batch)
    rnd = random.Random(1)
    i = 0
    while i < len(events):
        n = rnd.randint(1, 40)
        chunk = events[i : i + n]
        again = events[max(0, i - 5) : i]  # redelivered tail of the previous batch
        outcomes = await pipe.apply(again + chunk)
        assert all(o.result != APPLIED for o in outcomes[: len(again)])
        i += n
    proj = expected(events)
    assert await board(redis, store.gen) == proj.boards["all"]
    for period, want in proj.boards.items():
        assert await board(redis, store.gen, period) == {k: v for k, v in want.items() if v}
    # Team boards: per member and per team (erased people's points stay in their team's).
    team_of = {a: s.team for a, s in proj.book.states.items()}
    for period, want in proj.teams.items():
        assert await zmap(redis, teams_board_key(store.gen, period)) == {
            k: v for k, v in want.items() if v
        }
    org: dict[Any, Any] = await redis.hgetall(stats_total_key(store.gen))
    assert {k.decode(): int(v) for k, v in org.items() if int(v)} == {
        k: v for k, v in proj.org.items() if v
    }
    # Team members (a team's board is the organisation's restricted to them): the team of each
    # one's last registration; erased people have left theirs.
    assert {"Tech", "Ventes"} <= set(team_of.values())
    for team in {t for t in team_of.values() if t}:
        members = await redis.smembers(team_members_key(store.gen, team))  # type: ignore[misc]
        assert {m.decode() for m in members} == {
            a for a, s in proj.book.states.items() if s.team == team and not s.erased
        }
    # Reach and EMV counters, badges, ledger sums.
    for aid, counters in proj.reach.items():
        got: dict[Any, Any] = await redis.hgetall(stats_key(store.gen, aid))
        assert {k.decode(): int(v) for k, v in got.items() if int(v)} == {
            k: v for k, v in counters.items() if v
        }
        assert sorted((await redis.hgetall(badges_key(store.gen, aid))).keys()) == sorted(
            b.encode() for b in proj.badges.get(aid, [])
        )
    for aid, cp in proj.boards["all"].items():
        raw: list[Any] = await redis.lrange(ledger_key(store.gen, aid), 0, -1)
        lines = [orjson.loads(x) for x in raw]
        paid = sum(e["points"] for e in lines if e["op"] in ("award", "release", "reverse"))
        assert round(paid * 100) == cp
    assert await redis.llen(SCORING_OUTBOX) == 0  # no publisher: no outbox
    for aid in erased:
        await assert_erased(redis, store.gen, aid)
    if erased:  # the erased people had earned points, and their teams kept them
        for aid in erased:
            at = next(i for i, e in enumerate(events) if isinstance(e, AmbassadorErased)
                      and e.ambassador_id == aid)  # fmt: skip
            assert expected(events[:at]).boards["all"].get(aid, 0) > 0
        kept = expected(workload())
        assert sum(proj.teams["all"].values()) > sum(proj.boards["all"].values())
        assert proj.org["posts"] == kept.org["posts"]


async def test_concurrent_instances_never_double_count_or_lose(redis: Redis) -> None:
    # An order-independent workload and table (no colleagues: no rings; no daily caps): any
    # interleaving of the two instances must give the sequential result.
    events = workload(n_posts=40, seed=3, colleagues=False)
    uncapped = default_table().model_copy(
        update={"fair_play": default_table().fair_play.model_copy(update={"daily_caps": {}})}
    )
    store, table = await ScoreStore.open(redis, uncapped)
    # Script batches of 3: each instance also overlaps its own batches (speculation).
    a = ScoringPipeline(Scorer(table, TZ), store, attempts=50, chunk=3)
    b = ScoringPipeline(Scorer(table, TZ), ScoreStore(redis, store.gen), attempts=50, chunk=3)
    rnd = random.Random(5)

    async def run(p: ScoringPipeline, evs: list[Scored]) -> None:
        for k in range(0, len(evs), 7):
            await p.apply(evs[k : k + 7])
            await asyncio.sleep(0)

    # Both instances get every event (as after a redelivery storm), in different orders of
    # batches, and race each other.
    shuffled = events[:]
    rnd.shuffle(shuffled)
    await asyncio.gather(run(a, events), run(b, events), run(a, shuffled))
    proj = Projection(uncapped, TZ)
    for e in events:
        proj.apply(e)
    assert await board(redis, store.gen) == proj.boards["all"]


@pytest.mark.parametrize("via_bus", [False, True], ids=["apply", "bus"])
async def test_rebuild_swaps_generations_while_live_writes_go_on(
    redis: Redis, nc: NatsClient, nats_server: Server, via_bus: bool
) -> None:
    await rebuild_while_live_writes_go_on(redis, nc, nats_server.url, via_bus)


async def test_rebuild_on_a_redis_cluster_too(
    redis_on_cluster: Redis, nc: NatsClient, nats_server: Server
) -> None:
    await rebuild_while_live_writes_go_on(redis_on_cluster, nc, nats_server.url, via_bus=True)


async def rebuild_while_live_writes_go_on(
    redis: Redis, nc: NatsClient, nats_url: str, via_bus: bool
) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    # An erasure before the rebuild starts (a2) and one arriving while it runs (a6): the rebuilt
    # generation must not bring either person back.
    events = workload(n_posts=80, seed=11)
    first, rest = events[: len(events) // 2], events[len(events) // 2 :]
    first, rest = with_erasures(first, "a2"), with_erasures(rest, "a6")
    events = first + rest

    async def publish(evs: list[Scored]) -> None:
        for e in evs:
            await js.publish(subject_for(e), orjson.dumps(e.model_dump(mode="json")),
                             headers={"Nats-Msg-Id": e.event_id})  # fmt: skip

    await publish(first)
    store, table = await ScoreStore.open(redis, default_table())
    live = ScoringPipeline(Scorer(table, TZ), store)
    await live.apply(first)
    assert await board(redis, "1") == expected(first).boards["all"]

    # A new table: likes are worth 2. The live consumer keeps applying the rest meanwhile.
    new_yaml = (
        default_table()
        .dumps()
        .replace("like: 1.0", "like: 2.0")
        .replace("version: default-2", "version: likes-x2")
    )
    assert "like: 2.0" in new_yaml
    rebuild = Rebuild(redis, nats_url, load_table(new_yaml), TZ, batch=50, flush_every=37)

    async def live_traffic() -> None:
        for k in range(0, len(rest), 10):
            chunk = rest[k : k + 10]
            await publish(chunk)
            if via_bus:  # each pull's last batch left in flight, redelivered if refused
                await _delivered_until_acked(live, chunk)
            else:
                await live.apply(chunk)
            await asyncio.sleep(0.005)

    report, _ = await asyncio.gather(rebuild.run(), live_traffic())
    assert report.generation == "2" and await redis.get(SCORING_GENERATION) == b"2"
    await live.apply(rest[-3:])  # a late redelivery after the swap: duplicates in the new gen
    assert live.store.gen == "2" and live.scorer.table.version == "likes-x2"
    want = expected(events, new_yaml)
    assert await board(redis, "2") == want.boards["all"]
    assert await zmap(redis, teams_board_key("2", "all")) == {
        k: v for k, v in want.teams["all"].items() if v
    }
    for aid in ("a2", "a6"):
        await assert_erased(redis, "2", aid)
    assert await board(redis, "1") == {}  # old generation dropped


def _allowed(post: PostReceived) -> PostModerated:
    return PostModerated(event_id="d-x", occurred_at=post.occurred_at, producer="t",
                         decision_id="d-x", post_key=post.post_key, post_event_id=post.event_id,
                         ambassador_id=post.ambassador_id, verdict="allow", charter_version="1",
                         engine_version="1", content_hash="h")  # fmt: skip


def _like(post: PostReceived, i: int) -> EngagementReceived:
    return EngagementReceived(event_id=f"like-{i}", occurred_at=post.occurred_at, producer="t",
                              engagement="like", post_key=post.post_key, network="linkedin",
                              post_id=post.post_id, actor=f"fan-{i}")  # fmt: skip


async def test_states_kept_in_memory_are_refused_once_another_instance_wrote_them(
    redis: Redis,
) -> None:
    # Instance A keeps the states it wrote in memory (no read on its next batch); B then writes
    # the same post and author. A's next step, computed on its stale copies, must be refused by
    # the version check and recomputed from Redis: nothing lost, nothing counted twice.
    events = workload(n_posts=6, seed=2, colleagues=False)
    store, table = await ScoreStore.open(redis, default_table())
    a = ScoringPipeline(Scorer(table, TZ), store)
    b = ScoringPipeline(Scorer(table, TZ), ScoreStore(redis, store.gen))
    registrations = [e for e in events if isinstance(e, AmbassadorRegistered)]
    post = next(e for e in events if isinstance(e, PostReceived))
    verdict = _allowed(post)

    def like(i: int) -> EngagementReceived:
        return _like(post, i)

    assert all(o.result == APPLIED for o in await a.apply([*registrations, post, verdict]))
    cached = a._cache.take(store.post_key(post.post_key))
    assert cached is not None  # A kept the post state it wrote, with its version
    a._cache.keep(store.post_key(post.post_key), *cached)
    assert (await b.apply([like(1)]))[0].result == APPLIED  # B writes post and author
    stale = await a._apply_once([like(2)])  # A's copies are now stale
    assert [o.result for o in stale] == [CONFLICT]
    assert a._cache.take(store.post_key(post.post_key)) is None  # a refused batch keeps nothing
    assert [o.result for o in await a.apply([like(2), like(3)])] == [APPLIED, APPLIED]
    assert [o.result for o in await b.apply([like(3)])] == [DUPLICATE]
    assert (
        await board(redis, store.gen)
        == expected([*registrations, post, verdict, like(1), like(2), like(3)]).boards["all"]
    )


async def test_a_team_board_ranks_the_teams_current_members_on_all_their_points(
    redis: Redis, nats_server: Server, redis_server: Server
) -> None:
    """A team's board is the organisation's board restricted to the team's members: someone
    who moved team is ranked in the new team with every point of the period, and no longer in
    the old one; team totals keep each point in the team it was earned in."""
    from tests.unit.scoring.test_erasure import eng, erased, post, reg, verdict

    store, table = await ScoreStore.open(redis, default_table())
    pipe = ScoringPipeline(Scorer(table, TZ), store)
    events: list[Scored] = [
        reg("a1", "Ventes"), reg("a2", "Ventes"), reg("b1", "Tech"),
        post("p1", "a1"), verdict("p1", "allow", "a1"),
        post("q1", "a2", hours=1), verdict("q1", "allow", "a2"),
        post("t1", "b1", hours=2), verdict("t1", "allow", "b1"),
        reg("a1", "Tech", eid="reg-a1-moved"),  # a1 moves to Tech
        post("p2", "a1", hours=3), verdict("p2", "allow", "a1"), eng("e1", "comment", "p2"),
    ]  # fmt: skip
    assert all(o.result == APPLIED for o in await pipe.apply(events))
    proj = expected(events)
    assert proj.teams["all"] == {"Ventes": 2000, "Tech": 2500}  # where each point was earned
    # Without the API's response micro-cache (250 ms): what the view itself shows.
    settings = api_settings(nats_server.url, redis_server.url, analytics_projection=False,
                            response_cache_ms=0)  # fmt: skip

    async def team_board(team: str, period: str = "all-time") -> dict[str, float]:
        r = await api.client.get(f"/v1/leaderboards/{period}", headers=api.auth(ADMIN),
                                 params={"team": team, "date": "2026-11-20"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["team"] == team
        return {i["ambassador_id"]: i["points"] for i in r.json()["items"]}

    async with in_process(settings) as api:
        assert await team_board("Tech") == {"a1": 25, "b1": 10}
        assert await team_board("Ventes") == {"a2": 10}
        assert await team_board("Tech", "rolling-30") == {"a1": 25, "b1": 10}
        r = await api.client.get("/v1/leaderboards/all-time/teams", headers=api.auth(ADMIN))
        rows = {t["team"]: (t["points"], t["active_ambassadors"]) for t in r.json()["items"]}
        assert rows == {"Tech": (25, 2), "Ventes": (20, 1)}
        # Rank in the team (the directory, written by ingest, names the team).
        for aid in ("a1", "b1"):
            await redis.hset(ambassador_key(aid), mapping={"display_name": aid, "team": "Tech"})
        ranks = {}
        for aid in ("a1", "b1"):
            r = await api.client.get(f"/v1/ambassadors/{aid}/score", headers=api.auth(ADMIN))
            assert r.status_code == 200, r.text
            mine = r.json()["team_rank"]
            assert set(mine) == set(r.json()["periods"])  # every period, rolling-30 too
            ranks[aid] = (mine["all-time"]["rank"], mine["all-time"]["points"])
        assert ranks == {"a1": (1, 25), "b1": (2, 10)}
        # Live: the next point shows at the next read (no cache of the view).
        assert all(o.result == APPLIED for o in await pipe.apply([eng("e2", "comment", "t1")]))
        assert await team_board("Tech") == {"a1": 25, "b1": 15}
        # Erased: gone from the team's board and its members.
        assert all(o.result == APPLIED for o in await pipe.apply([erased("b1", "Tech")]))
        assert await team_board("Tech") == {"a1": 25}
        assert not await redis.sismember(team_members_key(store.gen, "Tech"), "b1")  # type: ignore[misc]


async def test_a_generation_from_before_members_sets_gets_them_from_its_states(
    redis: Redis,
) -> None:
    """Upgrading: the live generation's members sets are filled from its ambassador states
    (erased people left out), its old team member boards dropped, once."""
    from tests.unit.scoring.test_erasure import BEFORE, erased

    store, table = await ScoreStore.open(redis, default_table())
    pipe = ScoringPipeline(Scorer(table, TZ), store)
    assert all(o.result == APPLIED for o in await pipe.apply([*BEFORE, erased("a2")]))
    gen = store.gen
    members = {t: await redis.smembers(team_members_key(gen, t)) for t in ("Ventes", "Tech")}  # type: ignore[misc]
    assert members == {"Ventes": {b"a1"}, "Tech": {b"b1"}}
    # As an older release left it: no members sets, a board per team, indexed.
    old = f"pv:{{sc}}:{gen}:board:all:team:Ventes"
    await redis.zadd(old, {"a1": 100})
    await redis.sadd(store.board_index, old)  # type: ignore[misc]
    await redis.delete(
        *(team_members_key(gen, t) for t in members), f"pv:{{sc}}:{gen}:members-done"
    )
    again, _ = await ScoreStore.open(redis, default_table())
    assert {t: await redis.smembers(team_members_key(gen, t)) for t in members} == members  # type: ignore[misc]
    assert not await redis.exists(old)
    assert not await redis.sismember(store.board_index, old)  # type: ignore[misc]
    assert await again.index_members() == 0  # once


async def test_boards_from_before_the_index_are_indexed_once_and_a_generation_dropped_whole(
    redis: Redis,
) -> None:
    gen = "7"
    boards = [board_key(gen, f"day:2026-11-{d:02d}") for d in range(1, 31)]
    for k in boards:
        await redis.zadd(k, {"a1": 100})
    other = board_key("8", "all")
    await redis.zadd(other, {"a1": 100})
    store = ScoreStore(redis, gen)
    assert await store.index_boards(batch=7) == 30  # in chunks smaller than what there is
    indexed = await redis.smembers(store.board_index)  # type: ignore[misc]
    assert indexed == {k.encode() for k in boards}
    assert await store.index_boards() == 0  # once
    assert await store.drop_generation(gen, batch=7) == 30 + 2  # boards, index, its flag
    assert [k async for k in redis.scan_iter(match=f"pv:{{sc}}:{gen}:*")] == []
    assert await redis.exists(other)  # another generation's keys stay


async def test_erasure_step_is_exactly_once_and_keeps_team_and_organisation_totals(
    redis: Redis,
) -> None:
    from tests.unit.scoring.test_erasure import AFTER, BEFORE, erased

    store, table = await ScoreStore.open(redis, default_table())
    pipe = ScoringPipeline(Scorer(table, TZ), store)
    assert all(o.result == APPLIED for o in await pipe.apply(BEFORE))
    gen = store.gen

    def comment(eid: str) -> EngagementReceived:
        return EngagementReceived(event_id=eid, occurred_at=T0, producer="t",
                                  engagement="comment", post_key="linkedin:p1",
                                  network="linkedin", post_id="p1", actor=f"fan-{eid}")  # fmt: skip

    # Another instance scores on a1's post: it keeps a1's (pre-erasure) state in memory.
    other = ScoringPipeline(Scorer(table, TZ), ScoreStore(redis, gen))
    assert [o.result for o in await other.apply([comment("warm")])] == [APPLIED]
    a1_boards = [k async for k in redis.scan_iter(match=f"pv:{{sc}}:{gen}:board:*")
                 if await redis.zscore(k, "a1") is not None]  # fmt: skip
    # Day, week, month, quarter, all-time × overall, campaign (a team's board is a view).
    assert len(a1_boards) == 10 and await redis.exists(ledger_key(gen, "a1"))
    assert await redis.sismember(team_members_key(gen, "Ventes"), "a1")  # type: ignore[misc]
    assert await redis.exists(badges_key(gen, "a1"), stats_key(gen, "a1")) == 2
    # The API's rolling cache (a union of day boards, 5 s TTL), a team view as the API leaves
    # it (TTL), and badges not published yet.
    rolling = f"pv:{{sc}}:{gen}:rolling:30:2026-11-20"
    await redis.zunionstore(rolling, [board_key(gen, "day:2026-11-16")])
    await redis.pexpire(rolling, 5000)
    view = team_view_key(gen, "all", "Ventes")
    await redis.zinterstore(view, {board_key(gen, "all"): 1, team_members_key(gen, "Ventes"): 0})
    await redis.pexpire(view, 5000)
    assert await redis.zscore(view, "a1")
    outbox = [orjson.dumps({"event_id": f"badge:{a}:x", "ambassador_id": a}) for a in ("a1", "b1")]
    await redis.rpush(SCORING_OUTBOX, *outbox)
    teams = {p: await zmap(redis, teams_board_key(gen, p)) for p in ("all", "day:2026-11-16")}
    org = await redis.hgetall(stats_total_key(gen))

    # Redelivered tail + the erasure in one batch, then the erasure alone again, twice.
    outcomes = await pipe.apply([*BEFORE[-3:], erased("a1")])
    assert [o.result for o in outcomes] == [DUPLICATE, DUPLICATE, DUPLICATE, APPLIED]
    for _ in range(2):
        assert [o.result for o in await pipe.apply([erased("a1")])] == [DUPLICATE]
    await assert_erased(redis, gen, "a1")
    assert await redis.zscore(rolling, "a1") is None and await redis.zscore(rolling, "a2")
    assert await redis.zscore(view, "a1") is None and await redis.exists(view)
    assert await redis.lrange(SCORING_OUTBOX, 0, -1) == [outbox[1]]
    assert {p: await zmap(redis, teams_board_key(gen, p)) for p in teams} == teams
    assert await redis.hgetall(stats_total_key(gen)) == org

    # Later events on the erased person's posts: team and organisation move as if nothing
    # had been erased; nobody gets a board entry, a ledger, badges or stats back.
    assert all(o.result == APPLIED for o in await pipe.apply(AFTER))
    await assert_erased(redis, gen, "a1")
    # The other instance's copy of a1's state is stale: its step is refused, then recomputed
    # on the tombstone.
    assert [o.result for o in await other._apply_once([comment("late")])] == [CONFLICT]
    assert [o.result for o in await other.apply([comment("late")])] == [APPLIED]
    await assert_erased(redis, gen, "a1")
    kept = expected([*BEFORE, comment("warm"), *AFTER, comment("late")])
    for period, want in kept.teams.items():
        assert await zmap(redis, teams_board_key(gen, period)) == {
            k: v for k, v in want.items() if v
        }
    got: dict[Any, Any] = await redis.hgetall(stats_total_key(gen))
    assert {k.decode(): int(v) for k, v in got.items()} == kept.org


class _LoggedStore(ScoreStore):
    """Records the script's answer to every batch sent."""

    sent: list[int]

    async def send(self, batch: Any, payload: tuple[bytes, bytes]) -> tuple[int, list[int]]:
        result: tuple[int, list[int]] = await super().send(batch, payload)
        self.sent.append(result[0])
        return result


async def test_a_speculative_batch_on_a_refused_one_is_refused_and_recomputed(
    redis: Redis,
) -> None:
    # Batches of 2: batch k+1 is computed on the post state batch k will write (k's token as
    # expected version) while k's script runs. Another instance writes that post just before
    # k is sent: k is refused (CONFLICT), and so must k+1 be — by the script, not by luck —
    # then both are recomputed from Redis: nothing lost, nothing counted twice.
    events = workload(n_posts=6, seed=2, colleagues=False)
    store, table = await ScoreStore.open(redis, default_table())
    registrations = [e for e in events if isinstance(e, AmbassadorRegistered)]
    post = next(e for e in events if isinstance(e, PostReceived))
    verdict = _allowed(post)

    def like(i: int) -> EngagementReceived:
        return _like(post, i)

    other = ScoringPipeline(Scorer(table, TZ), ScoreStore(redis, store.gen))

    class Interleaved(_LoggedStore):
        injected = True  # armed below

        async def send(self, batch: Any, payload: tuple[bytes, bytes]) -> tuple[int, list[int]]:
            if not self.injected:  # batch k's script is about to leave; k+1 is computed on it
                self.injected = True
                assert [o.result for o in await other.apply([like(0)])] == [APPLIED]
            return await super().send(batch, payload)

    logged = Interleaved(redis, store.gen)
    logged.sent = []
    pipe = ScoringPipeline(Scorer(table, TZ), logged, chunk=2)
    assert all(o.result == APPLIED for o in await pipe.apply([*registrations, post, verdict]))
    logged.sent.clear()
    logged.injected = False
    likes = [like(i) for i in range(1, 5)]
    outcomes = await pipe.apply(likes)
    assert logged.injected and [o.result for o in outcomes] == [APPLIED] * 4
    # k refused (another instance wrote the post), k+1 refused by the script (computed on k's
    # unwritten states), then both recomputed and applied.
    assert logged.sent == [CONFLICT, CONFLICT, APPLIED, APPLIED]
    want = expected([*registrations, post, verdict, like(0), *likes])
    assert await board(redis, store.gen) == want.boards["all"]
    raw: list[Any] = await redis.lrange(ledger_key(store.gen, post.ambassador_id), 0, -1)
    assert sorted(orjson.loads(x)["event_id"] for x in raw if b"like-" in x) == [
        f"like-{i}" for i in range(5)
    ]


class _Raw:
    """Stands for a delivery's NATS message: the pipeline never touches it."""


def _deliveries(events: list[Scored], attempt: int = 1, first_seq: int = 0) -> list[Delivery]:
    return [
        Delivery(raw=_Raw(), subject=subject_for(e), data=b"", stream_seq=first_seq + i,  # type: ignore[arg-type]
                 attempt=attempt, msg_id=e.event_id, body=e.model_dump(mode="json"))
        for i, e in enumerate(events)
    ]  # fmt: skip


async def _handle_as_the_bus_does(pipe: ScoringPipeline, pull: list[Delivery]) -> list[Pending]:
    """The BatchProcessor's contract (`handle_collecting`): what the handler leaves pending is
    awaited before the pull is acked (here: by the caller, after the next pull was handled, as
    the worker's loop does while the stream is backlogged)."""
    later: list[Pending] = []
    await handle_collecting(pipe.handle, pull, later)
    return later


async def _delivered_until_acked(pipe: ScoringPipeline, events: list[Scored]) -> None:
    """Deliver a pull as the bus does until every delivery would be acked: a delivery marked
    for retry, or a refused confirmation (the whole pull), is redelivered."""
    for attempt in range(1, 30):
        pull = _deliveries(events, attempt=attempt)
        try:
            for c in await _handle_as_the_bus_does(pipe, pull):
                await c.result()
        except ScoringRefused:
            continue
        events = [e for e, d in zip(events, pull, strict=True) if d.outcome == "retry"]
        if not events:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still refused after 30 deliveries: {[e.event_id for e in events]}")


@pytest.mark.parametrize("erased", [(), ("a3", "a5")], ids=["", "with-erasures"])
async def test_a_pull_left_in_flight_is_built_on_by_the_next_and_confirmed_before_acks(
    redis: Redis, erased: tuple[str, ...]
) -> None:
    # Under the bus runtime each pull's last script batch is left in flight: the next pull is
    # read and computed on top of it, and the runtime awaits it before acking. Results must be
    # those of the sequential computation, and no metric counted before its script answered.
    events = with_erasures(workload(), *erased)
    store, table = await ScoreStore.open(redis, default_table())
    pipe = ScoringPipeline(Scorer(table, TZ), store, chunk=4)
    rnd = random.Random(11)
    held: list[Pending] = []
    i = 0
    applied_before = EVENTS_SCORED.labels("applied")._value.get()
    while i < len(events):
        n = rnd.randint(1, 40)
        pull = _deliveries(events[i : i + n], first_seq=i)
        later = await _handle_as_the_bus_does(pipe, pull)
        assert len(later) == 1 and pipe._tail is not None  # the last batch is in flight
        assert all(d.outcome == "ok" for d in pull)
        for c in held:  # the previous pull's: settled after this one was handled
            await c.result()
        held = later
        i += n
    counted = EVENTS_SCORED.labels("applied")._value.get() - applied_before
    assert counted < len(events)  # the last pull's tail is not counted yet
    for c in held:
        await c.result()
    assert EVENTS_SCORED.labels("applied")._value.get() - applied_before == len(events)
    proj = expected(events)
    for period, want in proj.boards.items():
        assert await board(redis, store.gen, period) == {k: v for k, v in want.items() if v}
    for period, want in proj.teams.items():
        assert await zmap(redis, teams_board_key(store.gen, period)) == {
            k: v for k, v in want.items() if v
        }
    for aid in erased:
        await assert_erased(redis, store.gen, aid)
    # Outside the bus runtime nothing is left in flight: the tail is answered by the next call.
    assert [o.provisional for o in await pipe.apply(events[:3])] == [False] * 3
    assert pipe._tail is None


async def test_a_pull_left_in_flight_is_on_its_way_to_valkey_when_the_handler_returns(
    redis: Redis, redis_server: Server
) -> None:
    # The tail's script must run while the runtime accounts this pull and validates the next,
    # not wait for the next pull's first read to give the event loop a turn (Valkey would idle
    # through both: a tenth of the awards bench's wall time).
    events = workload(n_posts=8, seed=3, colleagues=False)
    store, table = await ScoreStore.open(redis, default_table())
    pipe = ScoringPipeline(Scorer(table, TZ), store, chunk=4)
    later = await _handle_as_the_bus_does(pipe, _deliveries(events))
    assert len(later) == 1 and pipe._tail is not None
    last = store.seen_key(events[-1].event_id)
    assert seen_while_the_loop_is_blocked(redis_server.url, lambda r: r.exists(last))
    for c in later:
        await c.result()


async def test_a_refused_tail_fails_its_pull_which_redelivery_applies_exactly_once(
    redis: Redis,
) -> None:
    # A pull's last batch (likes on post B) holds an event another instance applied meanwhile:
    # first deliveries do not read their markers, so the script refuses that batch after the
    # handler returned, while the pull's first batch (likes on post A, another author) applied.
    # The confirmation must raise (the runtime then redelivers the whole pull), the next pull
    # — computed on the refused batch's states — must be refused by the script and recomputed,
    # and the redelivered pull applied exactly once.
    events = workload(n_posts=8, seed=2, colleagues=False)
    store, table = await ScoreStore.open(redis, default_table())
    setup = [e for e in events if not isinstance(e, EngagementReceived)]
    posts = [e for e in setup if isinstance(e, PostReceived)]
    a = posts[0]
    b = next(p for p in posts if p.ambassador_id != a.ambassador_id)
    setup += [_allowed(p).model_copy(update={"event_id": f"d-{p.post_id}"}) for p in (a, b)]

    def like(post: PostReceived, i: int) -> EngagementReceived:
        return _like(post, i).model_copy(update={"event_id": f"like-{post.post_id}-{i}"})

    first = [*(like(a, i) for i in range(4)), *(like(b, i) for i in range(4))]
    second = [like(b, i) for i in range(4, 8)]
    logged = _LoggedStore(redis, store.gen)
    logged.sent = []
    pipe = ScoringPipeline(Scorer(table, TZ), logged, chunk=4)
    other = ScoringPipeline(Scorer(table, TZ), ScoreStore(redis, store.gen))
    assert all(o.result == APPLIED for o in await pipe.apply(setup))
    assert [o.result for o in await other.apply([first[6]])] == [APPLIED]
    logged.sent.clear()
    later = await _handle_as_the_bus_does(pipe, _deliveries(first))
    assert len(later) == 1  # batch [A×4] applied; batch [B×4] left in flight
    after = await _handle_as_the_bus_does(pipe, _deliveries(second))
    with pytest.raises(ScoringRefused):
        await later[0].result()
    for c in after:
        await c.result()  # the next pull was recomputed on Redis's states and applied
    # [A×4] applied, [B×4] refused (a duplicate), the next pull's batch refused (computed on
    # [B×4]'s unwritten states), then recomputed and applied.
    assert logged.sent == [APPLIED, DUPLICATE, CONFLICT, APPLIED]
    # The runtime retries the failed pull: a redelivery (markers read) applies the rest once.
    for c in await _handle_as_the_bus_does(pipe, _deliveries(first, attempt=2)):
        await c.result()
    want = expected([*setup, *first, *second])
    assert await board(redis, store.gen) == {k: v for k, v in want.boards["all"].items() if v}
    for author, n in ((a.ambassador_id, 4), (b.ambassador_id, 8)):
        raw: list[Any] = await redis.lrange(ledger_key(store.gen, author), 0, -1)
        ids = [orjson.loads(x)["event_id"] for x in raw if b"like-" in x]
        assert len(ids) == len(set(ids)) == n

"""The simulator's promises: deterministic, valid contract v1, realistic shape, and charter
problems that the default charter really flags (checked with the moderation engine itself)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import pytest
from stdnum import iban, luhn
from stdnum.fr import nir

from portevoix.contracts.ingest import AmbassadorIn, EngagementIn, PostIn, parse_ingest_event
from portevoix.simulation import PROBLEM_RULES, PROBLEMS, SimEvent, Simulation, SimulationConfig
from portevoix.simulation.texts import card_number, french_iban, nir_number

START = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class Run:
    sim: Simulation
    stream: list[SimEvent]


def run(seed: int, events: int, ambassadors: int) -> Run:
    sim = Simulation(
        SimulationConfig(start=START, seed=seed, events=events, ambassadors=ambassadors)
    )
    return Run(sim, list(sim.events()))


@pytest.fixture(scope="module")
def sim() -> Run:
    return run(seed=11, events=12_000, ambassadors=150)


def test_same_seed_same_bytes_other_seed_other_events() -> None:
    a = [orjson.dumps(e.payload) for e in run(seed=3, events=1500, ambassadors=40).stream]
    b = [orjson.dumps(e.payload) for e in run(seed=3, events=1500, ambassadors=40).stream]
    c = [orjson.dumps(e.payload) for e in run(seed=4, events=1500, ambassadors=40).stream]
    assert a == b
    assert a != c


def test_every_event_is_valid_contract_v1_in_time_order_with_unique_ids(sim: Run) -> None:
    stream = sim.stream
    assert len(stream) == 12_000
    parsed = [parse_ingest_event(e.payload) for e in stream]
    assert all(isinstance(p, AmbassadorIn) for p in parsed[:150])
    activity = [p for p in parsed[150:] if isinstance(p, PostIn | EngagementIn)]
    assert len(activity) == len(parsed) - 150
    ids = [p.event_id for p in activity]
    assert len(set(ids)) == len(ids)
    times = [p.occurred_at for p in activity]
    assert times == sorted(times)
    assert times[0] >= START and times[-1] <= sim.sim.config.end


def test_handles_are_unique_per_network_and_engagement_targets_known_posts(
    sim: Run,
) -> None:
    owners: dict[tuple[str, str], str] = {}
    for a in sim.sim.organisation.ambassadors:
        for net, h in a.handles.items():
            assert owners.setdefault((net, h), a.ambassador_id) == a.ambassador_id
    networks = Counter(n for a in sim.sim.organisation.ambassadors for n in a.handles)
    assert networks["linkedin"] > 0.8 * len(sim.sim.organisation.ambassadors) and len(networks) >= 4
    posted: set[str] = set()
    reactions: set[tuple[str, str, str]] = set()
    for e in sim.stream:
        p = e.payload
        if p["type"] == "post":
            assert (p["network"], p["author"]) in owners
            posted.add(p["post_id"])
        elif p["type"] != "ambassador":
            assert p["post_id"] in posted  # engagement never precedes its post
            if p["type"] in ("like", "share"):
                key = (p["type"], p["post_id"], p["actor"])
                assert key not in reactions  # one like/share per actor: no fact reported twice
                reactions.add(key)


def test_realistic_shape_power_law_colleagues_rings_and_fr_en(sim: Run) -> None:
    s = sim.sim.stats
    assert 0.05 < s.posts / 12_000 < 0.12 and 0.2 < s.relays / s.posts < 0.5
    posts_by_author = Counter(
        e.payload["author"] for e in sim.stream if e.payload["type"] == "post"
    )
    counts = sorted(posts_by_author.values(), reverse=True)
    top = sum(counts[: max(1, len(sim.sim.organisation.ambassadors) // 10)])
    assert top > 0.3 * sum(counts)  # a tenth of the ambassadors write a third or more
    assert 0.05 < s.colleague_engagement / s.engagement < 0.25
    assert s.ring_likes > 0 and sim.sim.organisation.rings
    langs = Counter(e.payload.get("lang") for e in sim.stream if e.payload["type"] == "post")
    assert langs["fr"] > langs["en"] > 0.1 * s.posts
    kinds = Counter(s.by_type)
    assert kinds["like"] > kinds["click"] > kinds["comment"] > 0 and kinds["share"] > 0
    assert set(s.problems) == set(PROBLEMS)
    assert 0.06 < sum(s.problems.values()) / s.posts < 0.2


def test_personal_data_checksums_validate() -> None:
    import random

    rng = random.Random(1)
    for _ in range(200):
        assert iban.is_valid(french_iban(rng).replace(" ", ""))
        assert luhn.is_valid(card_number(rng).replace(" ", ""))
        assert nir.is_valid(nir_number(rng).replace(" ", ""))


def test_the_default_charter_flags_every_problem_and_spares_clean_posts(sim: Run) -> None:
    from portevoix_moderation.charter import CharterEngine, PostToCheck, default_charter

    engine = CharterEngine(default_charter())
    missed: Counter[str] = Counter()
    flagged_clean: Counter[str] = Counter()
    checked = Counter[str]()
    for e in sim.stream:
        if e.payload["type"] != "post":
            continue
        post = PostIn.model_validate(e.payload)
        if e.problem is None and checked["clean"] >= 300:
            continue
        checked["clean" if e.problem is None else "problem"] += 1
        d = engine.check(
            PostToCheck(
                post_id=post.post_id, text=post.text, kind=post.kind, network=post.network,
                lang=post.lang, author_registered=True, author_consenting=True,
                campaign=post.campaign, ambassador_id=post.author, occurred_at=post.occurred_at,
            )
        ).to_dict()  # fmt: skip
        rules = {f["rule"] for f in d["findings"] if not f.get("shadow")}
        if e.problem is not None and PROBLEM_RULES[e.problem] not in rules:
            missed[e.problem] += 1
        if e.problem is None and d["verdict"] not in ("allow", "nudge"):
            flagged_clean[d["verdict"]] += 1
    assert checked["problem"] > 50
    assert not missed, f"problems the charter did not flag: {missed}"
    assert not flagged_clean, f"clean posts held or blocked: {flagged_clean}"

"""The gateway on the running platform (the four services as processes, real NATS and Valkey):
what the services publish reaches the analytics, the idea box and the live feed; then
schemathesis drives every operation of the OpenAPI document: no 5xx, every error problem+json."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from portevoix.runtime.platform import Platform
from tests.e2e.helpers import act, amb, eventually, post
from tests.infra import running_platform, start_nats, start_redis

pytestmark = pytest.mark.e2e
TODAY = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)


def at(minutes: int) -> str:
    return (
        (TODAY - timedelta(days=1) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    )


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root: Path = tmp_path_factory.mktemp("gateway")
    nats, redis = start_nats(root / "nats"), start_redis(root / "valkey")
    p = Platform(
        run_dir=root, nats_url=nats.url, redis_url=redis.url, log_dir=root / "logs",
        admin_token="test-admin-token",
        extra_env={
            "PORTEVOIX_LOG_LEVEL": "WARNING", "PORTEVOIX_FEED_MAX_SECONDS": "0.3",
            "PORTEVOIX_FEED_HEARTBEAT_S": "0.1",
            "PORTEVOIX_RATE_LIMITS": json.dumps({r: 1_000_000 for r in
                                                 ("ambassador", "moderator", "admin", "service")}),
        },
    )  # fmt: skip
    with running_platform(p, nats, redis):
        yield p


@pytest.fixture(scope="module")
def admin(gateway: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=gateway.api_url,
        headers={"Authorization": f"Bearer {gateway.admin_token}"},
        timeout=30,
    ) as client:
        yield client


def test_services_events_reach_analytics_ideas_and_feed(
    gateway: Platform, admin: httpx.Client
) -> None:
    moderated: list[dict[str, Any]] = []
    opened = threading.Event()

    def listen() -> None:  # the feed closes every 0.3 s here: reconnect with Last-Event-ID
        last: str | None = None
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while len(moderated) < 3 and datetime.now(UTC) < deadline:
            headers = {"Last-Event-ID": last} if last else {}
            with admin.stream("GET", "/v1/feed", params={"types": "post.moderated"},
                              headers=headers) as resp:  # fmt: skip
                assert resp.status_code == 200
                opened.set()
                for line in resp.iter_lines():
                    if line.startswith("id: "):
                        last = line[4:]
                    elif line.startswith("data: "):
                        moderated.append(json.loads(line[6:]))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert opened.wait(10)
    events = [
        amb("g1", "Gaëlle Un", "Ventes", {"linkedin": "gaelle-1"}),
        amb("g2", "Gus Deux", "Tech", {"linkedin": "gus-2"}),
        amb("g3", "Gil Trois", "Tech", {"linkedin": "gil-3"}),
        post("gp1", "gp1", "gaelle-1", "Et si on organisait un atelier vélo au bureau ? #idée",
             at=at(10)),
        post("gp2", "gp2", "gus-2", "Notre nouvelle appli mobile est en ligne #collaborateur",
             at=at(20)),
        post("gp3", "gp3", "gus-2", "Ce client est un vrai connard, je ne le supporte plus.",
             at=at(30)),
        act("like", "gl1", "gp1", "fan-1", at=at(40)),
        act("comment", "gc1", "gp1", "fan-2", at=at(41), text="Super idée"),
        act("like", "gl2", "gp2", "gil-3", at=at(42)),
    ]  # fmt: skip
    r = admin.post("/v1/events", json=events)
    assert r.status_code == 202, r.text

    def figures() -> dict[str, Any] | None:
        a = admin.get("/v1/analytics").json()
        return a if a["posts"]["total"] == 3 and a["engagement"]["total"] == 3 and \
            a["verdicts"]["decisions"] >= 3 else None  # fmt: skip

    a = eventually(figures, 60)
    assert a["participation"]["registered"] == 3
    assert a["participation"]["active"] == 3  # g3 engaged as a colleague
    assert a["posts"]["by_team"] == {"Tech": 2, "Ventes": 1}
    assert a["engagement"]["by_kind"] == {"comment": 1, "like": 2}
    assert any(t["hashtag"] == "idee" for t in a["top_hashtags"])
    assert a["verdicts"]["by_principle"].get("responsabilite") == {"block": 1}
    box = eventually(lambda: admin.get("/v1/ideas").json()["items"], 30)
    assert [i["post_key"] for i in box] == ["linkedin:gp1"]
    assert box[0]["engagement"]["total"] == 2 and box[0]["team"] == "Ventes"
    listener.join(60)
    assert {m["post_key"] for m in moderated} == {"linkedin:gp1", "linkedin:gp2", "linkedin:gp3"}


# -- schemathesis over every operation --------------------------------------------------------
def problem_json_errors(ctx: Any, response: Any, case: Any) -> None:
    """Every error answer is RFC 9457 problem+json."""
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])
        value = content_type[0] if isinstance(content_type, list) else content_type
        assert value.startswith("application/problem+json"), (
            f"{case.operation.label}: {response.status_code} answered {value}"
        )


def test_openapi_contract_no_server_errors(gateway: Platform) -> None:
    """Every operation of the OpenAPI document, with generated valid and invalid inputs (bounded:
    a few examples each, derandomized), as admin: no 5xx, every error problem+json."""
    api_schema = schemathesis.openapi.from_url(f"{gateway.api_url}/openapi.json")
    headers = {"Authorization": f"Bearer {gateway.admin_token}"}
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        operations += 1

        @settings(
            max_examples=8, deadline=None, derandomize=True, database=None,
            phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            case.call_and_validate(
                base_url=gateway.api_url, headers=headers,
                checks=[not_a_server_error, problem_json_errors], timeout=20,
            )  # fmt: skip

        try:
            run()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # schemathesis reports a group of failures per operation
            failures.append(f"{operation.label}: {str(exc)[:600]}")
    assert operations >= 35
    assert not failures, "\n\n".join(failures)

"""Authorization matrix: every route of the app × every role, against a declared policy.

The routes come from `app.routes`; the policy table below says who may call each. A route with
no declared policy FAILS the test: whoever adds a route declares its policy here. For each route:
no token → 401 (with a Bearer challenge); an unknown token → 401; a role outside the policy →
403; a role inside it → neither 401 nor 403 (404/409/422 are fine: the call got past the door).
Routes marked `own` are reachable by an ambassador on their own id only (another id → 403).
Routes whose data-level check needs data that exists (a post's author) are declared for every
role that passes the door; their owners test the data-level rule.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from tests.e2e.api_harness import ADMIN, RunningApi, api_settings, in_process
from tests.infra import Server

pytestmark = pytest.mark.e2e

AMBASSADOR, MODERATOR, ADMIN_ROLE, SERVICE = "ambassador", "moderator", "admin", "service"
EVERYONE = frozenset({AMBASSADOR, MODERATOR, ADMIN_ROLE, SERVICE})
SELF, OTHER = "a-self", "a-other"


@dataclass(frozen=True)
class Policy:
    roles: frozenset[str] = frozenset()
    public: bool = False
    own: bool = False  # an ambassador may call it on their own {ambassador_id}
    note: str = ""


PUBLIC = Policy(public=True)


def only(*roles: str, note: str = "") -> Policy:
    return Policy(frozenset(roles), note=note)


def own(*staff: str) -> Policy:
    return Policy(frozenset(staff), own=True)


ANYONE = Policy(EVERYONE)
DATA_CHECK = "identity checked against the record after lookup (owner's tests)"

POLICY: dict[tuple[str, str], Policy] = {
    # FastAPI docs and operational endpoints
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/asyncapi/{service}.json"): PUBLIC,
    ("GET", "/v1/health"): PUBLIC,
    ("GET", "/v1/ready"): PUBLIC,
    # webhooks authenticate by signature (checked by ingest), not bearer token
    ("POST", "/v1/webhooks/{network}"): PUBLIC,
    ("GET", "/v1/webhooks/{network}"): PUBLIC,
    # ingest
    ("POST", "/v1/events"): only(ADMIN_ROLE, SERVICE),
    ("POST", "/v1/ambassadors"): only(ADMIN_ROLE, SERVICE),
    ("PUT", "/v1/ambassadors/{ambassador_id}"): only(ADMIN_ROLE, SERVICE),
    ("GET", "/v1/ambassadors"): only(MODERATOR, ADMIN_ROLE, SERVICE),
    ("GET", "/v1/ambassadors/{ambassador_id}"): own(MODERATOR, ADMIN_ROLE, SERVICE),
    ("PUT", "/v1/ambassadors/{ambassador_id}/consent"): own(ADMIN_ROLE, SERVICE),
    ("GET", "/v1/ambassadors/{ambassador_id}/export"): own(ADMIN_ROLE, SERVICE),
    ("DELETE", "/v1/ambassadors/{ambassador_id}"): own(ADMIN_ROLE, SERVICE),
    ("GET", "/v1/ambassadors/erasures/{request_id}"): ANYONE,
    # scoring
    ("GET", "/v1/leaderboards/{period}"): ANYONE,
    ("GET", "/v1/leaderboards/{period}/teams"): ANYONE,
    ("GET", "/v1/ambassadors/{ambassador_id}/score"): own(MODERATOR, ADMIN_ROLE, SERVICE),
    ("GET", "/v1/ambassadors/{ambassador_id}/ledger"): own(MODERATOR, ADMIN_ROLE, SERVICE),
    ("GET", "/v1/ambassadors/{ambassador_id}/badges"): own(MODERATOR, ADMIN_ROLE, SERVICE),
    # moderation
    ("GET", "/v1/charters"): ANYONE,
    ("GET", "/v1/charters/{version}"): ANYONE,
    ("POST", "/v1/charters"): only(ADMIN_ROLE, SERVICE),
    ("POST", "/v1/charters/{version}/activate"): only(ADMIN_ROLE, SERVICE),
    ("GET", "/v1/points-tables"): ANYONE,
    ("GET", "/v1/points-tables/{version}"): ANYONE,
    ("POST", "/v1/points-tables"): only(ADMIN_ROLE, SERVICE),
    ("GET", "/v1/moderation/queue"): only(MODERATOR, ADMIN_ROLE),
    ("GET", "/v1/moderation/queue/stats"): only(MODERATOR, ADMIN_ROLE),
    ("POST", "/v1/moderation/posts/{post_key}/review"): only(MODERATOR, ADMIN_ROLE),
    ("POST", "/v1/moderation/posts/{post_key}/takedown"): only(MODERATOR, ADMIN_ROLE),
    ("POST", "/v1/moderation/posts/{post_key}/appeals"): Policy(EVERYONE, note=DATA_CHECK),
    ("GET", "/v1/moderation/posts/{post_key}/audit"): only(MODERATOR, ADMIN_ROLE),
    ("GET", "/v1/moderation/audit"): only(MODERATOR, ADMIN_ROLE),
    ("GET", "/v1/moderation/rules"): only(MODERATOR, ADMIN_ROLE),
    ("GET", "/v1/posts/{post_key}"): Policy(EVERYONE, note=DATA_CHECK),
    # API gateway
    ("POST", "/v1/api-keys"): only(ADMIN_ROLE),
    ("GET", "/v1/api-keys"): only(ADMIN_ROLE),
    ("GET", "/v1/api-keys/{key_id}"): only(ADMIN_ROLE),
    ("DELETE", "/v1/api-keys/{key_id}"): only(ADMIN_ROLE),
    ("GET", "/v1/analytics"): only(MODERATOR, ADMIN_ROLE, SERVICE),
    ("GET", "/v1/ideas"): only(MODERATOR, ADMIN_ROLE, SERVICE),
    ("GET", "/v1/feed"): only(MODERATOR, ADMIN_ROLE),
}

SAMPLES = {
    "ambassador_id": OTHER,
    "period": "all-time",
    "key_id": "k_0000000000000000",
    "post_key": "linkedin:p-0",
    "version": "v-0",
    "network": "generic",
    "request_id": "erase-" + "0" * 32,
    "service": "ingest",
}
# A body that validates, for routes whose role check runs in the handler, after validation (a
# wrong body would answer 422 before the 403 the matrix looks for).
BODIES: dict[tuple[str, str], dict[str, object]] = {
    ("PUT", "/v1/ambassadors/{ambassador_id}/consent"): {"consent": True},
}
PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def concrete(path: str, **values: str) -> str:
    return PARAM.sub(lambda m: values.get(m.group(1), SAMPLES.get(m.group(1), "x")), path)


@dataclass
class Tokens:
    by_role: dict[str, str] = field(default_factory=dict)


def app_routes(api: RunningApi) -> list[tuple[str, str]]:
    found = set()
    for route in iter_route_contexts(api.app.routes):
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, str(route.path)))
    return sorted(found)


@pytest.fixture
async def api(nats_server: Server, redis_server: Server) -> AsyncIterator[RunningApi]:
    settings = api_settings(
        nats_server.url, redis_server.url,
        feed_max_seconds=0.2, analytics_projection=False,
        rate_limits={r: 100_000 for r in EVERYONE},
    )  # fmt: skip
    async with in_process(settings) as running:
        yield running


async def call(
    api: RunningApi, method: str, path: str, token: str | None, body: object = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method in ("POST", "PUT", "PATCH"):
        return await api.client.request(method, path, headers=headers, json=body or {})
    return await api.client.request(method, path, headers=headers)


async def test_every_route_has_a_declared_policy_and_honours_it(api: RunningApi) -> None:
    routes = app_routes(api)
    undeclared = [r for r in routes if r not in POLICY]
    assert not undeclared, f"declare the authorization policy of these routes: {undeclared}"
    stale = [r for r in POLICY if r not in routes]
    assert not stale, f"policies for routes that no longer exist: {stale}"

    tokens = {ADMIN_ROLE: ADMIN}
    for role in (MODERATOR, SERVICE):
        tokens[role] = await api.new_key(role)
    tokens[AMBASSADOR] = await api.new_key(AMBASSADOR, SELF)
    admin_key = await api.new_key(ADMIN_ROLE)  # an admin API key behaves as the admin token

    failures: list[str] = []

    def expect(cond: bool, what: str, r: httpx.Response) -> None:
        if not cond:
            failures.append(f"{what}: got {r.status_code} {r.text[:160]}")

    for method, template in routes:
        policy = POLICY[(method, template)]
        path = concrete(template)
        label = f"{method} {template}"
        if policy.public:
            r = await call(api, method, path, None)
            expect(r.status_code not in (401, 403) or "bearer" not in
                   r.headers.get("www-authenticate", "").lower(), f"{label} public", r)  # fmt: skip
            continue
        r = await call(api, method, path, None)
        expect(r.status_code == 401, f"{label} without token → 401", r)
        expect("Bearer" in r.headers.get("www-authenticate", ""), f"{label} 401 challenge", r)
        expect(r.headers.get("content-type") == "application/problem+json", f"{label} 401 type", r)
        r = await call(api, method, path, "not-a-known-token")
        expect(r.status_code == 401, f"{label} unknown token → 401", r)
        for role, token in [*tokens.items(), ("admin (API key)", admin_key)]:
            base_role = role.split(" ")[0]
            r = await call(api, method, path, token, BODIES.get((method, template)))
            if base_role in policy.roles:
                expect(r.status_code not in (401, 403), f"{label} as {role} → allowed", r)
            elif base_role == AMBASSADOR and policy.own:
                expect(r.status_code == 403, f"{label} as ambassador on another id → 403", r)
                mine = await call(
                    api, method, concrete(template, ambassador_id=SELF), token,
                    BODIES.get((method, template)),
                )  # fmt: skip
                expect(mine.status_code not in (401, 403), f"{label} as ambassador on own id", mine)
            else:
                expect(r.status_code == 403, f"{label} as {role} → 403", r)
                expect(r.headers.get("content-type") == "application/problem+json",
                       f"{label} 403 type", r)  # fmt: skip
    assert not failures, "\n".join(failures)


def test_a_route_without_policy_is_reported() -> None:
    """The matrix cannot silently pass a new route: the lookup is by (method, path template)."""
    declared = set(POLICY)
    assert ("GET", "/v1/some-new-resource") not in declared
    assert all(p.public or p.roles for p in POLICY.values())


@pytest.fixture
async def api_on_cluster(
    nats_server: Server, redis_cluster_server: Server
) -> AsyncIterator[RunningApi]:
    settings = api_settings(
        nats_server.url, redis_cluster_server.url, redis_cluster=True,
        feed_max_seconds=0.2, analytics_projection=True,
        rate_limits={r: 100_000 for r in EVERYONE},
    )  # fmt: skip
    async with in_process(settings) as running:
        yield running


async def test_every_route_answers_on_a_redis_cluster(api_on_cluster: RunningApi) -> None:
    # The same calls (every route, every role) against a real 3-primary cluster: the policies
    # hold there too, and no call fails on the server's side (CROSSSLOT, a script in a cluster
    # pipeline, a key on another node).
    failed: list[str] = []

    async def record(r: httpx.Response) -> None:
        # (503 from the webhook gateway: the ingest service is not running in this test.)
        if r.status_code >= 500 and r.request.url.path != "/v1/webhooks/generic":
            await r.aread()
            failed.append(
                f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}"
            )

    api_on_cluster.client.event_hooks["response"].append(record)
    await test_every_route_has_a_declared_policy_and_honours_it(api_on_cluster)
    assert not failed, failed

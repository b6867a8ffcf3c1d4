"""Gateway security against real NATS + Valkey: JWT via JWKS (file and HTTP), per-token rate
limits, request size limits, CORS, problem+json for every error, no personal data in logs."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from portevoix_api.problems import Problem
from tests.e2e.api_harness import ADMIN, RunningApi, api_settings, in_process
from tests.infra import Server

pytestmark = pytest.mark.e2e
ISSUER, AUDIENCE = "https://idp.example", "porte-voix"
PROBLEM = "application/problem+json"


class Issuer:
    """A local identity provider: an EC key pair, its JWKS, and tokens signed with it."""

    def __init__(self, kid: str = "k1") -> None:
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        jwk = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}]}

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user@example.org", "iat": now,
                "exp": now + 300, **claims}  # fmt: skip
        return jwt.encode(body, self.key, algorithm="ES256", headers={"kid": self.kid})


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def jwks_file(tmp_path: Path, issuer: Issuer) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(issuer.jwks()))
    return path


@pytest.fixture
def jwks_http(jwks_file: Path) -> Iterator[str]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(jwks_file.parent))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{jwks_file.name}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def servers(nats_server: Server, redis_server: Server) -> tuple[str, str]:
    return nats_server.url, redis_server.url


@pytest.fixture
async def api(servers: tuple[str, str], jwks_file: Path) -> AsyncIterator[RunningApi]:
    settings = api_settings(
        *servers, jwks_url=str(jwks_file), jwt_issuer=ISSUER, jwt_audience=AUDIENCE,
        jwt_role_claim="realm_access.roles", analytics_projection=False, max_body_bytes=2048,
        cors_origins=["https://portal.example"],
        rate_limits={"ambassador": 3, "moderator": 1000, "admin": 1000, "service": 1000},
    )  # fmt: skip
    async with in_process(settings) as running:
        yield running


def role_claim(*roles: str) -> dict[str, Any]:
    return {"realm_access": {"roles": list(roles)}}


async def test_jwt_roles_claims_and_rejections(api: RunningApi, issuer: Issuer) -> None:
    get = api.client.get
    moderator = issuer.token(**role_claim("offline_access", "moderator"))
    r = await get("/v1/ideas", headers=api.auth(moderator))
    assert r.status_code == 200, r.text
    # An ambassador JWT reaches its own data only.
    mine = issuer.token(**role_claim("ambassador"), ambassador_id="a-7")
    assert (await get("/v1/ambassadors/a-8/score", headers=api.auth(mine))).status_code == 403
    assert (await get("/v1/ambassadors/a-7/score", headers=api.auth(mine))).status_code == 404
    assert (await get("/v1/ideas", headers=api.auth(mine))).status_code == 403
    # Valid but no Porte-Voix role, or an ambassador without an id: known, not allowed → 403.
    for token in (issuer.token(**role_claim("viewer")), issuer.token(**role_claim("ambassador"))):
        r = await get("/v1/leaderboards/all-time", headers=api.auth(token))
        assert r.status_code == 403, r.text
    # Expired, wrong audience, wrong issuer, forged, unknown key, alg none → 401 invalid_token.
    forger = Issuer("k1")
    now = int(time.time())
    bad = [
        issuer.token(**role_claim("admin"), exp=now - 120),
        issuer.token(**role_claim("admin"), aud="someone-else"),
        issuer.token(**role_claim("admin"), iss="https://evil.example"),
        forger.token(**role_claim("admin")),
        Issuer("k-unknown").token(**role_claim("admin")),
        jwt.encode({"sub": "x", "exp": now + 60, **role_claim("admin")}, "", algorithm="none"),
    ]
    for token in bad:
        r = await get("/v1/leaderboards/all-time", headers=api.auth(token))
        assert r.status_code == 401, (token, r.text)
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        assert r.headers["content-type"] == PROBLEM


async def test_jwks_served_over_http(
    servers: tuple[str, str], jwks_http: str, issuer: Issuer
) -> None:
    settings = api_settings(*servers, jwks_url=jwks_http, analytics_projection=False)
    async with in_process(settings) as api:
        token = issuer.token(role="admin")  # default claim `role`, no iss/aud configured
        r = await api.client.get("/v1/api-keys", headers=api.auth(token))
        assert r.status_code == 200, r.text
        r = await api.client.get("/v1/api-keys", headers=api.auth(Issuer().token(role="admin")))
        assert r.status_code == 401


async def test_rate_limit_per_token_with_retry_after(api: RunningApi) -> None:
    first, second = await api.new_key("ambassador", "a-1"), await api.new_key("ambassador", "a-2")
    statuses = [
        (await api.client.get("/v1/leaderboards/all-time", headers=api.auth(first))).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    r = await api.client.get("/v1/leaderboards/all-time", headers=api.auth(first))
    assert r.status_code == 429
    assert r.headers["content-type"] == PROBLEM
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.json()["type"].endswith("/rate-limited")
    # Another token of the same role has its own budget; unauthenticated routes are not limited.
    r = await api.client.get("/v1/leaderboards/all-time", headers=api.auth(second))
    assert r.status_code == 200
    assert (await api.client.get("/v1/health")).status_code == 200


async def test_request_size_limit_before_reading_the_body(api: RunningApi) -> None:
    big = b"x" * 4096
    admin = {**api.auth(ADMIN), "content-type": "application/json"}
    for method, path in [("POST", "/v1/api-keys"), ("POST", "/v1/events"), ("GET", "/v1/health"),
                         ("POST", "/v1/nowhere")]:  # fmt: skip
        r = await api.client.request(method, path, content=big, headers=admin)
        assert r.status_code == 413, (path, r.text)
        assert r.headers["content-type"] == PROBLEM

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked transfer
        for _ in range(8):
            yield b"y" * 512

    r = await api.client.post("/v1/api-keys", content=chunks(), headers=admin)
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == PROBLEM and r.json()["status"] == 413
    small = await api.client.post("/v1/api-keys", json={"role": "service"}, headers=admin)
    assert small.status_code == 201


async def test_cors_allows_only_configured_origins(api: RunningApi) -> None:
    preflight = await api.client.options(
        "/v1/leaderboards/all-time",
        headers={"Origin": "https://portal.example", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"},
    )  # fmt: skip
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://portal.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    r = await api.client.get(
        "/v1/leaderboards/all-time",
        headers={**api.auth(ADMIN), "Origin": "https://portal.example"},
    )
    assert r.headers["access-control-allow-origin"] == "https://portal.example"
    assert "etag" in r.headers["access-control-expose-headers"].lower()
    # Errors carry the CORS headers too (a browser could not read them otherwise).
    r = await api.client.get("/v1/ideas", headers={"Origin": "https://portal.example"})
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == "https://portal.example"
    r = await api.client.get("/v1/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


async def test_every_error_is_a_problem(api: RunningApi) -> None:
    def boom() -> None:
        raise RuntimeError("kaboom with secret detail")

    def conflict() -> None:
        raise Problem(409, "Conflict", "already there", kind="already-there")

    api.app.add_api_route("/test/boom", boom)
    api.app.add_api_route("/test/conflict", conflict)
    admin = api.auth(ADMIN)
    cases = [
        ("GET", "/v1/unknown", {}, 404),
        ("DELETE", "/v1/health", {}, 405),
        ("GET", "/v1/analytics?from=2026-13-01", admin, 422),
        ("GET", "/v1/ideas?limit=0", admin, 422),
        ("GET", "/v1/ideas?cursor=%%%", admin, 422),
        ("GET", "/test/boom", {}, 500),
        ("GET", "/test/conflict", {}, 409),
        ("GET", "/v1/api-keys/k_0123456789abcdef", admin, 404),
    ]
    for method, path, headers, status in cases:
        r = await api.client.request(method, path, headers=headers)
        assert r.status_code == status, (path, r.text)
        assert r.headers["content-type"] == PROBLEM, path
        body = r.json()
        assert body["status"] == status and body["title"] and body["type"].startswith("https://")
        assert body["instance"] == path.split("?")[0]
    r = await api.client.delete("/v1/health")
    assert "GET" in r.headers["allow"]
    r = await api.client.get("/test/boom")
    assert "kaboom" not in r.text


async def test_no_personal_data_in_logs(
    servers: tuple[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    text, handle, name = "Zorglub confidential 4217 text", "handle-zz-9931", "Zelda Quuxley"
    settings = api_settings(*servers, log_level="DEBUG", analytics_projection=False)
    async with in_process(settings) as api:
        records: list[logging.LogRecord] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append(record)

        keep = Keep(logging.DEBUG)
        logging.getLogger().addHandler(keep)
        client_side = [logging.getLogger(n) for n in ("httpx", "httpcore")]
        for logger in client_side:  # the test's HTTP client logs its URLs: not the API's logs
            logger.setLevel(logging.WARNING)
        try:
            admin = api.auth(ADMIN)
            events = [
                {"type": "ambassador", "ambassador_id": "a-zz", "display_name": name,
                 "team": "Ventes", "handles": {"linkedin": handle}, "consent": True},
                {"type": "post", "event_id": "e-zz", "network": "linkedin", "post_id": "p-zz",
                 "author": handle, "text": text, "kind": "original",
                 "occurred_at": "2026-11-20T09:00:00Z"},
                {"type": "post", "event_id": "e-bad", "network": "nowhere", "post_id": "p",
                 "author": handle, "text": text, "kind": "original", "occurred_at": "nope"},
            ]  # fmt: skip
            r = await api.client.post("/v1/events", json=events, headers=admin)
            assert r.status_code == 202, r.text
            await api.client.post("/v1/events", json=events[2:], headers=admin)  # 422
            await api.client.get(f"/v1/ambassadors?team={handle}", headers=admin)
            await api.client.get(f"/v1/posts/linkedin:{handle}", headers=admin)
            await api.client.get("/v1/ideas", headers={"Authorization": f"Bearer {handle}"})
            await asyncio.sleep(0.05)
        finally:
            logging.getLogger().removeHandler(keep)
            for logger in client_side:
                logger.setLevel(logging.NOTSET)
    logged = (
        "\n".join(f"{r.getMessage()} {getattr(r, 'pv', '')} {r.exc_text or ''}" for r in records)
        + capfd.readouterr().err
    )
    assert "request" in logged  # the access log did log these requests…
    for secret in (text, handle, name, "Zorglub"):
        assert secret not in logged  # …without a trace of what they carried

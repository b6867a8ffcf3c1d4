"""Bearer-token authentication, roles and per-token rate limits.

- the admin token (`PORTEVOIX_ADMIN_TOKEN`) → role admin;
- API keys, stored hashed (SHA-256) in Redis at `pv:apikey:<sha256>` → the role and subject
  recorded with them (ambassador, moderator, admin, service); managed at `/v1/api-keys`;
- JWTs validated against a configured JWKS (`PORTEVOIX_JWKS_URL`), role and ambassador id from
  configurable claims (see `jwks.py`).
401 = who are you? (missing, unknown, expired or forged token); 403 = known, but not allowed
here. Every authenticated request counts against its token's rate limit (429 + Retry-After).
Tokens are compared in constant time and never logged; nor are JWT subjects (they may be
e-mail addresses): logs carry the role and a digest.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import Annotated, Literal, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.exceptions import RedisError

from portevoix_api.jwks import JwtVerifier, TokenRejected, TokenWithoutRole, looks_like_jwt
from portevoix_api.problems import Problem
from portevoix_api.rate_limit import RateLimiter

Role = Literal["ambassador", "moderator", "admin", "service"]
ROLES: tuple[Role, ...] = ("ambassador", "moderator", "admin", "service")
APIKEY = "pv:apikey:{digest}"  # hash: role, subject, ambassador_id

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    ambassador_id: str | None = None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def apikey_key(token: str) -> str:
    return APIKEY.format(digest=token_digest(token))


def _unauthorized(detail: str, error: str | None = None) -> Problem:
    challenge = 'Bearer realm="porte-voix"' + (f', error="{error}"' if error else "")
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


def _rate_limited(limiter: RateLimiter, role: str, wait_ms: int) -> Problem:
    seconds = max(1, math.ceil(wait_ms / 1000))
    return Problem(
        429, "Too many requests",
        f"rate limit of {limiter.limit_of(role)} requests per {limiter.period_s} s reached; "
        f"retry in {seconds} s",
        kind="rate-limited", headers={"Retry-After": str(seconds)},
    )  # fmt: skip


def _unavailable(exc: Exception) -> Problem:
    return Problem(
        503, "Service unavailable", f"token store unavailable ({type(exc).__name__}); retry later",
        kind="auth-unavailable", headers={"Retry-After": "2"},
    )  # fmt: skip


async def _resolve(request: Request, token: str) -> Principal:
    state = request.app.state
    limiter: RateLimiter = state.rate_limiter
    admin: str = state.admin_token
    if hmac.compare_digest(token.encode(), admin.encode()):
        principal = Principal("admin", "admin")
        wait = await limiter.hit("admin-token", "admin")
    elif looks_like_jwt(token) and state.jwt_verifier is not None:
        verifier: JwtVerifier = state.jwt_verifier
        try:
            identity = await verifier.verify(token)
        except TokenRejected as exc:
            raise _unauthorized(str(exc), "invalid_token") from exc
        except TokenWithoutRole as exc:
            raise Problem(403, "Forbidden", str(exc)) from exc
        role = cast(Role, identity.role)  # jwks.role_from only yields ROLES
        principal = Principal(identity.subject, role, identity.ambassador_id)
        wait = await limiter.hit(identity.subject, role)
    else:
        found = await limiter.lookup_api_key(apikey_key(token))
        if found.record is None:
            raise _unauthorized("the bearer token is not valid", "invalid_token")
        fields = found.record
        key_role = fields.get("role", "")
        if key_role not in ROLES:
            raise _unauthorized("the bearer token has no valid role", "invalid_token")
        principal = Principal(
            fields.get("subject", "?"),
            key_role,
            fields.get("ambassador_id") or None,
        )
        wait = found.retry_after_ms
    if wait > 0:
        raise _rate_limited(limiter, principal.role, wait)
    return principal


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("a bearer token is required")
    return await authenticate_token(request, credentials.credentials)


async def authenticate_request(request: Request) -> Principal:
    """`authenticate` outside FastAPI's dependency injection (for middlewares)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("a bearer token is required")
    return await authenticate_token(request, token.strip())


async def authenticate_token(request: Request, token: str) -> Principal:
    try:
        principal = await _resolve(request, token)
    except RedisError as exc:
        raise _unavailable(exc) from exc
    # For the access log: the role and a digest, never the token nor a JWT subject.
    request.state.principal = (
        principal.role,
        hashlib.sha256(principal.subject.encode()).hexdigest()[:12],
    )
    return principal


def require(*roles: Role):  # type: ignore[no-untyped-def]
    """Dependency: an authenticated principal whose role is one of `roles`."""

    async def dependency(
        principal: Annotated[Principal, Depends(authenticate)],
    ) -> Principal:
        if principal.role not in roles:
            raise Problem(
                403,
                "Forbidden",
                f"role {principal.role!r} may not do this; needs {' or '.join(roles)}",
            )
        return principal

    return dependency


def ensure_own(principal: Principal, ambassador_id: str) -> None:
    """Ambassadors reach their own data only (403 otherwise); other roles reach everyone's."""
    if principal.role == "ambassador" and principal.ambassador_id != ambassador_id:
        raise Problem(403, "Forbidden", "an ambassador may only reach their own data")


Admin = Annotated[Principal, Depends(require("admin", "service"))]
Moderator = Annotated[Principal, Depends(require("moderator", "admin"))]
Staff = Annotated[Principal, Depends(require("moderator", "admin", "service"))]
Authenticated = Annotated[Principal, Depends(authenticate)]

"""Bearer-token authentication and roles.

- the admin token (`PORTEVOIX_ADMIN_TOKEN`) → role admin;
- API keys, stored hashed (SHA-256) in Redis at `pv:apikey:<sha256>` → the role and subject
  recorded with them (ambassador, moderator, admin, service).
401 = who are you? (missing or unknown token); 403 = known, but not allowed here.
Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from portevoix.runtime.redis import text
from portevoix_api.problems import Problem

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


def _unauthorized(detail: str, error: str | None = None) -> Problem:
    challenge = 'Bearer realm="porte-voix"' + (f', error="{error}"' if error else "")
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("a bearer token is required")
    token = credentials.credentials
    admin: str = request.app.state.admin_token
    if hmac.compare_digest(token.encode(), admin.encode()):
        return Principal("admin", "admin")
    record = await request.app.state.redis.hgetall(APIKEY.format(digest=token_digest(token)))
    if not record:
        raise _unauthorized("the bearer token is not valid", "invalid_token")
    fields = {text(k): text(v) for k, v in record.items()}
    role = fields.get("role", "")
    if role not in ROLES:
        raise _unauthorized("the bearer token has no valid role", "invalid_token")
    return Principal(fields.get("subject", "?"), role, fields.get("ambassador_id") or None)


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


Admin = Annotated[Principal, Depends(require("admin", "service"))]
Moderator = Annotated[Principal, Depends(require("moderator", "admin"))]
Authenticated = Annotated[Principal, Depends(authenticate)]

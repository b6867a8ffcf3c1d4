"""Bearer-token authentication. Tokens are compared in constant time and never logged."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from portevoix_api.problems import Problem

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    expected: str = request.app.state.admin_token
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(
            401, "Unauthorized", "a bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="porte-voix"'},
        )  # fmt: skip
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise Problem(
            401, "Unauthorized", "the bearer token is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="porte-voix", error="invalid_token"'},
        )  # fmt: skip
    return "admin"


Admin = Annotated[str, Depends(require_admin)]

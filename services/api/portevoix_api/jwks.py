"""JWTs from an identity provider, validated against its JWKS (PyJWT).

The key set comes from `PORTEVOIX_JWKS_URL` (https://, http://, file:// or a path) and is cached
for `PORTEVOIX_JWKS_REFRESH_S`; a token signed with an unknown `kid` refreshes it early (at most
once every few seconds, so garbage tokens cannot hammer the provider). Only asymmetric
algorithms are accepted: a JWKS carries public keys, and refusing HS* closes the classic
"public key used as HMAC secret" confusion.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import jwt
import orjson

from portevoix_api.settings import ApiSettings

ROLE_PRECEDENCE = ("admin", "service", "moderator", "ambassador")
MIN_REFRESH_GAP_S = 5.0


class TokenRejected(Exception):
    """The JWT is not valid (signature, expiry, issuer, audience, unknown key)."""


class TokenWithoutRole(Exception):
    """A valid JWT that grants no Porte-Voix role (or an ambassador without an id)."""


@dataclass(frozen=True)
class JwtIdentity:
    subject: str
    role: str
    ambassador_id: str | None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def role_from(value: Any) -> str | None:
    """A role claim as one Porte-Voix role: a string, or the most privileged of a list."""
    candidates = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    for role in ROLE_PRECEDENCE:
        if role in candidates:
            return role
    return None


class JwksKeys:
    def __init__(self, source: str, refresh_s: float) -> None:
        self.source = source
        self.refresh_s = refresh_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _fetch(self) -> dict[str, Any]:
        parsed = urlparse(self.source)
        if parsed.scheme in ("http", "https"):
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(self.source)
                response.raise_for_status()
                data: dict[str, Any] = response.json()
                return data
        path = Path(parsed.path if parsed.scheme == "file" else self.source)
        loaded: dict[str, Any] = orjson.loads(await asyncio.to_thread(path.read_bytes))
        return loaded

    async def refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._loaded_at < MIN_REFRESH_GAP_S:
                return
            data = await self._fetch()
            keys: dict[str, jwt.PyJWK] = {}
            for i, jwk in enumerate(data.get("keys", [])):
                if jwk.get("use", "sig") != "sig":
                    continue
                try:
                    keys[str(jwk.get("kid", f"#{i}"))] = jwt.PyJWK.from_dict(jwk)
                except jwt.PyJWTError:
                    continue  # a key type this build cannot use: skip it, keep the others
            self._keys, self._loaded_at = keys, time.monotonic()

    async def key_for(self, kid: str | None) -> jwt.PyJWK | None:
        stale = time.monotonic() - self._loaded_at > self.refresh_s
        if stale or (kid is not None and kid not in self._keys):
            try:
                await self.refresh()
            except (httpx.HTTPError, OSError, ValueError) as exc:
                if not self._keys:
                    raise TokenRejected(f"JWKS unavailable ({type(exc).__name__})") from exc
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)


class JwtVerifier:
    def __init__(self, settings: ApiSettings) -> None:
        assert settings.jwks_url
        self.settings = settings
        self.keys = JwksKeys(settings.jwks_url, settings.jwks_refresh_s)

    async def verify(self, token: str) -> JwtIdentity:
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected("malformed JWT") from exc
        if header.get("alg") not in s.jwt_algorithms:
            raise TokenRejected(f"JWT algorithm {header.get('alg')!r} is not accepted")
        key = await self.keys.key_for(header.get("kid"))
        if key is None:
            raise TokenRejected("JWT signed by a key the JWKS does not hold")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=s.jwt_algorithms,
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                leeway=s.jwt_leeway_s,
                options={"require": ["exp", "sub"], "verify_aud": s.jwt_audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"JWT refused ({type(exc).__name__})") from exc
        role = role_from(claim(claims, s.jwt_role_claim))
        if role is None:
            raise TokenWithoutRole("the token grants no Porte-Voix role")
        ambassador = claim(claims, s.jwt_ambassador_claim)
        ambassador_id = str(ambassador) if ambassador not in (None, "") else None
        if role == "ambassador" and ambassador_id is None:
            raise TokenWithoutRole(f"an ambassador token needs the {s.jwt_ambassador_claim} claim")
        return JwtIdentity(f"jwt:{claims['sub']}", role, ambassador_id)

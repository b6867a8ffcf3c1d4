from __future__ import annotations

from pydantic import Field

from portevoix.runtime.settings import CommonSettings

DEFAULT_RATE_LIMITS = {"ambassador": 120, "moderator": 600, "admin": 12_000, "service": 60_000}


class ApiSettings(CommonSettings):
    host: str = Field(default="127.0.0.1", description="API bind address.")
    port: int = Field(default=8080, description="API port.")
    admin_token: str | None = Field(
        default=None,
        description="Bearer token of the admin role (PORTEVOIX_ADMIN_TOKEN); generated if unset.",
    )
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024,
        description="Largest accepted request body (bytes), on every route: 413 problem beyond, "
        "answered before the body is read.",
    )
    max_batch_events: int = Field(default=10_000, description="Most events per ingest request.")
    cors_origins: list[str] = Field(
        default_factory=list, description='Allowed CORS origins (JSON list: `["https://a.b"]`).'
    )
    # -- JWT (optional, beside API keys) ----------------------------------------------------------
    jwks_url: str | None = Field(
        default=None,
        description="JWKS of the identity provider: an https:// URL, a file:// URL or a file path. "
        "Unset: JWTs are not accepted (API keys and the admin token still are).",
    )
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of JWTs (if set).")
    jwt_audience: str | None = Field(default=None, description="Required `aud` of JWTs (if set).")
    jwt_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "PS256", "ES256", "EdDSA"],
        description="Accepted JWT algorithms (asymmetric only: the keys come from the JWKS).",
    )
    jwt_role_claim: str = Field(
        default="role",
        description="Claim holding the role (a dotted path such as `realm_access.roles` works; "
        "a list claim yields its most privileged known role).",
    )
    jwt_ambassador_claim: str = Field(
        default="ambassador_id", description="Claim holding the ambassador id (role ambassador)."
    )
    jwt_leeway_s: int = Field(default=30, ge=0, description="Clock skew tolerated on exp/nbf (s).")
    jwks_refresh_s: int = Field(
        default=300, ge=5, description="JWKS cache lifetime (s); an unknown `kid` refreshes early."
    )
    # -- rate limits ------------------------------------------------------------------------------
    rate_limits: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS),
        description="Requests per `rate_limit_period_s` per token, by role (JSON object; 0 = no "
        'limit), e.g. `{"ambassador": 120, "moderator": 600, "admin": 12000, "service": 60000}`.',
    )
    rate_limit_period_s: int = Field(default=60, ge=1, description="Rate-limit window (s).")
    # -- live feed (SSE) --------------------------------------------------------------------------
    feed_max_clients: int = Field(
        default=100, ge=1, description="Concurrent SSE clients per API process (503 beyond)."
    )
    feed_max_seconds: float = Field(
        default=300.0,
        gt=0,
        description="An SSE connection is closed after this long; clients resume with "
        "Last-Event-ID.",
    )
    feed_heartbeat_s: float = Field(
        default=15.0, gt=0, description="SSE comment sent when no event flowed for this long (s)."
    )
    # -- analytics projection ---------------------------------------------------------------------
    analytics_projection: bool = Field(
        default=True, description="Run the analytics/idea-box projection in this API process."
    )
    analytics_retention_days: int = Field(
        default=400, ge=1, description="Analytics day counters are kept this long (days)."
    )
    idea_hashtags: list[str] = Field(
        default_factory=lambda: ["idee", "idees", "idea", "ideas"],
        description="Hashtags (compared without '#', case and accents) that file a post in the "
        "idea box.",
    )
    # -- programme metrics ------------------------------------------------------------------------
    programme_metrics_interval_s: float = Field(
        default=15.0,
        ge=0,
        description="How often this process reads the programme metrics (registered and active "
        "ambassadors, team points, EMV) from Redis for /metrics (s; 0 = not exported).",
    )
    programme_metrics_max_age_s: float = Field(
        default=300.0,
        gt=0,
        description="While Redis cannot be read, /metrics keeps the last programme figures this "
        "long (s), then omits them.",
    )
    # -- caching ----------------------------------------------------------------------------------
    response_cache_ms: int = Field(
        default=250,
        ge=0,
        description="How long a GET answer under `response_cache_prefixes` is shared by every "
        "authenticated caller (ms; 0 = off). Callers are still authenticated and rate-limited.",
    )
    response_cache_prefixes: list[str] = Field(
        default_factory=lambda: ["/v1/leaderboards"],
        description="Path prefixes of GET routes whose answer is the same for every "
        "authenticated caller (micro-cached).",
    )
    etag_prefixes: list[str] = Field(
        default_factory=lambda: ["/v1/leaderboards"],
        description="GET routes under these path prefixes get a weak ETag and answer 304 to a "
        "matching If-None-Match.",
    )

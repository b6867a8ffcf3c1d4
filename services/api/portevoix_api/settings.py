from __future__ import annotations

from pydantic import Field

from portevoix.runtime.settings import CommonSettings


class ApiSettings(CommonSettings):
    host: str = Field(default="127.0.0.1", description="API bind address.")
    port: int = Field(default=8080, description="API port.")
    admin_token: str | None = Field(
        default=None,
        description="Bearer token of the admin role (PORTEVOIX_ADMIN_TOKEN); generated if unset.",
    )
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, description="Largest accepted request body (bytes)."
    )
    max_batch_events: int = Field(default=10_000, description="Most events per ingest request.")
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins.")

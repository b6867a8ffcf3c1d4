from __future__ import annotations

import json
import os

from pydantic import Field, field_validator, model_validator

from portevoix.runtime.settings import CommonSettings

WEBHOOK_NETWORKS = ("linkedin", "x", "mastodon", "generic")


class IngestSettings(CommonSettings):
    allowed_languages: tuple[str, ...] = Field(
        default=("fr", "en"), description="Languages the detector may answer (ingest)."
    )
    max_future_skew_s: int = Field(
        default=300, description="Events dated further in the future are rejected (ingest)."
    )
    max_event_age_days: int = Field(
        default=400, description="Events older than this are rejected (ingest)."
    )
    natural_key_ttl_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="How long a natural key (post, like, share) remembers its first event id; "
        "a second event id for the same fact within this time is dropped (ingest).",
    )
    parked_ttl_s: int = Field(
        default=30 * 24 * 3600,
        ge=60,
        description="Activity of an unknown handle is kept this long after its last parked "
        "event, then expires (ingest).",
    )
    parked_max_per_handle: int = Field(
        default=1000,
        ge=1,
        description="Most events parked per unknown handle; more are dead-lettered (ingest).",
    )
    parked_poll_s: float = Field(
        default=15.0, gt=0, description="How often the parked-items gauges are refreshed (ingest)."
    )
    erased_tombstone_ttl_s: int = Field(
        default=8 * 24 * 3600,
        ge=60,
        description="After an erasure, activity of the erased handles still in flight in the "
        "raw stream (kept 7 days) is dropped instead of parked, for this long (ingest).",
    )
    webhook_secrets: dict[str, str] = Field(
        default_factory=dict,
        description='Per-network webhook secrets as JSON, e.g. {"linkedin": "…", "x": "…"}; '
        "PORTEVOIX_WEBHOOK_SECRET_<NETWORK> overrides one network. Several secrets for one "
        "network (rotation) are separated by ',' (ingest).",
    )
    webhook_window_s: int = Field(
        default=300, ge=1, description="Replay window of signed webhooks, seconds (ingest)."
    )

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _secrets_json(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @model_validator(mode="after")
    def _per_network_vars(self) -> IngestSettings:
        # One variable per network is easier to feed from a secret store than a JSON blob.
        for network in WEBHOOK_NETWORKS:
            value = os.environ.get(f"PORTEVOIX_WEBHOOK_SECRET_{network.upper()}")
            if value:
                self.webhook_secrets[network] = value
        return self

    def secrets_for(self, network: str) -> list[bytes]:
        """The secrets a webhook from `network` may be signed with (none: webhooks refused)."""
        raw = self.webhook_secrets.get(network, "")
        return [s.strip().encode() for s in raw.split(",") if s.strip()]

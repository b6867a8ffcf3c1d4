"""Settings shared by every service. Each service extends `CommonSettings` with its own fields.

Environment variables: `NATS_URL`, `REDIS_URL` (also `PORTEVOIX_NATS_URL` / `PORTEVOIX_REDIS_URL`)
and `PORTEVOIX_*` for the rest.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PORTEVOIX_", extra="ignore")

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        validation_alias=AliasChoices("NATS_URL", "PORTEVOIX_NATS_URL"),
        description="NATS server(s), comma-separated for a cluster.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "PORTEVOIX_REDIS_URL"),
        description="Redis/Valkey URL holding the read models.",
    )
    redis_cluster: bool = Field(
        default=False,
        description="REDIS_URL points at a Redis Cluster (hash-tagged keys). Tested for scoring "
        "and the API; not yet supported by ingest and moderation (docs/ops.md).",
    )
    redis_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Redis command timeout: its write, and the wait for its reply.",
    )
    log_level: str = Field(default="INFO", description="Python log level.")
    metrics_port: int = Field(
        default=0, description="Port of this service's Prometheus endpoint (0 = a free port)."
    )
    metrics_host: str = Field(default="127.0.0.1", description="Bind address of /metrics.")
    timezone: str = Field(
        default="Europe/Paris", description="Organisation time zone for periods and daily caps."
    )
    # Consumer tuning: shared so every service behaves the same on the bus.
    batch_size: int = Field(default=500, ge=1, le=10_000, description="Messages per pull.")
    idle_poll_s: float = Field(
        default=1.0,
        gt=0,
        description="Long-poll of an idle consumer; a pull returns as soon as messages exist.",
    )
    max_deliver: int = Field(
        default=5, ge=2, le=100, description="Attempts before a message is dead-lettered."
    )
    ack_wait_s: float = Field(default=30.0, gt=0, description="Redelivery after silence (s).")
    retry_base_delay_s: float = Field(
        default=0.5, gt=0, description="First redelivery delay; doubles each attempt."
    )
    stream_replicas: int = Field(
        default=1, ge=1, le=5, description="JetStream stream replicas (3 on a 3-node cluster)."
    )
    publish_timeout_s: float = Field(default=5.0, gt=0, description="JetStream PubAck timeout.")
    # Crypto-shredding of personal fields (portevoix.contracts.sealed).
    vault_master_key: SecretStr | None = Field(
        default=None,
        description="Base64 of 32 bytes wrapping the per-ambassador data keys in Redis "
        "(unset: keys stored unwrapped; erasure still shreds them).",
    )
    vault_cache_s: float = Field(
        default=60.0,
        ge=0,
        description="How long a process keeps a data key in memory (an erased person's fields "
        "stop opening everywhere within this time).",
    )

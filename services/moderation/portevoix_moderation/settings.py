from __future__ import annotations

from pydantic import Field

from portevoix.runtime.settings import CommonSettings
from portevoix_moderation.webhooks import Subscriber


class ModerationSettings(CommonSettings):
    charter: str | None = Field(
        default=None,
        description="Path of the boot charter YAML (moderation; default: shipped). A charter "
        "activated through the API/bus replaces it and survives restarts.",
    )
    moderation_webhooks: list[Subscriber] = Field(
        default_factory=list,
        description='Outgoing signed webhooks, JSON list of {"url", "secret", "events"}; events '
        "among post.held (default), post.reviewed, appeal.filed, or *.",
    )
    webhook_queue_size: int = Field(
        default=1000, ge=1, description="Webhook deliveries waiting at most (then dropped)."
    )
    webhook_attempts: int = Field(default=5, ge=1, le=20, description="Attempts per webhook.")
    webhook_retry_base_s: float = Field(
        default=0.5, gt=0, description="First webhook retry delay; doubles each attempt."
    )
    shared_history: bool = Field(
        default=True,
        description="Share the near-duplicate/burst history between moderation instances "
        "through Redis (off: each instance remembers only its own posts).",
    )
    history_max_posts: int = Field(
        default=20_000, ge=100, description="Recent posts the duplicate/burst checks remember."
    )

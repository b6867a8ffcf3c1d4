from __future__ import annotations

from pydantic import Field

from portevoix.runtime.settings import CommonSettings


class ModerationSettings(CommonSettings):
    charter: str | None = Field(
        default=None, description="Path of the charter YAML (moderation; default: shipped)."
    )

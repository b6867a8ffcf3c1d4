from __future__ import annotations

from pydantic import Field

from portevoix.runtime.settings import CommonSettings


class ScoringSettings(CommonSettings):
    points_table: str | None = Field(
        default=None, description="Path of the points table YAML (scoring; default: shipped)."
    )

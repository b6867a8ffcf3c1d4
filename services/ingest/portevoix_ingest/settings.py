from __future__ import annotations

from pydantic import Field

from portevoix.runtime.settings import CommonSettings


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

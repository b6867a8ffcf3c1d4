"""The points table: data, versioned, validated."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ACTIONS = ("original_post", "relay", "comment", "share", "like", "click")


class PointsTableError(ValueError):
    pass


class PointsTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    actions: dict[str, int]

    def points(self, action: str) -> int:
        return self.actions.get(action, 0)

    def model_post_init(self, _ctx: object) -> None:
        unknown = set(self.actions) - set(ACTIONS)
        if unknown:
            raise PointsTableError(f"unknown action(s) {sorted(unknown)}; known: {list(ACTIONS)}")
        negative = {k: v for k, v in self.actions.items() if v < 0}
        if negative:
            raise PointsTableError(f"points must be >= 0, got {negative}")


def load_table(source: str | Path) -> PointsTable:
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) else source
    if isinstance(source, str) and "\n" not in source and Path(source).exists():
        text = Path(source).read_text(encoding="utf-8")
    try:
        return PointsTable.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as exc:
        raise PointsTableError(f"invalid points table: {exc}") from exc


def default_table() -> PointsTable:
    text = resources.files("portevoix_scoring").joinpath("data/points.yaml").read_text("utf-8")
    return load_table(text)

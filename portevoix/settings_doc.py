"""The configuration table of the README, generated from the services' settings classes.

`python -m portevoix.settings_doc` prints it; a test checks the README lists every variable.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from portevoix.readme_blocks import main, replace_block

SETTINGS_CLASSES = (
    ("all services", "portevoix.runtime.settings", "CommonSettings"),
    ("ingest", "portevoix_ingest.settings", "IngestSettings"),
    ("moderation", "portevoix_moderation.settings", "ModerationSettings"),
    ("scoring", "portevoix_scoring.settings", "ScoringSettings"),
    ("api", "portevoix_api.settings", "ApiSettings"),
)


def env_names(name: str, field: FieldInfo, prefix: str) -> list[str]:
    alias = field.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return [str(c) for c in choices]
    return [f"{prefix}{name}".upper()]


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is None:
        return "—"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value) or "(empty)"
    return str(value)


def rows() -> list[tuple[str, str, str, str]]:
    seen: set[str] = set()
    out = []
    for scope, module, cls_name in SETTINGS_CLASSES:
        cls: type[BaseSettings] = getattr(importlib.import_module(module), cls_name)
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, field in cls.model_fields.items():
            names = env_names(name, field, prefix)
            if names[0] in seen:
                continue
            seen.add(names[0])
            out.append((" / ".join(f"`{n}`" for n in names), _default(field), scope,
                        field.description or ""))  # fmt: skip
    return out


def table() -> str:
    lines = ["| variable | default | used by | meaning |", "|---|---|---|---|"]
    lines += [f"| {a} | `{b}` | {c} | {d} |" for a, b, c, d in rows()]
    return "\n".join(lines)


START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"


def write_into(readme: str) -> str:
    """The README text with its configuration block replaced by the current table."""
    return replace_block(readme, START, END, table())


if __name__ == "__main__":
    main(write_into, table)

"""The one exception a broken charter raises."""

from __future__ import annotations


class CharterError(ValueError):
    """A charter cannot be used; the message names the file, rule id and field at fault."""

    def __init__(self, message: str, *, source: str | None = None, rule: str | None = None):
        self.source = source
        self.rule = rule
        prefix = f"{source}: " if source else ""
        where = f"rule '{rule}': " if rule else ""
        super().__init__(f"{prefix}{where}{message}")

"""Moderation's commands in the `portevoix` CLI."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from portevoix_moderation.charter_cli import charter_app

    app.add_typer(charter_app, name="charter", help="Test a charter; check posts against it.")

"""Generated documentation stays true: the README's configuration table and the AsyncAPI files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portevoix.settings_doc import rows, write_into
from portevoix_api import routes_doc

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_configuration_table_is_current() -> None:
    assert write_into(README) == README, "run `make docs` to refresh the README's table"


def test_readme_route_table_is_current() -> None:
    assert routes_doc.write_into(README) == README, "run `make docs` to refresh the routes"


def test_every_setting_is_documented_with_a_description() -> None:
    for names, _default, scope, meaning in rows():
        assert meaning, f"{names} ({scope}) has no description"
        assert names.split(" / ")[0] in README


@pytest.mark.parametrize("service", ["ingest", "moderation", "scoring"])
def test_asyncapi_documents_are_current(service: str, tmp_path: Path) -> None:
    out = tmp_path / f"{service}.json"
    subprocess.run(
        [str(Path(sys.executable).parent / "faststream"), "docs", "gen",
         f"portevoix_{service}.app:app", "--out", str(out)],
        check=True, capture_output=True, cwd=ROOT,
        env={**os.environ, "NATS_URL": "nats://nats:4222"},
    )  # fmt: skip
    committed = json.loads((ROOT / "docs" / "asyncapi" / f"{service}.json").read_text())
    assert json.loads(out.read_text()) == committed, "run `make asyncapi`"
    # The published domain events are documented with their payload schemas.
    assert committed["components"]["schemas"], "no payload schema documented"

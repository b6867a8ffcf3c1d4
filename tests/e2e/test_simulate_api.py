"""`portevoix simulate --api`: a simulated organisation sent over HTTP ends with the leaderboard
`portevoix score` computes offline from the same seed's JSONL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
import typer
from typer.testing import CliRunner

from portevoix.runtime.platform import Platform
from portevoix.simulation.cli import default_start, register
from tests.e2e.helpers import eventually

pytestmark = pytest.mark.e2e


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app


def test_simulated_organisation_over_http_scores_like_offline(
    platform: Platform, api: httpx.Client, tmp_path: Path
) -> None:
    start = default_start(3).isoformat()
    args = ["simulate", "--seed", "21", "--events", "2000", "--ambassadors", "50", "--days", "3",
            "--start", start, "--quiet"]  # fmt: skip
    r = CliRunner().invoke(
        cli(), [*args, "--api", platform.api_url, "--token", str(platform.admin_token),
                "--rate", "2000", "--batch", "300"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    sent = orjson.loads(r.stdout.strip().splitlines()[-1])["sent"]
    assert sent["accepted"] == 2000 and sent["rejected"] == 0
    jsonl = tmp_path / "same.jsonl"
    assert CliRunner().invoke(cli(), [*args, "-o", str(jsonl)]).exit_code == 0
    portevoix = str(Path(sys.executable).with_name("portevoix"))
    done = subprocess.run([portevoix, "score", "--jsonl", str(jsonl)], capture_output=True,
                          check=True, timeout=120)  # fmt: skip
    report = orjson.loads(done.stdout)
    expected = {a: p for a, p in report["totals"].items() if p != 0}
    assert len(expected) > 10 and report["verdicts"].get("block", 0) > 0

    def board() -> dict[str, float]:
        got = api.get("/v1/leaderboards/all-time", params={"limit": 200}).json()["items"]
        return {i["ambassador_id"]: i["points"] for i in got}

    eventually(lambda: board() == expected or None, timeout_s=60, every_s=0.5)

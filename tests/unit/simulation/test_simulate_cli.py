"""`portevoix simulate` as a command: JSONL output, options, and the pacing of live drivers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from portevoix.simulation import Simulation, SimulationConfig
from portevoix.simulation.cli import default_start, register
from portevoix.simulation.drivers import Sent, drive, msg_id


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # a group, so the command is invoked by its name as in `portevoix`
        pass

    return app


def test_writes_the_seeded_stream_as_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    args = ["simulate", "--seed", "5", "--events", "900", "--ambassadors", "30", "--quiet",
            "--start", "2026-11-01T00:00:00Z", "--days", "3", "-o", str(out)]  # fmt: skip
    r = CliRunner().invoke(cli(), args)
    assert r.exit_code == 0, r.output
    lines = out.read_bytes().splitlines()
    config = SimulationConfig(
        seed=5, events=900, ambassadors=30, days=3, start=datetime(2026, 11, 1, tzinfo=UTC)
    )
    assert lines == [orjson.dumps(e.payload) for e in Simulation(config).events()]
    summary = orjson.loads(r.output.strip().splitlines()[-1])
    assert summary["events"] == 900 and summary["ambassadors"] == 30 and summary["posts"] > 0


def test_duration_sets_the_event_count_and_needs_a_rate(tmp_path: Path) -> None:
    out = tmp_path / "e.jsonl"
    r = CliRunner().invoke(cli(), ["simulate", "--duration", "10", "-q", "-o", str(out)])
    assert r.exit_code != 0 and "--rate" in r.output
    r = CliRunner().invoke(
        cli(), ["simulate", "--rate", "25", "--duration", "10", "--ambassadors", "20", "-q",
                "-o", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert len(out.read_bytes().splitlines()) == 250


def test_one_destination_and_api_needs_a_token() -> None:
    r = CliRunner().invoke(cli(), ["simulate", "-o", "-", "--nats", "nats://x:1"])
    assert r.exit_code != 0 and "one of" in r.output
    r = CliRunner().invoke(
        cli(), ["simulate", "--api", "http://x"], env={"PORTEVOIX_ADMIN_TOKEN": ""}
    )
    assert r.exit_code != 0 and "--token" in r.output


def test_default_start_is_recent_midnight_in_the_past() -> None:
    now = datetime(2026, 11, 21, 15, 30, tzinfo=UTC)
    assert default_start(14, now) == datetime(2026, 11, 7, tzinfo=UTC)


def test_message_ids_are_event_ids_or_the_registration_content_key() -> None:
    assert msg_id({"type": "like", "event_id": "e-1"}) == "e-1"
    reg = {"type": "ambassador", "ambassador_id": "a", "display_name": "A", "team": "T",
           "handles": {"linkedin": "a"}, "consent": True}  # fmt: skip
    assert msg_id(reg) == msg_id(dict(reg)) and msg_id(reg).startswith("amb:")


def test_drive_paces_batches_at_the_rate_and_counts_outcomes() -> None:
    now = [0.0]
    departures: list[tuple[float, int]] = []

    async def sleep(s: float) -> None:
        now[0] += s

    async def send(batch: list[dict[str, Any]]) -> Sent:
        departures.append((now[0], len(batch)))
        return Sent(accepted=len(batch) - 1, duplicates=1)

    events = [{"type": "click", "event_id": str(i)} for i in range(1000)]
    report = asyncio.run(
        drive(events, send, rate=200, batch_size=100, progress=lambda n: None,
              clock=lambda: now[0], sleep=sleep)
    )  # fmt: skip
    # At 200/s batches shrink to 20 events (ten a second); batch k leaves when its events are due.
    assert [n for _, n in departures] == [20] * 50
    assert [t for t, _ in departures] == pytest.approx([k * 0.1 for k in range(50)])
    assert report.events == 1000 and report.accepted == 950 and report.duplicates == 50
    assert report.batches == 50

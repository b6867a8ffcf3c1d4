"""`portevoix simulate --nats`: every event lands on pv.raw.v1 once, with its event id as
`Nats-Msg-Id`, so re-running the same seed is all duplicates; and the JSONL is what
`portevoix import` accepts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import nats
import orjson
import pytest
import typer
from typer.testing import CliRunner

from portevoix.runtime.streams import RAW, ensure_streams
from portevoix.simulation.cli import register
from tests.infra import Server

pytestmark = pytest.mark.integration
ARGS = ["simulate", "--seed", "8", "--events", "1200", "--ambassadors", "40", "--quiet",
        "--start", "2026-11-10T00:00:00Z", "--days", "2"]  # fmt: skip


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app


async def _raw(url: str) -> tuple[int, set[str]]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    n = (await js.stream_info(RAW.name)).state.messages
    ids = set()
    for seq in range(1, n + 1):
        msg = await js.get_msg(RAW.name, seq)
        assert msg.headers is not None
        ids.add(msg.headers["Nats-Msg-Id"])
    await nc.close()
    return n, ids


async def _streams(url: str) -> None:
    nc = await nats.connect(url)
    await ensure_streams(nc.jetstream())
    await nc.close()


def test_nats_driver_publishes_each_event_once(nats_server: Server, tmp_path: Path) -> None:
    asyncio.run(_streams(nats_server.url))
    r = CliRunner().invoke(cli(), [*ARGS, "--nats", nats_server.url, "--batch", "250"])
    assert r.exit_code == 0, r.output
    sent = orjson.loads(r.stdout.strip().splitlines()[-1])["sent"]
    assert sent["accepted"] == 1200 and sent["duplicates"] == 0
    n, ids = asyncio.run(_raw(nats_server.url))
    out = tmp_path / "same.jsonl"
    assert CliRunner().invoke(cli(), [*ARGS, "-o", str(out)]).exit_code == 0
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert n == 1200
    assert {e["event_id"] for e in events if "event_id" in e} <= ids
    # The same seed again: the server's duplicate window drops every message.
    r = CliRunner().invoke(cli(), [*ARGS, "--nats", nats_server.url])
    assert orjson.loads(r.stdout.strip().splitlines()[-1])["sent"]["duplicates"] == 1200
    assert asyncio.run(_raw(nats_server.url))[0] == 1200


def test_jsonl_is_valid_input_for_portevoix_import(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    assert CliRunner().invoke(cli(), [*ARGS, "-o", str(out)]).exit_code == 0
    portevoix = str(Path(sys.executable).with_name("portevoix"))
    done = subprocess.run([portevoix, "import", str(out), "--dry-run", "--json"],
                          capture_output=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    report = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert report["accepted"] == 1200 and report["rejected"] == 0

"""`portevoix import` on a real nats-server: resumable, idempotent, counts per outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import orjson
import pytest
from typer.testing import CliRunner

from portevoix.cli import app as cli
from portevoix.runtime.streams import RAW
from portevoix_ingest.bulk_import import CheckpointMismatch, default_checkpoint, run_import
from tests.infra import Server

pytestmark = pytest.mark.integration


def write_events(path: Path, n: int, bad_every: int = 0) -> int:
    """n lines of likes; every `bad_every`-th line is invalid. Returns the number of bad lines."""
    lines, bad = [], 0
    for i in range(1, n + 1):
        if bad_every and i % bad_every == 0:
            lines.append(b'{"type": "like", "event_id": "broken-%d"}' % i)
            bad += 1
        else:
            lines.append(orjson.dumps({
                "type": "like", "event_id": f"imp-{i}", "network": "x", "post_id": "p1",
                "actor": f"fan{i}", "occurred_at": "2026-11-20T10:00:00Z",
            }))  # fmt: skip
    path.write_bytes(b"\n".join(lines) + b"\n")
    return bad


async def stream_count(url: str) -> int:
    nc = await nats.connect(url)
    try:
        return int((await nc.jetstream().stream_info(RAW.name)).state.messages)
    finally:
        await nc.close()


def test_interrupted_import_resumes_and_a_rerun_is_all_duplicates(
    nats_server: Server, tmp_path: Path
) -> None:
    src = tmp_path / "events.jsonl"
    bad = write_events(src, 5000, bad_every=500)
    # First run stops after the batch reaching line 2000 (as a crash would, after a checkpoint).
    first = asyncio.run(run_import(src, nats_server.url, batch_size=1000, stop_after_lines=2000))
    assert not first.done and first.line >= 2000
    checkpoint = default_checkpoint(src)
    assert orjson.loads(checkpoint.read_bytes())["line"] == first.line
    second = asyncio.run(run_import(src, nats_server.url, batch_size=1000))
    assert second.done and second.resumed_from == first.line
    assert (second.accepted, second.duplicates, second.rejected) == (5000 - bad, 0, bad)
    assert asyncio.run(stream_count(nats_server.url)) == 5000 - bad
    rejects = [orjson.loads(x) for x in (tmp_path / "events.jsonl.rejects.jsonl").read_bytes()
               .splitlines()]  # fmt: skip
    assert [r["line"] for r in rejects] == list(range(500, 5001, 500))
    assert {e["field"] for r in rejects for e in r["errors"]} >= {"network", "actor"}

    # A finished import is not redone; --restart re-sends, and JetStream reports duplicates.
    again = asyncio.run(run_import(src, nats_server.url))
    assert again.done and again.accepted == 5000 - bad
    redo = asyncio.run(run_import(src, nats_server.url, restart=True, batch_size=700))
    assert (redo.accepted, redo.duplicates) == (0, 5000 - bad)
    assert asyncio.run(stream_count(nats_server.url)) == 5000 - bad

    # The checkpoint belongs to this file: another file with that name is not resumed.
    write_events(src, 10)
    with pytest.raises(CheckpointMismatch):
        asyncio.run(run_import(src, nats_server.url))


def test_cli_imports_csv_with_a_progress_bar_and_json_counts(
    nats_server: Server, tmp_path: Path
) -> None:
    src = tmp_path / "directory.csv"
    src.write_text(
        "type;ambassador_id;display_name;team;handles;consent\n"
        "ambassador;a1;Alice Martin;Ventes;linkedin:alice;oui\n"
        "ambassador;a2;Bob Durand;Tech;linkedin:bob;x:bob_x;non\n"
        "ambassador;a3;Carol;Tech;linkedin:carol;peut-être\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        cli, ["import", str(src), "--nats-url", nats_server.url, "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["accepted"], summary["duplicates"], summary["rejected"]) == (1, 0, 2)
    assert summary["done"] is True
    rejects = (tmp_path / "directory.csv.rejects.jsonl").read_text()
    assert '"rule":"bool_parsing"' in rejects and '"rule":"too_many_cells"' in rejects

"""Scoring's commands in the `portevoix` CLI: `score` (offline totals) and `scores rebuild`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import orjson
import typer
from rich.console import Console

scores_app = typer.Typer(help="Scoring projections: rebuild them from the event log.")
console = Console(stderr=True)


def _table(source: str | None) -> object:
    from portevoix_scoring.domain.table import PointsTableError, default_table, load_table

    try:
        return load_table(Path(source)) if source else default_table()
    except (PointsTableError, OSError) as exc:
        console.print(f"[red]points table error:[/red] {exc}")
        raise typer.Exit(2) from None


def score(
    jsonl: Annotated[
        Path, typer.Option("--jsonl", help="Ingest contract v1 events, one per line ('-': stdin).")
    ],
    table: Annotated[
        str | None, typer.Option("--table", help="Points table YAML (default: shipped).")
    ] = None,
    charter: Annotated[
        str | None, typer.Option("--charter", help="Charter YAML (default charter).")
    ] = None,
    timezone: Annotated[
        str, typer.Option(envvar="PORTEVOIX_TIMEZONE", help="Organisation time zone.")
    ] = "Europe/Paris",
) -> None:
    """Final points per ambassador, offline, with the platform's own scoring code (moderation
    applied with the charter). Prints one JSON object: {"totals": {ambassador_id: points}, ...}."""
    from portevoix_scoring.domain.table import PointsTable
    from portevoix_scoring.offline import OfflineScoring

    points_table = _table(table)
    assert isinstance(points_table, PointsTable)
    offline = OfflineScoring(points_table, ZoneInfo(timezone), charter)
    if str(jsonl) == "-":
        offline.feed(sys.stdin.buffer)
    else:
        with jsonl.open("rb") as f:
            offline.feed(f)
    sys.stdout.write(orjson.dumps(offline.report()).decode() + "\n")


@scores_app.command("rebuild")
def rebuild(
    table: Annotated[
        str | None,
        typer.Option(
            "--table",
            help="Points table: a YAML file, or the version of a published table "
            "(default: the live generation's table).",
        ),
    ] = None,
    batch: Annotated[int, typer.Option(help="Events per atomic batch.")] = 5000,
    keep_old: Annotated[
        bool, typer.Option("--keep-old", help="Keep the previous generation's keys.")
    ] = False,
) -> None:
    """Recompute every scoring projection from the JetStream log (PV_EVENTS) into a fresh
    generation and swap it in atomically while the service keeps serving. Resumable."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from portevoix.contracts.readmodels import SCORING_GENERATION, SCORING_TABLES, gen_table_key
    from portevoix.runtime.gc_tuning import SCORING_YOUNG_THRESHOLD, tune_gc
    from portevoix.runtime.redis import connect_redis, text
    from portevoix_scoring.domain.table import PointsTableError, load_table
    from portevoix_scoring.rebuild import Rebuild
    from portevoix_scoring.settings import ScoringSettings

    tune_gc(SCORING_YOUNG_THRESHOLD)  # the rebuild keeps every state in memory: gc_tuning
    settings = ScoringSettings()
    table_file = Path(table) if table and Path(table).exists() else None

    async def main() -> None:
        redis = connect_redis(settings.redis_url, settings.redis_cluster, settings.redis_timeout_s)
        try:
            if table_file is not None:
                points = load_table(table_file)
            else:
                if table:
                    raw = await redis.hget(SCORING_TABLES, table)
                    if raw is None:
                        console.print(f"[red]no points table file or published version {table!r}")
                        raise typer.Exit(2)
                else:
                    gen = text(await redis.get(SCORING_GENERATION) or b"1")
                    raw = await redis.get(gen_table_key(gen))
                    if raw is None:
                        from portevoix_scoring.domain.table import default_table

                        raw = default_table().dumps().encode()
                points = load_table(text(raw))
            job = Rebuild(redis, settings.nats_url, points, ZoneInfo(settings.timezone),
                          batch=batch, keep_old=keep_old)  # fmt: skip
            with Progress(
                TextColumn("[bold]rebuild[/bold] table {task.fields[table]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
            ) as bar:
                task = bar.add_task("rebuild", total=None, table=points.version, rate="")
                began = asyncio.get_running_loop().time()

                def progress(seq: int, goal: int) -> None:
                    elapsed = max(1e-6, asyncio.get_running_loop().time() - began)
                    bar.update(task, completed=seq, total=goal, rate=f"{seq / elapsed:,.0f} ev/s")

                report = await job.run(progress)
        except PointsTableError as exc:
            console.print(f"[red]points table error:[/red] {exc}")
            raise typer.Exit(2) from None
        finally:
            await redis.aclose()
        console.print(
            f"[green]rebuilt[/green] generation {report.generation} (was {report.old_generation}) "
            f"with table {report.table_version}: {report.events:,} events up to sequence "
            f"{report.last_seq:,} in {report.seconds:.1f} s; live writers paused "
            f"{report.pause_ms:.0f} ms"
        )
        sys.stdout.write(orjson.dumps(report.__dict__).decode() + "\n")

    asyncio.run(main())


def register(app: typer.Typer) -> None:
    app.command("score")(score)
    app.add_typer(scores_app, name="scores", help="Scoring projections: rebuild them.")

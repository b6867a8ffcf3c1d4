"""Ingest's commands in the `portevoix` CLI: `portevoix import FILE.jsonl|.csv`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def import_command(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="A .jsonl/.ndjson or .csv/.tsv file of contract-v1 events (one per line/row).",
        ),
    ],
    nats_url: Annotated[
        str, typer.Option(envvar="NATS_URL", help="NATS server(s), comma-separated.")
    ] = "nats://127.0.0.1:4222",
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Checkpoint file (default: FILE.pv-checkpoint.json beside the input, "
            "or under .run/import/ when that directory is read-only)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=50_000, help="Events per batch.")] = 2000,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore the checkpoint; start at line 1.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate only; publish nothing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final counts as JSON on stdout.")
    ] = False,
) -> None:
    """Import events to JetStream (pv.raw.v1): resumable, idempotent, with a progress bar."""
    from portevoix_ingest.bulk_import import CheckpointMismatch, default_checkpoint, run_import
    from portevoix_ingest.domain.bulk import count_lines

    total = count_lines(file)
    checkpoint = checkpoint or default_checkpoint(file)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("lines"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[counts]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(file.name, total=total, counts="")

        def on_progress(line: int, report: object) -> None:
            from portevoix_ingest.bulk_import import ImportReport

            assert isinstance(report, ImportReport)
            counts = (
                f"[green]{report.accepted:,} accepted[/] · [yellow]{report.duplicates:,} "
                f"duplicate[/] · [red]{report.rejected:,} rejected[/]"
            )
            progress.update(task, completed=line, counts=counts)

        try:
            report = asyncio.run(
                run_import(
                    file, nats_url, checkpoint=checkpoint, batch_size=batch_size,
                    restart=restart, dry_run=dry_run, on_progress=on_progress,
                )
            )  # fmt: skip
        except CheckpointMismatch as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
        except KeyboardInterrupt:
            console.print(f"interrupted; re-run the same command to resume ({checkpoint})")
            raise typer.Exit(130) from None
        except OSError as exc:  # NATS unreachable, file vanished…
            console.print(f"[red]import stopped:[/red] {exc}; re-run to resume ({checkpoint})")
            raise typer.Exit(1) from exc
        progress.update(task, completed=total)
    if report.resumed_from and report.resumed_from < total:
        console.print(f"resumed after line {report.resumed_from:,}")
    console.print(
        f"[bold]{file.name}[/bold]: {report.accepted:,} accepted, {report.duplicates:,} "
        f"duplicate, {report.rejected:,} rejected" + (" (dry run)" if dry_run else "")
    )
    if report.rejected:
        console.print(f"rejected lines and reasons: {file.name}.rejects.jsonl")
    if as_json:
        summary = {"file": str(file), **report.counts(), "done": report.done}
        typer.echo(orjson.dumps(summary).decode())


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)

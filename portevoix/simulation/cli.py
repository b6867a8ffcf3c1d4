"""`portevoix simulate`: a realistic organisation's activity, written as JSONL or sent to a
running stack (HTTP API or JetStream) at a given rate."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

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

from portevoix.simulation.drivers import DriveReport, HttpSender, NatsSender, drive, write_jsonl
from portevoix.simulation.generator import Simulation, SimulationConfig

console = Console(stderr=True)


def default_start(days: float, now: datetime | None = None) -> datetime:
    """Midnight UTC today minus `days`: recent enough for ingest (never in the future), and the
    same all day long, so a seed gives the same file on a given day."""
    now = now or datetime.now(UTC)
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=days)


def _parse_start(value: str | None, days: float) -> datetime:
    if not value:
        return default_start(days)
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 date/time: {value!r}") from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def simulate(
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same events.")] = 1,
    events: Annotated[
        int, typer.Option(min=1, help="Events in total (registrations included).")
    ] = 10_000,
    ambassadors: Annotated[int, typer.Option(min=1, help="Ambassadors in the organisation.")] = 200,
    days: Annotated[float, typer.Option(min=0.01, help="Days of activity simulated.")] = 14.0,
    start: Annotated[
        str | None,
        typer.Option(help="First instant (ISO 8601; default: today 00:00 UTC minus --days)."),
    ] = None,
    problem_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of posts that break the charter.")
    ] = 0.12,
    rings: Annotated[int, typer.Option(min=0, help="Colleague like-rings.")] = 3,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write JSONL here ('-': stdout).")
    ] = None,
    api: Annotated[
        str | None, typer.Option(help="Send to a running stack's API (POST /v1/events).")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="PORTEVOIX_ADMIN_TOKEN", help="API token (admin).")
    ] = None,
    nats_url: Annotated[
        str | None,
        typer.Option("--nats", help="Publish straight to JetStream pv.raw.v1 (comma-separated)."),
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0.0, help="Events per second when sending (0: no limit).")
    ] = 0.0,
    duration: Annotated[
        float | None,
        typer.Option(min=0.0, help="Seconds to send for: sets --events to rate × duration."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Events per batch.")] = 500,
    wait_ready: Annotated[
        float, typer.Option(help="With --api: wait this long for /v1/ready first (s).")
    ] = 0.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Simulate an organisation (teams, ambassadors, FR/EN posts with a share of charter problems,
    campaign relays, power-law and colleague engagement, like-rings), deterministic with --seed.
    Writes ingest-contract-v1 JSONL (valid for `portevoix score --jsonl` and `portevoix import`)
    or drives a running stack over HTTP (--api, --token) or JetStream (--nats) at --rate."""
    targets = [t for t in (out, api, nats_url) if t is not None]
    if len(targets) > 1:
        raise typer.BadParameter("choose one of --out, --api, --nats")
    if api and not token:
        raise typer.BadParameter("--api needs --token (or PORTEVOIX_ADMIN_TOKEN)")
    if duration is not None:
        if rate <= 0:
            raise typer.BadParameter("--duration needs --rate")
        events = max(1, round(rate * duration))
    config = SimulationConfig(
        seed=seed,
        events=events,
        ambassadors=ambassadors,
        start=_parse_start(start, days),
        days=days,
        problem_share=problem_share,
        rings=rings,
    )
    sim = Simulation(config)
    payloads = (e.payload for e in sim.events())
    where = api or nats_url or (str(out) if out and str(out) != "-" else "stdout")
    with Progress(
        TextColumn("[bold]simulate[/bold] → {task.fields[where]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    ) as bar:
        task = bar.add_task("simulate", total=events, where=where, speed="")
        t0 = [time.monotonic()]

        def progress(n: int) -> None:
            if n == 0:  # sending starts (after --wait-ready): the speed counts from here
                t0[0] = time.monotonic()
            speed = n / max(1e-6, time.monotonic() - t0[0])
            bar.update(task, completed=n, speed=f"{speed:,.0f} ev/s")

        report: DriveReport | None = None
        if api is not None:
            assert token is not None
            report = asyncio.run(
                _over_http(payloads, api, token, rate, batch, wait_ready, progress)
            )
        elif nats_url is not None:
            report = asyncio.run(_over_nats(payloads, nats_url, rate, batch, progress))
        elif out is None or str(out) == "-":
            write_jsonl(payloads, sys.stdout.buffer, progress)
            sys.stdout.flush()
        else:
            with out.open("wb") as f:
                write_jsonl(payloads, f, progress)
    summary: dict[str, Any] = {
        "seed": seed,
        "events": sim.stats.ambassadors + sim.stats.posts + sim.stats.engagement,
        "ambassadors": sim.stats.ambassadors,
        "posts": sim.stats.posts,
        "relays": sim.stats.relays,
        "engagement": sim.stats.engagement,
        "colleague_engagement": sim.stats.colleague_engagement,
        "ring_likes": sim.stats.ring_likes,
        "problems": dict(sorted(sim.stats.problems.items())),
        "by_type": dict(sorted(sim.stats.by_type.items())),
        "start": config.start.isoformat(),
    }
    if report is not None:
        summary["sent"] = {
            "accepted": report.accepted,
            "duplicates": report.duplicates,
            "rejected": report.rejected,
            "seconds": round(report.seconds, 2),
            "events_per_s": round(report.rate, 1),
        }
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    else:
        console.print(orjson.dumps(summary).decode(), highlight=False, soft_wrap=True)


async def _over_http(
    payloads: Any, api: str, token: str, rate: float, batch: int, wait_s: float, progress: Any
) -> DriveReport:
    async with HttpSender(api, token) as sender:
        if wait_s > 0:
            await sender.wait_ready(wait_s)
        report = await drive(payloads, sender, rate=rate, batch_size=batch, progress=progress)
        report.retries = sender.retries
        return report


async def _over_nats(
    payloads: Any, servers: str, rate: float, batch: int, progress: Any
) -> DriveReport:
    async with NatsSender(servers) as sender:
        report = await drive(payloads, sender, rate=rate, batch_size=batch, progress=progress)
        report.retries = sender.retries
        return report


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)

"""`portevoix`: run the platform, a service, and the offline tools."""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from portevoix.runtime.embedded import detach_from_terminal, free_port, stop_process
from portevoix.runtime.platform import Platform

app = typer.Typer(help="Porte-Voix: the open employee-advocacy platform.", no_args_is_help=True)
console = Console(stderr=True, width=110)

SERVICE_MODULES = {
    "ingest": "portevoix_ingest",
    "moderation": "portevoix_moderation",
    "scoring": "portevoix_scoring",
    "api": "portevoix_api",
}


@app.command()
def up(
    run_dir: Annotated[Path, typer.Option(help="Data of the embedded servers, and logs.")] = Path(
        ".run"
    ),
    api_port: Annotated[
        int | None,
        typer.Option(
            envvar="PORTEVOIX_API_PORT",
            help="API port; 0 = any free port; default 8080 when free, else any free port.",
        ),
    ] = None,
    demo: Annotated[
        bool, typer.Option(help="Also run the simulator against the platform (live boards).")
    ] = False,
) -> None:
    """Start NATS + Redis (embedded unless NATS_URL / REDIS_URL are set) and the four services."""

    if api_port is None:
        api_port = 8080 if _port_free(8080) else free_port()
    elif api_port == 0:
        api_port = free_port()
    platform = Platform(
        run_dir=run_dir.resolve(),
        nats_url=os.environ.get("NATS_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        admin_token=os.environ.get("PORTEVOIX_ADMIN_TOKEN") or None,
        api_port=api_port,
        log_dir=run_dir.resolve() / "logs",
    )
    stopping = False

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    with console.status("starting NATS, Redis and the four services…"):
        try:
            platform.start()
        except Exception as exc:
            platform.stop()
            console.print(f"[red]start-up failed:[/red] {exc} (logs in {run_dir / 'logs'})")
            raise typer.Exit(1) from exc
    embedded = "embedded" if platform.servers else "external"
    console.print(f"[bold green]Porte-Voix is up[/bold green] ({embedded} NATS + Redis)")
    console.print(f"  API            {platform.api_url}")
    console.print(f"  OpenAPI docs   {platform.api_url}/docs")
    console.print(
        f"  AsyncAPI       {platform.api_url}/asyncapi/ingest.json (…/moderation, …/scoring)"
    )
    for name in SERVICE_MODULES:
        console.print(f"  metrics {name:<11}{platform.metrics_url(name)}")
    console.print(f"  NATS           {platform.nats_url}")
    console.print(f"  Redis          {platform.redis_url}")
    console.print(f"  admin token    {platform.admin_token}")
    console.print(f"  logs           {run_dir / 'logs'}")
    console.print("Ctrl-C stops everything.")
    simulator = _start_demo(platform, run_dir) if demo else None
    try:
        while not stopping:
            for name in platform.supervise_once():
                console.print(f"[yellow]{name} exited; restarted[/yellow]")
            time.sleep(0.5)
    finally:
        console.print("stopping…")
        if simulator is not None:
            stop_process(simulator)
        platform.stop()
        console.print("stopped.")


def _start_demo(platform: Platform, run_dir: Path) -> subprocess.Popen[bytes]:
    """The simulator as one more child: a realistic organisation posting at 50 events/s."""
    log = open(run_dir / "logs" / "simulate.log", "ab")  # noqa: SIM115 - the child owns it
    console.print(
        f"  demo           simulator → {platform.api_url} (log: {run_dir}/logs/simulate.log)"
    )
    return subprocess.Popen(
        [sys.executable, "-m", "portevoix.cli", "simulate", "--api", platform.api_url,
         "--token", str(platform.admin_token), "--wait-ready", "120", "--rate", "50",
         "--duration", "86400"],
        stdout=log, stderr=subprocess.STDOUT, preexec_fn=detach_from_terminal,
    )  # fmt: skip


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@app.command()
def service(name: str = typer.Argument(..., help="ingest | moderation | scoring | api")) -> None:
    """Run one service in the foreground (configuration from the environment)."""
    module = SERVICE_MODULES.get(name)
    if module is None:
        console.print(f"unknown service {name!r}; known: {', '.join(SERVICE_MODULES)}")
        raise typer.Exit(2)
    runpy.run_module(module, run_name="__main__")


def _mount_service_commands() -> None:
    """Each service may ship `cli.py` with `register(app)`: its offline tools join `portevoix`."""
    import importlib

    for module in SERVICE_MODULES.values():
        try:
            cli = importlib.import_module(f"{module}.cli")
        except ModuleNotFoundError as exc:
            if exc.name != f"{module}.cli":
                raise
            continue
        cli.register(app)


def _mount_simulation() -> None:
    from portevoix.simulation.cli import register

    register(app)


_mount_service_commands()
_mount_simulation()


def main() -> None:
    app()


if __name__ == "__main__":
    main()

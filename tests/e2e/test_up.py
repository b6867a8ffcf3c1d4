"""`portevoix up` (what `make run` runs): prints what a newcomer needs, stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.infra import start_nats, start_redis

pytestmark = pytest.mark.e2e
PORTEVOIX = str(Path(sys.executable).parent / "portevoix")


def _wait_for(proc: subprocess.Popen[str], log: Path, needle: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = log.read_text()
        if needle in out:
            return out
        assert proc.poll() is None, f"portevoix up exited early:\n{out}"
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} not printed in {timeout_s}s:\n{log.read_text()}")


def _children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("servers", ["embedded", "external"])
def test_up_prints_everything_and_ctrl_c_stops_every_child(servers: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "REDIS_URL")}
    env["PORTEVOIX_ADMIN_TOKEN"] = "tok-123"
    external = []
    if servers == "external":
        external = [start_nats(tmp_path / "n"), start_redis(tmp_path / "v")]
        env["NATS_URL"], env["REDIS_URL"] = external[0].url, external[1].url
    log = tmp_path / "up.log"
    with open(log, "w") as out:
        # A session of its own, like a terminal: Ctrl-C is SIGINT to the whole process group.
        proc = subprocess.Popen(
            [PORTEVOIX, "up", "--run-dir", str(tmp_path / "run"), "--api-port", "0"],
            stdout=out, stderr=subprocess.STDOUT, env=env, text=True, start_new_session=True,
        )  # fmt: skip
    try:
        text = _wait_for(proc, log, "Ctrl-C stops everything", 120)
        api = re.search(r"API\s+(http://\S+)", text)
        assert api, text
        for needle in ("OpenAPI docs", "/docs", "metrics ingest", "metrics moderation",
                       "metrics scoring", "metrics api", "admin token    tok-123"):  # fmt: skip
            assert needle in text, needle
        assert ("embedded NATS + Redis" in text) == (servers == "embedded")
        if servers == "external":
            assert external[0].url in text and external[1].url in text
        assert httpx.get(f"{api.group(1)}/v1/ready").status_code == 200
        metrics = re.findall(r"metrics \w+\s+(http://\S+)", text)
        assert len(metrics) == 4
        for url in metrics:
            assert "pv_service_info" in httpx.get(url).text
        children = _children_of(proc.pid)
        assert len(children) == (6 if servers == "embedded" else 4), children
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        assert proc.wait(60) == 0
        deadline = time.monotonic() + 10
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [c for c in children if _alive(c)], "children left running"
        assert "stopped." in log.read_text()
        logs = "".join(p.read_text() for p in (tmp_path / "run" / "logs").glob("*.log"))
        assert "Traceback" not in logs, logs[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for server in external:
            server.stop()

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def eventually(check: Callable[[], Any], timeout_s: float = 30, every_s: float = 0.1) -> Any:
    """Poll until `check` returns a truthy value; fail with the last value seen."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"condition not met after {timeout_s}s; last value: {last!r}")


def board(api: httpx.Client, period: str = "all-time") -> dict[str, int]:
    r = api.get(f"/v1/leaderboards/{period}", params={"limit": 500})
    assert r.status_code == 200, r.text
    return {i["ambassador_id"]: i["points"] for i in r.json()["items"]}


def settle(api: httpx.Client, expected: dict[str, int], timeout_s: float = 30) -> None:
    """Wait for the board to equal `expected`, then check it stays so (no late double count)."""
    eventually(lambda: board(api) == expected or None, timeout_s)
    time.sleep(1.0)
    assert board(api) == expected


def amb(aid: str, name: str, team: str, handles: dict[str, str], consent: bool = True) -> dict:
    return {"type": "ambassador", "ambassador_id": aid, "display_name": name, "team": team,
            "handles": handles, "consent": consent}  # fmt: skip


def post(eid: str, pid: str, author: str, text: str, kind: str = "original",
         network: str = "linkedin", at: str = "2026-11-20T09:00:00Z") -> dict:  # fmt: skip
    return {"type": "post", "event_id": eid, "network": network, "post_id": pid,
            "author": author, "text": text, "kind": kind, "occurred_at": at}  # fmt: skip


def act(kind: str, eid: str, pid: str, actor: str, network: str = "linkedin",
        at: str = "2026-11-20T10:00:00Z", text: str | None = None) -> dict:  # fmt: skip
    e = {"type": kind, "event_id": eid, "network": network, "post_id": pid, "actor": actor,
         "occurred_at": at}  # fmt: skip
    if text is not None:
        e["text"] = text
    return e

"""Stopping the API's background tasks (analytics projection, programme metrics) without ever
hanging its shutdown."""

from __future__ import annotations

import asyncio


async def stop_task(
    task: asyncio.Task[None] | None,
    stopping: asyncio.Event,
    *,
    grace_s: float,
    cancel_s: float = 2.0,
) -> None:
    """A flag, then bounded waits: cancelling a task blocked in nats-py's fetch() does not always
    complete (its inner get is not cancelled), and a cancel that lands while a read's own
    timeout fires can be absorbed — either hung the API's shutdown."""
    stopping.set()
    if task is None:
        return
    await asyncio.wait({task}, timeout=grace_s)
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=cancel_s)

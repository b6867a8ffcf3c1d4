"""Narrow fixes for known incompatibilities between pinned libraries.

FastStream 0.7.8's pull loop catches `nats.errors.TimeoutError`, but nats-py 2.16's `fetch()`
raises the plain `asyncio.TimeoutError` when a pull expires empty (`_fetch_n`). The loop task
then dies on every idle pull, FastStream's supervisor restarts it with an ERROR trace, and
consumption stalls behind orphaned pull requests. Catching the builtin (the base class of both)
restores the intended "empty pull → pull again" behaviour.
"""

from __future__ import annotations

import builtins


def patch_faststream_pull_timeout() -> None:
    from faststream.nats.subscriber.usecases import stream_pull_subscriber

    # Rebinding the module global the loop's `except TimeoutError:` reads.
    setattr(stream_pull_subscriber, "TimeoutError", builtins.TimeoutError)  # noqa: B010

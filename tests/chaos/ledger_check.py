"""What "the platform converged to the right answer" means, shared by the chaos tests: the
expected boards and ledgers (the platform's own cores composed offline, like `portevoix score`),
the same read models from Redis, and the canonical forms they are compared in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from redis import Redis

from portevoix.contracts.readmodels import SCORING_GENERATION, board_key, ledger_key
from portevoix.runtime.redis import text

# Ledger entries in their final state per event: `hold` is transitional (online, engagement can
# arrive before the moderation verdict and is held then released; offline the verdict is
# immediate), so what must match is how every event ended: paid, still held or void, its rule
# and its points; plus every reversal.
PAID = {"award": "paid", "release": "paid", "hold": "held", "void": "void"}


def canonical_ledger(
    entries: Iterable[Mapping[str, Any]], timezone: str = "Europe/Paris"
) -> dict[str, Any]:
    """How every event ended, and every reversal.

    A daily cap bounds what an ambassador earns per action and local day; the day's total does
    not depend on the order events arrive in, but *which* of the day's events is the one beyond
    the cap does (a crash redelivers a batch after later events). So for capped actions the
    per-event form keeps the event's state and action, and the points are compared per
    (local day, action, state) instead."""
    tz = ZoneInfo(timezone)
    caps = _capped_actions()
    last: dict[str, tuple[str, str, float, str]] = {}
    reversals: list[tuple[str, str, float]] = []
    for e in entries:
        op = str(e["op"])
        if op == "reverse":
            reversals.append((str(e["post_key"]), str(e["at"]), float(e["points"])))
            continue
        last[str(e["event_id"])] = (PAID[op], str(e["rule"]), float(e["points"]), str(e["at"]))
    final: dict[str, tuple[str, str, float | None]] = {}
    per_day: dict[str, float] = {}
    for event_id, (state, rule, points, at) in last.items():
        action = rule.split(":", 1)[0]
        if action in caps:
            day = datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(tz).date()
            key = f"{day}/{action}/{state}"
            per_day[key] = per_day.get(key, 0.0) + points
            final[event_id] = (state, rule.replace(":cap", ""), None)
        else:
            final[event_id] = (state, rule, points)
    return {"final": final, "capped_per_day": per_day, "reversals": sorted(reversals)}


@cache
def _capped_actions() -> frozenset[str]:
    """The default table's capped actions, read once (not once per ledger compared)."""
    from portevoix_scoring.domain.table import default_table

    return frozenset(default_table().fair_play.daily_caps)


class Expected:
    """Boards (centipoints per period) and ledgers per ambassador, computed offline."""

    def __init__(self, events: Iterable[dict[str, Any]], timezone: str = "Europe/Paris") -> None:
        from portevoix_scoring.domain.table import default_table
        from portevoix_scoring.offline import OfflineScoring

        offline = OfflineScoring(default_table(), ZoneInfo(timezone))
        offline.projection.keep_ledger = True
        offline.feed(orjson.dumps(e) for e in events)
        self.report = offline.report()
        self.boards: dict[str, dict[str, int]] = {
            period: {a: cp for a, cp in board.items() if cp != 0}
            for period, board in offline.projection.boards.items()
        }
        by_amb: dict[str, list[dict[str, Any]]] = {}
        for entry in offline.projection.ledger:
            by_amb.setdefault(entry.ambassador_id, []).append(entry.as_dict())
        self.ledgers = {a: canonical_ledger(es) for a, es in by_amb.items()}


def live_boards(redis: Redis, periods: Iterable[str]) -> dict[str, dict[str, int]]:
    gen = text(redis.get(SCORING_GENERATION) or b"1")
    out: dict[str, dict[str, int]] = {}
    for period in periods:
        rows: list[tuple[bytes, float]] = redis.zrange(  # type: ignore[assignment]
            board_key(gen, period), 0, -1, withscores=True
        )
        out[period] = {m.decode(): round(s) for m, s in rows if round(s) != 0}
    return out


def live_ledgers(redis: Redis, ambassadors: Iterable[str]) -> dict[str, dict[str, Any]]:
    gen = text(redis.get(SCORING_GENERATION) or b"1")
    out: dict[str, dict[str, Any]] = {}
    for aid in ambassadors:
        raw: list[bytes] = redis.lrange(ledger_key(gen, aid), 0, -1)  # type: ignore[assignment]
        if raw:
            out[aid] = canonical_ledger(orjson.loads(r) for r in raw)
    return out


def differences(
    expected: Mapping[str, Any], live: Mapping[str, Any], limit: int = 5, path: str = ""
) -> list[str]:
    """A few human-readable differences between two nested mappings (for assertion messages):
    down to the innermost key that differs."""
    out: list[str] = []
    for key in sorted(set(expected) | set(live), key=str):
        want, got = expected.get(key), live.get(key)
        if want == got:
            continue
        where = f"{path}{key}"
        if isinstance(want, Mapping) and isinstance(got, Mapping):
            out += differences(want, got, limit - len(out), where + " / ")
        else:
            out.append(f"{where}: expected {want!r:.400} live {got!r:.400}")
        if len(out) >= limit:
            break
    return out[:limit]

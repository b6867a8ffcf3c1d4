"""Leaderboard periods of a local day (organisation zone): day, ISO week, month, quarter, all-time.

Shared because scoring writes one board per period and the API reads them by the same names.
"""

from __future__ import annotations

from datetime import date

PERIOD_KINDS = ("all", "day", "week", "month", "quarter")
# Public names in URLs -> board kinds.
PERIOD_NAMES = {
    "all-time": "all",
    "day": "day",
    "week": "week",
    "month": "month",
    "quarter": "quarter",
}


_DAY_TEXT: dict[int, str] = {}


def day_text(d: date) -> str:
    """`d.isoformat()` ("2026-11-21"; of a datetime's date, too), memoised by day number:
    every event is bucketed by its local day, and `date.isoformat` formats through printf
    (a few thousand instructions each)."""
    n = d.toordinal()
    text = _DAY_TEXT.get(n)
    if text is None:
        if len(_DAY_TEXT) >= 100_000:  # ~270 years of days: only fuzzed dates get here
            _DAY_TEXT.clear()
        text = _DAY_TEXT[n] = date.fromordinal(n).isoformat()
    return text


def periods_of(day: str) -> list[str]:
    d = date.fromisoformat(day)
    iso = d.isocalendar()
    return [
        "all",
        f"day:{d.isoformat()}",
        f"week:{iso.year}-W{iso.week:02d}",
        f"month:{d.year}-{d.month:02d}",
        f"quarter:{d.year}-Q{(d.month - 1) // 3 + 1}",
    ]


def period_of(kind: str, today: date) -> str:
    """The board id of the period of `kind` that contains `today`."""
    if kind == "all":
        return "all"
    for p in periods_of(today.isoformat()):
        if p.startswith(kind + ":"):
            return p
    raise ValueError(f"unknown period kind {kind!r}; known: {', '.join(PERIOD_KINDS)}")

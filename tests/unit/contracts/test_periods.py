from datetime import date

import pytest

from portevoix.contracts.periods import period_of, periods_of


def test_periods_of_a_day() -> None:
    assert periods_of("2026-01-01") == [
        "all", "day:2026-01-01", "week:2026-W01", "month:2026-01", "quarter:2026-Q1",
    ]  # fmt: skip
    # ISO week-year differs from the calendar year around new year.
    assert "week:2026-W53" in periods_of("2027-01-01")
    assert "quarter:2026-Q4" in periods_of("2026-12-31")


def test_period_of_kind() -> None:
    assert period_of("month", date(2026, 11, 21)) == "month:2026-11"
    assert period_of("all", date(2026, 11, 21)) == "all"
    with pytest.raises(ValueError, match="unknown period"):
        period_of("decade", date(2026, 11, 21))


def test_day_text_is_isoformat_of_the_date_for_dates_and_datetimes() -> None:
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from portevoix.contracts import periods

    start = datetime(1899, 12, 31, 23, 30, tzinfo=UTC)
    paris, kiritimati = ZoneInfo("Europe/Paris"), ZoneInfo("Pacific/Kiritimati")
    for i in range(0, 24 * 400, 7):  # every 7 hours over 400 days, across DST changes
        at = start + timedelta(hours=i) + timedelta(days=365 * 120)
        for local in (at, at.astimezone(paris), at.astimezone(kiritimati)):
            assert periods.day_text(local) == local.date().isoformat()
            assert periods.day_text(local.date()) == local.date().isoformat()
    assert periods.day_text(date(1, 1, 1)) == "0001-01-01"
    assert periods.day_text(date(9999, 12, 31)) == "9999-12-31"
    # Memoised by day number, bounded: a full cache starts over and stays right.
    periods._DAY_TEXT.clear()
    periods._DAY_TEXT.update({n: "stale" for n in range(1, 100_001)})
    try:
        assert periods.day_text(date(2026, 11, 21)) == "2026-11-21"
        assert {date(2026, 11, 21).toordinal(): "2026-11-21"} == periods._DAY_TEXT
    finally:
        periods._DAY_TEXT.clear()

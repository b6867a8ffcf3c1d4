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

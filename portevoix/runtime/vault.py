"""The key vault behind sealed personal fields (see `portevoix.contracts.sealed`).

One random 256-bit data key per ambassador lives in Redis (`pv:{vault}:dek:<owner>`), wrapped by
the master key when one is configured (`PORTEVOIX_VAULT_MASTER_KEY`: a Redis dump alone then
opens nothing). Ingest creates keys as it seals; readers fetch them in one round trip per batch
and keep them in memory for `PORTEVOIX_VAULT_CACHE_S`; an erasure deletes the key (`shred`), so
every sealed copy of that person's fields becomes noise — other processes forget the key within
the cache time.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from prometheus_client import Counter
from redis.asyncio import Redis

from portevoix.contracts.readmodels import VAULT_KEY
from portevoix.contracts.sealed import PERSONAL_FIELDS, SEALED_PREFIX, owner_of
from portevoix.runtime.settings import CommonSettings

log = logging.getLogger("portevoix.vault")

UNREADABLE = Counter(
    "pv_vault_unreadable_total",
    "Sealed fields that could not be opened: shredded (erased owner) or corrupt.",
    ["reason"],
)
SHREDDED = Counter("pv_vault_keys_shredded_total", "Data keys deleted by erasures.")

_NONCE = 12
_PLAIN, _WRAPPED = b"p1", b"w1"

# Get-or-create every key of a batch in one atomic call (all keys share the `{vault}` slot).
_GET_OR_CREATE = """
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if not v then
    redis.call('SET', k, ARGV[i])
    v = ARGV[i]
  end
  out[i] = v
end
return out
"""


class VaultError(ValueError):
    """A master key that is not 32 bytes of base64, or a wrapped key without it."""


def parse_master_key(value: str | None) -> bytes | None:
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VaultError("the vault master key must be base64") from exc
    if len(raw) != 32:
        raise VaultError(f"the vault master key must be 32 bytes, got {len(raw)}")
    return raw


def new_master_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Vault:
    def __init__(
        self,
        redis: Redis,
        master_key: bytes | None = None,
        *,
        cache_s: float = 60.0,
        max_cached: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._r = redis
        self._master = AESGCM(master_key) if master_key else None
        self._cache_s = cache_s
        self._max = max_cached
        self._clock = clock
        # owner -> (cipher, or None when the key is gone; expiry)
        self._cache: dict[str, tuple[AESGCM | None, float]] = {}
        self._create = redis.register_script(_GET_OR_CREATE)

    # -- keys ------------------------------------------------------------------------------
    def _wrap(self, owner: str, dek: bytes) -> bytes:
        if self._master is None:
            return _PLAIN + dek
        nonce = os.urandom(_NONCE)
        return _WRAPPED + nonce + self._master.encrypt(nonce, dek, owner.encode())

    def _unwrap(self, owner: str, stored: bytes) -> AESGCM | None:
        tag, body = stored[:2], stored[2:]
        if tag == _PLAIN and len(body) == 32:
            return AESGCM(body)
        if tag == _WRAPPED and self._master is not None:
            try:
                return AESGCM(self._master.decrypt(body[:_NONCE], body[_NONCE:], owner.encode()))
            except InvalidTag:
                log.error("a data key does not open with the master key", extra={"pv": {}})
                return None
        log.error("a data key cannot be read (wrapped without a master key here?)")
        return None

    def _cached(self, owner: str) -> tuple[bool, AESGCM | None]:
        hit = self._cache.get(owner)
        if hit is None or hit[1] < self._clock():
            return False, None
        return True, hit[0]

    def _keep(self, owner: str, cipher: AESGCM | None) -> None:
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[owner] = (cipher, self._clock() + self._cache_s)

    async def _ciphers(self, owners: Iterable[str], *, create: bool) -> dict[str, AESGCM | None]:
        out: dict[str, AESGCM | None] = {}
        missing: list[str] = []
        for owner in dict.fromkeys(owners):
            known, cipher = self._cached(owner)
            # A writer never trusts a cached "gone": a re-registered person gets a new key.
            if known and (cipher is not None or not create):
                out[owner] = cipher
            else:
                missing.append(owner)
        if not missing:
            return out
        keys = [VAULT_KEY.format(owner=o) for o in missing]
        if create:
            fresh = [self._wrap(o, AESGCM.generate_key(bit_length=256)) for o in missing]
            stored: list[Any] = await self._create(keys=keys, args=fresh)
        else:
            stored = await self._r.mget(keys)
        for owner, raw in zip(missing, stored, strict=True):
            cipher = self._unwrap(owner, bytes(raw)) if raw else None
            self._keep(owner, cipher)
            out[owner] = cipher
        return out

    async def shred(self, owner: str) -> bool:
        """Delete `owner`'s data key: every field it sealed is unreadable from now on."""
        self._cache.pop(owner, None)
        gone = bool(await self._r.delete(VAULT_KEY.format(owner=owner)))
        if gone:
            SHREDDED.inc()
        return gone

    def forget(self, owner: str) -> None:
        """Drop a cached key at once (a reader told of an erasure)."""
        self._cache.pop(owner, None)

    # -- values ----------------------------------------------------------------------------
    @staticmethod
    def _seal(cipher: AESGCM, owner: str, value: str) -> str:
        nonce = os.urandom(_NONCE)
        blob = nonce + cipher.encrypt(nonce, value.encode(), owner.encode())
        return f"{SEALED_PREFIX}{owner}:{_b64(blob)}"

    @staticmethod
    def _open(cipher: AESGCM | None, owner: str, sealed: str) -> str | None:
        if cipher is None:
            UNREADABLE.labels("shredded").inc()
            return None
        try:
            blob = _unb64(sealed.rpartition(":")[2])
            return cipher.decrypt(blob[:_NONCE], blob[_NONCE:], owner.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error):
            UNREADABLE.labels("corrupt").inc()
            return None

    async def open_values(self, values: Iterable[object]) -> dict[str, str | None]:
        """Sealed strings among `values` → their plaintext (None when shredded or corrupt);
        plaintext values map to themselves."""
        out: dict[str, str | None] = {}
        owners: dict[str, str] = {}
        for v in values:
            if not isinstance(v, str):
                continue
            if v.startswith(SEALED_PREFIX):
                try:
                    owners[v] = owner_of(v)
                except ValueError:
                    UNREADABLE.labels("corrupt").inc()
                    out[v] = None
            else:
                out[v] = v
        if owners:
            ciphers = await self._ciphers(owners.values(), create=False)
            for v, owner in owners.items():
                out[v] = self._open(ciphers[owner], owner, v)
        return out

    # -- events ----------------------------------------------------------------------------
    async def seal_events(self, bodies: Iterable[MutableMapping[str, Any]]) -> None:
        """Seal, in place, the personal fields of domain events (JSON-ready dicts)."""
        todo = [
            (b, owner)
            for b in bodies
            if (spec := PERSONAL_FIELDS.get(str(b.get("type")))) is not None
            and isinstance(owner := b.get(spec[0]), str)
            and owner
        ]
        if not todo:
            return
        ciphers = await self._ciphers((owner for _, owner in todo), create=True)
        for body, owner in todo:
            cipher = ciphers[owner]
            if cipher is None:  # unreadable key: never publish the plaintext
                raise VaultError(f"no usable data key for {owner!r}")

            def seal(v: str, c: AESGCM = cipher, o: str = owner) -> str:
                return v if v.startswith(SEALED_PREFIX) else self._seal(c, o, v)

            _map_personal(body, seal)

    async def open_events(self, bodies: Iterable[MutableMapping[str, Any]]) -> list[bool]:
        """Open, in place, the sealed fields of domain events. Returns, per event, whether every
        field opened; a shredded field becomes "" (required text) or is dropped from its list or
        mapping, so the event still validates."""
        items = list(bodies)
        sealed: list[str] = []

        def collect(v: str) -> str:
            if v.startswith(SEALED_PREFIX):
                sealed.append(v)
            return v

        for b in items:
            _map_personal(b, collect)
        if not sealed:
            return [True] * len(items)
        opened = await self.open_values(sealed)
        return [_map_personal(b, lambda v: opened.get(v, v)) for b in items]


# Optional fields become null when shredded; required ones "" so the event still validates.
_OPTIONAL = {("post.received", "url"), ("engagement.received", "text")}


def _map_personal(body: MutableMapping[str, Any], fn: Callable[[str], str | None]) -> bool:
    """Replace, in place, every personal string of a domain event by `fn(value)` (the one walk
    over `PERSONAL_FIELDS` that sealing, collecting and opening share). `fn` answering None
    (shredded): a scalar becomes "" or null (optional fields), a list item or mapping value is
    dropped. Returns whether `fn` answered every value."""
    kind = str(body.get("type"))
    spec = PERSONAL_FIELDS.get(kind)
    if spec is None:
        return True
    _, scalars, lists, dicts = spec
    whole = True
    for f in scalars:
        v = body.get(f)
        if isinstance(v, str):
            got = fn(v)
            if got is None:
                whole = False
                got = None if (kind, f) in _OPTIONAL else ""
            body[f] = got
    for f in lists:
        values = body.get(f)
        if isinstance(values, list):
            kept = [fn(v) if isinstance(v, str) else v for v in values]
            whole = whole and None not in kept
            body[f] = [v for v in kept if v is not None]
    for f in dicts:
        mapping = body.get(f)
        if isinstance(mapping, dict):
            pairs = {k: fn(v) if isinstance(v, str) else v for k, v in mapping.items()}
            whole = whole and None not in pairs.values()
            body[f] = {k: v for k, v in pairs.items() if v is not None}
    return whole


def vault_from_settings(redis: Redis, settings: CommonSettings) -> Vault:
    secret = settings.vault_master_key
    return Vault(
        redis,
        parse_master_key(secret.get_secret_value() if secret else None),
        cache_s=settings.vault_cache_s,
    )

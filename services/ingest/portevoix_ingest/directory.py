"""Redis repository of the ambassador directory: handles → ambassador, consent, parked activity,
natural-key dedupe and GDPR erasure. Ingest is the only writer of these keys; the API reads them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from redis.asyncio import Redis

from portevoix.contracts.ingest import AmbassadorIn, Rejection
from portevoix.contracts.readmodels import (
    AMBASSADOR_INDEX,
    ERASED_HANDLE,
    ERASED_RECENTLY,
    NATURAL_KEY,
    PARKED_INDEX,
    ambassador_key,
    erasure_key,
    handle_key,
    parked_key,
    team_key,
)
from portevoix.runtime.redis import text
from portevoix_ingest.domain.privacy import handle_digest, natural_key_digest
from portevoix_ingest.settings import IngestSettings

# Erasure receipts prove the request was honoured (accountability, art. 5(2)); they hold no
# personal data and are kept a little over a year.
RECEIPT_TTL_S = 400 * 24 * 3600

# Park one event unless its handle already holds `max` others (a resent event id always fits):
# one atomic step, so concurrent ingest instances cannot overshoot the bound.
_PARK = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
   or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
  return 1
end
return 0
"""


# SET NX GET EX for a whole batch in one call (redis-py packs each pipelined command in Python:
# one script call instead of 500 commands is most of the Redis cost of a batch). The event ids
# travel as one newline-joined argument (ids hold no whitespace) and only the facts already
# claimed by another event come back, as (position, owner) pairs: half the arguments to pack
# and almost nothing to decode.
_CLAIM = """
local out = {}
local i = 0
for id in string.gmatch(ARGV[2], "[^\\n]+") do
  i = i + 1
  local old = redis.call('SET', KEYS[i], id, 'NX', 'GET', 'EX', ARGV[1])
  if old and old ~= id then
    out[#out + 1] = i
    out[#out + 1] = old
  end
end
return out
"""


_OLD_FIELDS = ("handles", "team", "consent", "created_at")


def _conflicts(
    a: AmbassadorIn, pairs: Sequence[tuple[str, str]], owners: Sequence[bytes | str | None]
) -> list[Rejection]:
    return [
        Rejection(
            field=f"handles.{network}",
            rule="handle_taken",
            message=f"handle already registered to another ambassador ({text(owner)})",
            value=handle,
        )
        for (network, handle), owner in zip(pairs, owners, strict=True)
        if owner is not None and text(owner) != a.ambassador_id
    ]


@dataclass(frozen=True)
class Resolved:
    ambassador_id: str
    consent: bool


@dataclass
class Erasure:
    """What an erasure removed (counts only: the receipt holds no personal data)."""

    existed: bool
    team: str | None = None
    networks: list[str] = field(default_factory=list)
    parked_removed: int = 0


class AmbassadorDirectory:
    def __init__(
        self,
        redis: Redis,
        *,
        parked_ttl_s: int = 30 * 24 * 3600,
        parked_max_per_handle: int = 1000,
        natural_key_ttl_s: int = 7 * 24 * 3600,
        tombstone_ttl_s: int = 8 * 24 * 3600,
    ) -> None:
        self._r = redis
        self._parked_ttl = parked_ttl_s
        self._parked_max = parked_max_per_handle
        self._nk_ttl = natural_key_ttl_s
        self._tombstone_ttl = tombstone_ttl_s
        self._park_script = redis.register_script(_PARK)
        self._claim_script = redis.register_script(_CLAIM)

    @classmethod
    def from_settings(cls, redis: Redis, s: IngestSettings) -> AmbassadorDirectory:
        return cls(
            redis,
            parked_ttl_s=s.parked_ttl_s,
            parked_max_per_handle=s.parked_max_per_handle,
            natural_key_ttl_s=s.natural_key_ttl_s,
            tombstone_ttl_s=s.erased_tombstone_ttl_s,
        )

    # -- registration ----------------------------------------------------------------------
    async def conflicts(self, a: AmbassadorIn) -> list[Rejection]:
        """Handles this registration claims that belong to another ambassador (impersonation)."""
        pairs = sorted(a.handles.items())
        owners = await self._r.mget([handle_key(n, h) for n, h in pairs])
        return _conflicts(a, pairs, owners)

    async def register(self, a: AmbassadorIn, now: datetime) -> list[tuple[str, str, bytes]]:
        """Create or update an ambassador; returns the activity parked under its handles."""
        old = await self._r.hmget(ambassador_key(a.ambassador_id), list(_OLD_FIELDS))
        return await self._write(a, now, old)

    async def enroll(
        self, a: AmbassadorIn, now: datetime
    ) -> tuple[list[Rejection], list[tuple[str, str, bytes]]]:
        """`conflicts` then, if there are none, `register`: two round trips instead of four
        (a directory sync sends registrations by the thousand)."""
        pairs = sorted(a.handles.items())
        pipe = self._r.pipeline(transaction=False)
        pipe.mget([handle_key(n, h) for n, h in pairs])
        pipe.hmget(ambassador_key(a.ambassador_id), list(_OLD_FIELDS))
        owners, old = await pipe.execute()
        conflicts = _conflicts(a, pairs, owners)
        if conflicts:
            return conflicts, []
        return [], await self._write(a, now, old)

    async def _write(
        self, a: AmbassadorIn, now: datetime, old_state: Sequence[bytes | str | None]
    ) -> list[tuple[str, str, bytes]]:
        key = ambassador_key(a.ambassador_id)
        old_handles_raw, old_team, old_consent, created = old_state
        old: dict[str, str] = orjson.loads(old_handles_raw) if old_handles_raw else {}
        new: dict[str, str] = {str(k): v for k, v in a.handles.items()}
        stamp = now.isoformat().replace("+00:00", "Z")
        consent = "1" if a.consent else "0"
        fields: dict[str, str | bytes] = {
            "ambassador_id": a.ambassador_id,
            "display_name": a.display_name,
            "team": a.team,
            "consent": consent,
            "handles": orjson.dumps(new),
            "updated_at": stamp,
            "created_at": text(created) if created else stamp,
        }
        # When consent was given or withdrawn: the controller must be able to show it (art. 7(1)).
        if old_consent is None or text(old_consent) != consent:
            fields["consent_changed_at"] = stamp
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        pipe.sadd(AMBASSADOR_INDEX, a.ambassador_id)
        if old_team is not None and text(old_team) != a.team:
            pipe.srem(team_key(text(old_team)), a.ambassador_id)
        pipe.sadd(team_key(a.team), a.ambassador_id)
        for network, handle in old.items():
            if new.get(network) != handle:
                pipe.delete(handle_key(network, handle))
        for network, handle in new.items():
            pipe.set(handle_key(network, handle), a.ambassador_id)
            # A handle registered again (after an erasure) is live again.
            pipe.delete(ERASED_HANDLE.format(digest=handle_digest(network, handle)))
        # The parked activity is read in the same round trip (the writes above never touch it).
        for network, handle in new.items():
            pipe.hgetall(parked_key(network, handle))
        replies = await pipe.execute()
        parked: list[tuple[str, str, bytes]] = []
        for (network, handle), items in zip(
            new.items(), replies[len(replies) - len(new) :], strict=True
        ):
            for _event_id, raw in sorted(items.items()):
                parked.append((network, handle, raw if isinstance(raw, bytes) else raw.encode()))
        return parked

    async def resolve_many(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Resolved]:
        wanted = list(dict.fromkeys(pairs))
        if not wanted:
            return {}
        ids = await self._r.mget([handle_key(n, h) for n, h in wanted])
        found = [(pair, text(i)) for pair, i in zip(wanted, ids, strict=True) if i]
        if not found:
            return {}
        # Many events share few ambassadors: one HGET per distinct ambassador.
        ambassadors = list(dict.fromkeys(amb for _, amb in found))
        pipe = self._r.pipeline(transaction=False)
        for amb in ambassadors:
            pipe.hget(ambassador_key(amb), "consent")
        consent = dict(zip(ambassadors, await pipe.execute(), strict=True))
        return {pair: Resolved(amb, consent[amb] == b"1") for pair, amb in found}

    # -- parked activity -------------------------------------------------------------------
    async def erased(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """The handles among `pairs` erased recently (their in-flight activity is dropped)."""
        wanted = list(dict.fromkeys(pairs))
        if not wanted or not await self._r.exists(ERASED_RECENTLY):
            # Erasures are rare: one tiny EXISTS spares the MGET of every stranger's handle.
            return set()
        hits = await self._r.mget(
            [ERASED_HANDLE.format(digest=handle_digest(n, h)) for n, h in wanted]
        )
        return {pair for pair, hit in zip(wanted, hits, strict=True) if hit is not None}

    async def park(self, items: Sequence[tuple[str, str, str, bytes]]) -> list[bool]:
        """Keep activity of an unknown handle until that handle registers; False = over the
        per-handle bound (the caller dead-letters it: nothing is dropped silently)."""
        if not items:
            return []
        expires = int(time.time()) + self._parked_ttl
        pipe = self._r.pipeline(transaction=False)
        for network, handle, event_id, raw in items:
            key = parked_key(network, handle)
            await self._park_script(
                keys=[key],
                args=[event_id, raw, self._parked_max, self._parked_ttl],
                client=pipe,
            )
            pipe.zadd(PARKED_INDEX, {key: expires})
        replies = await pipe.execute()
        return [bool(r) for r in replies[0::2]]

    async def unpark(self, items: Iterable[tuple[str, str, str]]) -> None:
        pipe = self._r.pipeline(transaction=False)
        for network, handle, event_id in items:
            pipe.hdel(parked_key(network, handle), event_id)
        await pipe.execute()

    async def parked_stats(self) -> tuple[int, int]:
        """(handles, events) currently parked; prunes the index of expired or emptied keys."""
        await self._r.zremrangebyscore(PARKED_INDEX, "-inf", int(time.time()))
        keys = [text(k) for k in await self._r.zrange(PARKED_INDEX, 0, -1)]
        if not keys:
            return 0, 0
        pipe = self._r.pipeline(transaction=False)
        for k in keys:
            pipe.hlen(k)
        sizes = [int(n) for n in await pipe.execute()]
        empty = [k for k, n in zip(keys, sizes, strict=True) if n == 0]
        if empty:
            await self._r.zrem(PARKED_INDEX, *empty)
        return len(keys) - len(empty), sum(sizes)

    # -- natural keys ----------------------------------------------------------------------
    async def claim_natural_keys(self, claims: Sequence[tuple[str, str]]) -> list[str]:
        """For each (natural key, event id): the event id that first reported the fact.

        SET NX GET with a TTL in one script call: the first claimant wins; a retry of the same
        event id finds itself and goes on (idempotent redelivery).
        """
        if not claims:
            return []
        ids = [event_id for _, event_id in claims]
        joined = "\n".join(ids)
        if joined.count("\n") != len(ids) - 1 or "" in ids:
            raise ValueError("event ids are non-empty and hold no whitespace (contract)")
        keys = [NATURAL_KEY.format(digest=natural_key_digest(k)) for k, _ in claims]
        taken = await self._claim_script(keys=keys, args=[self._nk_ttl, joined])
        for pos, owner in zip(taken[0::2], taken[1::2], strict=True):
            ids[int(pos) - 1] = text(owner)
        return ids

    # -- GDPR ------------------------------------------------------------------------------
    async def erase(self, ambassador_id: str, request_id: str, now: datetime) -> Erasure:
        """Remove every personal datum ingest holds about an ambassador (idempotent)."""
        receipt = erasure_key(request_id)
        done = await self._r.hgetall(receipt)
        if done:
            # A redelivered request: report what the first run erased, not "nothing left".
            got = {text(k): text(v) for k, v in done.items()}
            return Erasure(
                existed=got.get("existed") == "1",
                team=got.get("team") or None,
                networks=[n for n in got.get("networks", "").split(",") if n],
                parked_removed=int(got.get("parked_removed", "0")),
            )
        key = ambassador_key(ambassador_id)
        handles_raw, team_raw = await self._r.hmget(key, ["handles", "team"])
        handles: dict[str, str] = orjson.loads(handles_raw) if handles_raw else {}
        team = text(team_raw) if team_raw is not None else None
        owners: list[bytes | str | None] = []
        parked_counts: list[int] = []
        if handles:
            owners = await self._r.mget([handle_key(n, h) for n, h in handles.items()])
            pipe = self._r.pipeline(transaction=False)
            for network, handle in handles.items():
                pipe.hlen(parked_key(network, handle))
            parked_counts = [int(n) for n in await pipe.execute()]
        pipe = self._r.pipeline(transaction=True)
        for (network, handle), owner in zip(handles.items(), owners, strict=True):
            if owner is not None and text(owner) == ambassador_id:
                pipe.delete(handle_key(network, handle))
            pipe.delete(parked_key(network, handle))
            pipe.zrem(PARKED_INDEX, parked_key(network, handle))
            pipe.set(
                ERASED_HANDLE.format(digest=handle_digest(network, handle)),
                "1",
                ex=self._tombstone_ttl,
            )
            pipe.set(ERASED_RECENTLY, "1", ex=self._tombstone_ttl)
        pipe.delete(key)
        pipe.srem(AMBASSADOR_INDEX, ambassador_id)
        if team is not None:
            pipe.srem(team_key(team), ambassador_id)
        existed = handles_raw is not None or team is not None
        result = Erasure(
            existed=existed,
            team=team,
            networks=sorted(handles),
            parked_removed=sum(parked_counts),
        )
        pipe.hset(
            receipt,
            mapping={
                "status": "done",
                "erased_at": now.isoformat().replace("+00:00", "Z"),
                "existed": "1" if existed else "0",
                "networks": ",".join(result.networks),
                "parked_removed": str(result.parked_removed),
                "team": team or "",
            },
        )
        pipe.expire(receipt, RECEIPT_TTL_S)
        await pipe.execute()
        return result

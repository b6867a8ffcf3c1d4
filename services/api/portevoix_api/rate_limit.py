"""Per-token rate limits in Redis: GCRA (generic cell rate algorithm), one Lua call per request.

GCRA keeps one number per token, the theoretical arrival time (TAT): a request is allowed when
`TAT - period <= now`, and then moves TAT on by `period / limit`. It is a sliding window without
the per-request bookkeeping of a log (one key, O(1)), allows bursts of up to `limit` requests,
and the time comes from the Redis server (`TIME`) so every API replica shares one clock.

For API keys the lookup of the key and the limit are the same call: the script reads the key's
hash, picks the limit of its role and applies GCRA. The rate key `{pv:apikey:<digest>}:rate`
carries the API key's name as its hash tag, so both keys live in one Redis Cluster slot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from portevoix.runtime.redis import text

_GCRA = """
local function gcra(key, limit, period_ms)
  if limit <= 0 then return 0 end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local interval = period_ms / limit
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - period_ms
  if allow_at > now then return math.ceil(allow_at - now) end
  redis.call('SET', key, string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
  return 0
end
"""

# KEYS[1] rate key; ARGV[1] period ms, ARGV[2] limit → retry-after ms (0 = allowed).
LIMIT_SCRIPT = _GCRA + "return gcra(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[1]))"

# KEYS[1] API key hash, KEYS[2] its rate key; ARGV[1] period ms, then role/limit pairs.
# → {found (0/1), the hash as a flat list, retry-after ms}
APIKEY_SCRIPT = (
    _GCRA
    + """
local rec = redis.call('HGETALL', KEYS[1])
if #rec == 0 then return {0, {}, 0} end
local role = ''
for i = 1, #rec, 2 do if rec[i] == 'role' then role = rec[i + 1] end end
local limit = 0
for i = 2, #ARGV, 2 do if ARGV[i] == role then limit = tonumber(ARGV[i + 1]) end end
return {1, rec, gcra(KEYS[2], limit, tonumber(ARGV[1]))}
"""
)


def subject_rate_key(subject: str) -> str:
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    return f"pv:rate:{{{digest}}}"


def apikey_rate_key(apikey_key: str) -> str:
    return f"{{{apikey_key}}}:rate"


@dataclass(frozen=True)
class ApiKeyLookup:
    record: dict[str, str] | None  # None: no such key
    retry_after_ms: int


class RateLimiter:
    def __init__(self, redis: Redis, limits: Mapping[str, int], period_s: int) -> None:
        self.limits = dict(limits)
        self.period_s = period_s
        self._period_ms = period_s * 1000
        self._limit = redis.register_script(LIMIT_SCRIPT)
        self._apikey = redis.register_script(APIKEY_SCRIPT)
        self._pairs: list[str | int] = []
        for role, limit in sorted(self.limits.items()):
            self._pairs += [role, int(limit)]

    def limit_of(self, role: str) -> int:
        return int(self.limits.get(role, 0))

    async def hit(self, subject: str, role: str) -> int:
        """Count one request of `subject`; the wait in ms before it would be allowed (0 = now)."""
        limit = self.limit_of(role)
        if limit <= 0:
            return 0
        # One budget per (subject, role): a JWT subject may carry different roles over time.
        key = subject_rate_key(f"{role}|{subject}")
        wait = await self._limit(keys=[key], args=[self._period_ms, limit])
        return int(wait)

    async def lookup_api_key(self, apikey_key: str) -> ApiKeyLookup:
        """The API key's record and, in the same call, one request counted against it."""
        reply = await self._apikey(
            keys=[apikey_key, apikey_rate_key(apikey_key)], args=[self._period_ms, *self._pairs]
        )
        found, flat, wait = reply
        if not int(found):
            return ApiKeyLookup(None, 0)
        record = {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat), 2)}
        return ApiKeyLookup(record, int(wait))

"""Redis key layout of the read models: the contract between the services that write them and the
API that reads them. Scoring keys share the `{sc}` hash tag so one Lua call touches one slot
(Redis Cluster), and carry a generation so a rebuild can fill fresh keys and swap atomically.
"""

from __future__ import annotations

# Ambassador directory (written by ingest).
AMBASSADOR = "pv:amb:{ambassador_id}"  # hash: display_name, team, consent, handles(json)
AMBASSADOR_INDEX = "pv:amb:index"  # set of ambassador ids
HANDLE = "pv:handle:{network}:{handle}"  # string: ambassador id
PARKED = "pv:parked:{network}:{handle}"  # hash: event_id -> raw event json (unknown handle)

# Moderation (written by moderation).
DECISION = "pv:mod:decision:{post_key}"  # string: latest decision json

# Scoring (written by scoring); `{gen}` is the value of SCORING_GENERATION. `{{sc}}` is the
# literal hash tag `{sc}` escaped for str.format.
SCORING_GENERATION = "pv:{sc}:gen"
BOARD = "pv:{{sc}}:{gen}:board:{period}"  # zset ambassador_id -> points
LEDGER = "pv:{{sc}}:{gen}:ledger:{ambassador_id}"  # list of json entries, oldest first
POST_STATE = "pv:{{sc}}:{gen}:post:{post_key}"  # hash: v (version), s (state json)
SEEN = "pv:{{sc}}:{gen}:seen:{event_id}"  # dedupe marker per consumed event
AMBASSADOR_STATE = "pv:{{sc}}:{gen}:amb:{ambassador_id}"  # hash: v, s (team, consent, counters)


def ambassador_key(ambassador_id: str) -> str:
    return AMBASSADOR.format(ambassador_id=ambassador_id)


def handle_key(network: str, handle: str) -> str:
    return HANDLE.format(network=network, handle=handle)


def parked_key(network: str, handle: str) -> str:
    return PARKED.format(network=network, handle=handle)


def decision_key(post_key: str) -> str:
    return DECISION.format(post_key=post_key)


def board_key(gen: str, period: str) -> str:
    return BOARD.format(gen=gen, period=period)


def ledger_key(gen: str, ambassador_id: str) -> str:
    return LEDGER.format(gen=gen, ambassador_id=ambassador_id)


# Ingest: directory indexes, parked-activity bookkeeping, natural-key dedupe, GDPR erasure.
AMBASSADOR_TEAM = "pv:amb:team:{team}"  # set of ambassador ids of one team
PARKED_INDEX = "pv:parked:index"  # zset parked hash key -> expiry (unix s), for the gauge/TTL
NATURAL_KEY = "pv:nk:{digest}"  # string: first event id of a fact (TTL), digest of the key
ERASED_HANDLE = "pv:erased:{digest}"  # tombstone of an erased handle (TTL), digest only
ERASURE = "pv:erasure:{request_id}"  # hash: erasure receipt (status, erased_at, counts)


def team_key(team: str) -> str:
    return AMBASSADOR_TEAM.format(team=team)


def erasure_key(request_id: str) -> str:
    return ERASURE.format(request_id=request_id)


# -- Scoring (issue "Scoring"): more read models under the same `{sc}` tag and generation. -----
# Board scores (BOARD and the boards below) are in centipoints (1 point = 100): exact integer sums
# even with decimal weights; readers divide by 100.
SCORING_PAUSE = "pv:{sc}:pause"  # string with a TTL: live writes wait while a rebuild swaps
SCORING_OUTBOX = "pv:{sc}:outbox"  # list of event json to publish (BadgeAwarded), any generation
SCORING_TABLES = "pv:{sc}:tables"  # hash: points table version -> yaml (published tables)
SCORING_REBUILD = "pv:{sc}:rebuild"  # hash: gen, seq, last_seq, table, status (resumable)
GEN_TABLE = "pv:{{sc}}:{gen}:table"  # string: yaml of the points table of this generation
TEAM_BOARD = "pv:{{sc}}:{gen}:board:{period}:team:{team}"  # zset ambassador_id -> centipoints
TEAMS_BOARD = "pv:{{sc}}:{gen}:teams:{period}"  # zset team -> centipoints
CAMPAIGN_BOARD = "pv:{{sc}}:{gen}:board:{period}:campaign:{campaign}"  # zset ambassador -> cp
ROLLING_BOARD = "pv:{{sc}}:{gen}:rolling:{days}:{end}{scope}"  # cached zunion of day boards (TTL)
REACTION = "pv:{{sc}}:{gen}:react:{post_key}:{kind}:{actor}"  # hash v, s: one like/share per actor
STATS = "pv:{{sc}}:{gen}:stats:{ambassador_id}"  # hash: impressions, reactions, clicks, posts,
# emv:<CUR> (1/10,000 currency units)
STATS_TOTAL = "pv:{{sc}}:{gen}:stats"  # hash: the same counters for the whole organisation
BADGES = "pv:{{sc}}:{gen}:badges:{ambassador_id}"  # hash: badge id -> json {badge, title, at...}


def team_board_key(gen: str, period: str, team: str) -> str:
    return TEAM_BOARD.format(gen=gen, period=period, team=team)


def teams_board_key(gen: str, period: str) -> str:
    return TEAMS_BOARD.format(gen=gen, period=period)


def campaign_board_key(gen: str, period: str, campaign: str) -> str:
    return CAMPAIGN_BOARD.format(gen=gen, period=period, campaign=campaign)


def stats_key(gen: str, ambassador_id: str) -> str:
    return STATS.format(gen=gen, ambassador_id=ambassador_id)


def stats_total_key(gen: str) -> str:
    return STATS_TOTAL.format(gen=gen)


def badges_key(gen: str, ambassador_id: str) -> str:
    return BADGES.format(gen=gen, ambassador_id=ambassador_id)


def gen_table_key(gen: str) -> str:
    return GEN_TABLE.format(gen=gen)

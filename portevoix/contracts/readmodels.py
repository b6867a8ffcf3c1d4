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
# Colleague engagement an ambassador received, per colleague (like-rings): apart from their state.
COLLEAGUE_PAIRS = "pv:{{sc}}:{gen}:pairs:{ambassador_id}"


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
# `{{nk}}` / `{{erased}}`: literal hash tags, so one Lua call or MGET per batch stays in one slot.
NATURAL_KEY = "pv:{{nk}}:{digest}"  # string: first event id of a fact (TTL), digest of the key
ERASED_HANDLE = "pv:{{erased}}:{digest}"  # tombstone of an erased handle (TTL), digest only
ERASED_RECENTLY = "pv:{erased}:recent"  # flag: some tombstone may still be live (same TTL)
ERASURE = "pv:erasure:{request_id}"  # hash: erasure receipt (status, erased_at, counts)
# Crypto-shredding (portevoix.contracts.sealed): one data key per ambassador, written by ingest,
# read by every service that opens sealed fields, deleted by an erasure. `{vault}`: one slot.
VAULT_KEY = "pv:{{vault}}:dek:{owner}"  # string: data key, wrapped by the master key if set


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
# A team's members (scoring's view of the directory: the team of each ambassador's last
# registration; erased people leave it). A team's board is the organisation's board of the period
# restricted to them (ZINTERSTORE into TEAM_VIEW when read), not a board of its own: one board
# write per credit and period instead of two.
TEAM_MEMBERS = "pv:{{sc}}:{gen}:members:{team}"  # set of ambassador ids
TEAM_MEMBERS_DONE = "pv:{{sc}}:{gen}:members-done"  # flag: members indexed from the states
# A team's board as read (rebuilt by every read, short TTL). Its name starts with "r", like the
# rolling caches, so the SCAN that finds those for an erasure finds these too.
TEAM_VIEW = "pv:{{sc}}:{gen}:rview:team:{team}:{board}"  # zset ambassador_id -> centipoints
TEAMS_BOARD = "pv:{{sc}}:{gen}:teams:{period}"  # zset team -> centipoints
CAMPAIGN_BOARD = "pv:{{sc}}:{gen}:board:{period}:campaign:{campaign}"  # zset ambassador -> cp
ROLLING_BOARD = "pv:{{sc}}:{gen}:rolling:{days}:{end}{scope}"  # cached zunion of day boards (TTL)
REACTION = "pv:{{sc}}:{gen}:react:{post_key}:{kind}:{actor}"  # one like/share per actor per post
# A post's held and voided items (scoring), apart from its state: lists of JSON arrays.
POST_ITEMS = "pv:{{sc}}:{gen}:items:{which}:{post_key}"  # which: held | voided
# Scoring's states (POST_STATE, AMBASSADOR_STATE, COLLEAGUE_PAIRS, REACTION) are strings
# "version\njson" (one MGET reads a batch's states; version = token of the last write), not the
# hashes described above. A post state's items (POST_ITEMS) are written with it, in the same
# step, under its version.
STATS = "pv:{{sc}}:{gen}:stats:{ambassador_id}"  # hash: impressions, reactions, clicks, posts,
# emv:<CUR> (1/10,000 currency units)
STATS_TOTAL = "pv:{{sc}}:{gen}:stats"  # hash: the same counters for the whole organisation, and
# emvnet:<CUR>:<network> (its EMV by network, for the dashboards)
ORG_ONLY = "emvnet:"  # stats fields kept in STATS_TOTAL only
BADGES = "pv:{{sc}}:{gen}:badges:{ambassador_id}"  # hash: badge id -> json {badge, title, at...}
BOARD_INDEX = "pv:{{sc}}:{gen}:board-index"  # set: every per-person board key (BOARD,
# CAMPAIGN_BOARD) of the generation: what a GDPR erasure removes the person from
BOARD_INDEX_DONE = "pv:{{sc}}:{gen}:board-index:done"  # flag: boards written before it indexed


def team_members_key(gen: str, team: str) -> str:
    return TEAM_MEMBERS.format(gen=gen, team=team)


def team_view_key(gen: str, board: str, team: str) -> str:
    return TEAM_VIEW.format(gen=gen, board=board, team=team)


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


# -- Moderation (issue "Moderation"): decisions, review queue, audit, charters. ----------------
# Written by the moderation service, read by the API. Every key shares the `{mod}` hash tag so
# the one Lua script that applies a change touches one slot (Redis Cluster). Post keys in key
# names are the platform's `network:post_id`.
MOD_POST = "pv:{{mod}}:post:{post_key}"  # hash: status, verdict, decision_id, ambassador_id,
# network, team, text, arrived_at, rules (json), review (json), appeals (count), updated_at
MOD_DECISIONS = "pv:{{mod}}:decisions:{post_key}"  # list of decision json, oldest first
MOD_QUEUE = "pv:{mod}:queue"  # zset post_key -> arrival (unix ms): posts waiting for a human
MOD_QUEUE_BY = "pv:{{mod}}:queue:{facet}:{value}"  # zset, same scores: facet rule|principle|
# network|team, for filtered reads (ZINTER of several facets)
MOD_AUDIT = "pv:{{mod}}:audit:{post_key}"  # list of json entries, append-only, oldest first
MOD_AUDIT_ALL = "pv:{mod}:audit"  # stream: every human action, hold and charter change
MOD_RULE_STATS = "pv:{mod}:rules"  # hash: fires:<rule>, overturns:<rule>, confirms:<rule>
MOD_SEEN = "pv:{{mod}}:seen:{event_id}"  # dedupe marker per consumed event (TTL)
MOD_CHARTERS = "pv:{mod}:charters"  # hash: version -> charter yaml (accepted versions)
MOD_CHARTER_META = "pv:{mod}:charters:meta"  # hash: version -> json {published_by, at, ...}
MOD_CHARTER_ACTIVE = "pv:{mod}:charters:active"  # string: the active charter version
MOD_HISTORY = "pv:{mod}:history"  # stream: recent post signatures shared by every instance


def mod_post_key(post_key: str) -> str:
    return MOD_POST.format(post_key=post_key)


def mod_decisions_key(post_key: str) -> str:
    return MOD_DECISIONS.format(post_key=post_key)


def mod_queue_by_key(facet: str, value: str) -> str:
    return MOD_QUEUE_BY.format(facet=facet, value=value)


def mod_audit_key(post_key: str) -> str:
    return MOD_AUDIT.format(post_key=post_key)


def mod_seen_key(event_id: str) -> str:
    return MOD_SEEN.format(event_id=event_id)


# -- API gateway (issue "API gateway"): analytics and idea-box projection, written by the API ------
# process from `pv.evt.>`. All under the `{an}` hash tag (one Lua call, one Cluster slot). Days are
# local days (organisation time zone), `YYYY-MM-DD`. Ambassadors appear only as digests here,
# except in the idea box's post details (removed on `ambassador.erased`).
ANALYTICS_DAY = (
    "pv:{{an}}:day:{day}"  # hash: posts, posts:net:<n>, posts:team:<t>, eng, verdict:<v>…
)
ANALYTICS_ACTIVE = "pv:{{an}}:active:{day}"  # set: digests of ambassadors active that day
ANALYTICS_TAGS = "pv:{{an}}:tags:{day}"  # zset: hashtag (normalised) -> posts that day
ANALYTICS_SEEN = "pv:{{an}}:seen:{day}"  # set: event ids already applied (idempotency)
ANALYTICS_POST = (
    "pv:{{an}}:post:{post_key}"  # hash: team, network, day, idea, hidden, eng, eng:<t>…
)
ANALYTICS_AMBASSADOR = "pv:{{an}}:amb:{ambassador_id}"  # hash: team
ANALYTICS_AMBASSADOR_IDEAS = "pv:{{an}}:amb-ideas:{ambassador_id}"  # set: idea post keys
ANALYTICS_REGISTERED = "pv:{an}:registered"  # set: digests of consenting registered ambassadors
ANALYTICS_IDEAS = "pv:{an}:ideas"  # zset: post_key -> engagement (visible idea posts)
API_KEYS = "pv:apikeys"  # hash: API key id -> json metadata (role, ambassador_id, label; no secret)

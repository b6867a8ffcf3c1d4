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

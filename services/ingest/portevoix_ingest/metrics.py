from prometheus_client import Counter

EVENTS_INGESTED = Counter(
    "pv_ingest_events_total",
    "Input events turned into domain events, by network and type.",
    ["network", "type"],
)
EVENTS_REJECTED = Counter(
    "pv_ingest_rejects_total", "Input events refused, by reason (rule).", ["reason"]
)
EVENTS_PARKED = Counter(
    "pv_ingest_parked_total", "Activity of an unknown handle parked until it registers."
)
EVENTS_REPLAYED = Counter(
    "pv_ingest_replayed_total", "Parked activity replayed after its handle registered."
)
EVENTS_WITHHELD = Counter(
    "pv_ingest_withheld_total", "Activity of a non-consenting ambassador, not stored or scored."
)

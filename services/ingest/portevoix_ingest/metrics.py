from prometheus_client import Counter, Gauge

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
NATURAL_DUPLICATES = Counter(
    "pv_ingest_natural_duplicates_total",
    "Events dropped because the same fact (network, post, actor) arrived under another event id.",
    ["type"],
)
PARKED_ITEMS = Gauge(
    "pv_ingest_parked_items", "Events currently parked under unknown handles (polled)."
)
PARKED_HANDLES = Gauge("pv_ingest_parked_handles", "Unknown handles with parked events (polled).")
ERASURES = Counter(
    "pv_ingest_erasures_total", "GDPR erasures carried out, by whether data existed.", ["existed"]
)
DROPPED_ERASED = Counter(
    "pv_ingest_erased_dropped_total",
    "In-flight activity of a recently erased handle, dropped instead of parked.",
)
WEBHOOKS = Counter(
    "pv_ingest_webhooks_total",
    "Signed webhook deliveries, by network and outcome (accepted, unauthorized, invalid...).",
    ["network", "outcome"],
)

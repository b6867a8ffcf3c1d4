from prometheus_client import Counter, Gauge, Histogram

VERDICTS = Counter("pv_moderation_verdicts_total", "Final verdicts of posts.", ["verdict"])
FINDINGS = Counter(
    "pv_moderation_findings_total",
    "Rule findings, by rule, principle and verdict (shadow rules included).",
    ["rule", "principle", "verdict"],
)
CHECK_SECONDS = Histogram(
    "pv_moderation_check_seconds",
    "Charter engine time per pulled batch.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
OVERTURNS = Counter(
    "pv_moderation_overturns",
    "Human overturns of a rule (approved after review/block, or rejected/taken down after "
    "allow; rule _missed when no rule fired).",
    ["rule"],
)
REVIEWS = Counter("pv_moderation_reviews", "Moderator outcomes applied.", ["outcome"])
APPEALS = Counter("pv_moderation_appeals", "Appeals filed by ambassadors.")
QUEUE_DEPTH = Gauge("pv_review_queue_depth", "Posts waiting for a moderator.")
QUEUE_OLDEST = Gauge(
    "pv_review_queue_oldest_age_seconds", "Age of the oldest post waiting (0 when empty)."
)
CHARTER_INFO = Gauge(
    "pv_moderation_charter_info", "The charter version this instance applies (value 1).",
    ["version"],
)  # fmt: skip
CHARTER_EVENTS = Counter(
    "pv_moderation_charter_events",
    "Charter versions received from the bus, by outcome (activated, stored, refused).",
    ["outcome"],
)
WEBHOOKS = Counter(
    "pv_moderation_webhooks", "Outgoing webhook deliveries (delivered, failed, dropped).",
    ["outcome"],
)  # fmt: skip
WEBHOOK_ATTEMPT_FAILURES = Counter(
    "pv_moderation_webhook_attempt_failures", "Failed webhook attempts, by reason.", ["reason"]
)
HISTORY_SYNC_ENTRIES = Counter(
    "pv_moderation_history_entries",
    "Post signatures exchanged through the shared history (pushed, pulled).",
    ["direction"],
)
ERASED_SKIPPED = Counter(
    "pv_moderation_erased_skipped",
    "Posts whose sealed text no longer opens (author erased): acknowledged, not judged.",
)

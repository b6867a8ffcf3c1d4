from prometheus_client import Counter, Histogram

POINTS = Counter(
    "pv_points_total", "Points moved, by ledger operation (award, release, reverse...).", ["op"]
)
EVENTS_SCORED = Counter(
    "pv_scoring_events_total", "Domain events applied by scoring, by outcome.", ["outcome"]
)
LEADERBOARD_LAG = Histogram(
    "pv_leaderboard_update_lag_seconds",
    "From an event's publication by ingest/moderation to its effect on the leaderboards.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BADGES = Counter("pv_badges_awarded_total", "Badges awarded, by badge.", ["badge"])
REBUILD_EVENTS = Counter(
    "pv_scoring_rebuild_events_total", "Events replayed by `portevoix scores rebuild`."
)

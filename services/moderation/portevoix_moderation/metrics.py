from prometheus_client import Counter, Histogram

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

"""Moderation's pure core beyond the charter engine: what happens to a post after its decision
(the review queue, human reviews, appeals, the audit trail, per-rule counters). No I/O."""

"""Prometheus metrics every service shares (bus consumption, dead letters) and the /metrics server."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, start_http_server

BUS_MESSAGES = Counter(
    "pv_bus_messages_total",
    "Messages consumed from JetStream, by outcome (ok, dead_lettered, retried).",
    ["service", "consumer", "outcome"],
)
BUS_BATCH_SECONDS = Histogram(
    "pv_bus_batch_seconds",
    "Time to process one pulled batch, end to end (handler, publishes, acks).",
    ["service", "consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BUS_BATCH_SIZE = Histogram(
    "pv_bus_batch_size",
    "Messages per pulled batch.",
    ["service", "consumer"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
DEAD_LETTERS = Counter(
    "pv_dead_letters_total",
    "Messages sent to the dead-letter stream, by reason family.",
    ["service", "reason"],
)
EVENTS_PUBLISHED = Counter(
    "pv_events_published_total",
    "Events published to JetStream (PubAck received), by subject.",
    ["service", "subject"],
)
CONSUMER_PENDING = Gauge(
    "pv_consumer_pending",
    "JetStream messages not yet delivered to a durable consumer (polled).",
    ["stream", "consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "pv_consumer_ack_pending",
    "JetStream messages delivered but not yet acknowledged (polled).",
    ["stream", "consumer"],
)
CONSUMER_REDELIVERED = Gauge(
    "pv_consumer_redelivered",
    "JetStream messages redelivered at least once and still unacknowledged (polled).",
    ["stream", "consumer"],
)
SERVICE_UP = Gauge("pv_service_info", "Constant 1, labelled with the service name.", ["service"])


def observe_many(histogram: Histogram, amounts: Iterable[float]) -> None:
    """Observe every amount, as `histogram.observe` would one by one (same buckets, count and
    sum), with one locked increment per bucket touched instead of two per amount: scoring
    observes one lag per event, and `observe` cost ~1.3 µs each. Falls back to `observe` if a
    future prometheus-client lays its histogram out differently."""
    bounds: list[float] | None = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total_of = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total_of is None:
        for amount in amounts:
            histogram.observe(amount)
        return
    histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]  # a labelled parent
    counts = [0] * len(bounds)
    total = 0.0
    for amount in amounts:
        total += amount
        counts[bisect_left(bounds, amount)] += 1  # the first bound >= amount (the last is +Inf)
    if not any(counts):
        return
    total_of.inc(total)
    for bucket, n in zip(buckets, counts, strict=True):
        if n:
            bucket.inc(n)


def start_metrics_server(host: str, port: int) -> int:
    """Serve the default registry; returns the bound port (useful with port 0)."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)

"""Metrics the dashboards and alerts use that the running platform cannot show here, and why.

Every other metric a panel or a rule names must be scraped from the live platform by
tests/ops/test_dashboards_live.py, with data. These may be absent, but their queries must still be
valid PromQL that Prometheus evaluates successfully; once a name is exported, its panels are
checked like any other (data when present is always accepted).
"""

from __future__ import annotations

# Announced by the engineers extending the services; the dashboards are built against them.
# Empty: every metric the dashboards and rules name is now exported by a service (the programme
# figures by the API's programme_metrics collector) and checked with data by the live test.
ANNOUNCED: dict[str, str] = {}

# prometheus-nats-exporter has no Debian or PyPI package and cannot be built here. The names are
# checked against the exporter's own definitions instead: `gnatsd_varz_<key>` must be a numeric key
# of a real nats-server's /varz; `jetstream_*` names are those of collector/jsz.go
# (nats-io/prometheus-nats-exporter, commit 2fdbfd7e).
NATS_EXPORTER_PREFIXES = ("gnatsd_varz_", "jetstream_")
JSZ_METRICS = frozenset(
    {
        "jetstream_server_jetstream_disabled",
        "jetstream_server_total_streams",
        "jetstream_server_total_consumers",
        "jetstream_server_total_messages",
        "jetstream_server_total_message_bytes",
        "jetstream_server_max_memory",
        "jetstream_server_max_storage",
        "jetstream_account_max_memory",
        "jetstream_account_max_storage",
        "jetstream_account_storage_used",
        "jetstream_account_memory_used",
        "jetstream_stream_total_messages",
        "jetstream_stream_limit_messages",
        "jetstream_stream_total_bytes",
        "jetstream_stream_limit_bytes",
        "jetstream_stream_first_seq",
        "jetstream_stream_last_seq",
        "jetstream_stream_consumer_count",
        "jetstream_stream_subject_count",
        "jetstream_consumer_delivered_consumer_seq",
        "jetstream_consumer_delivered_stream_seq",
        "jetstream_consumer_last_delivery_seconds",
        "jetstream_consumer_last_ack_seconds",
        "jetstream_consumer_num_ack_pending",
        "jetstream_consumer_num_redelivered",
        "jetstream_consumer_num_waiting",
        "jetstream_consumer_num_pending",
        "jetstream_consumer_ack_floor_stream_seq",
        "jetstream_consumer_ack_floor_consumer_seq",
    }
)


def exempt_from_data(name: str) -> bool:
    """True when a metric may legitimately have no data in the live test."""
    return name in ANNOUNCED or name.startswith(NATS_EXPORTER_PREFIXES)

"""Porte-Voix Grafana dashboards, as code.

`python deploy/grafana/dashboards.py` writes deploy/grafana/dashboards/*.json (what Grafana
provisions, and what the Helm chart ships). tests/ops checks the JSON is up to date and runs every
panel query against a real Prometheus scraping the platform.

Conventions: every panel reads the `datasource` variable; template variables use `.*` as their
"All" value; per-service selections go through the `service` label (a target label set by the
scrape config, also exported by the workers' own metrics).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"

Panel = dict[str, Any]


def _target(expr: str, legend: str, ref: int, instant: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {
        "datasource": DS,
        "expr": expr,
        "legendFormat": legend,
        "refId": chr(ord("A") + ref),
    }
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


def panel(
    kind: str,
    title: str,
    queries: list[tuple[str, str]],
    *,
    unit: str = "short",
    description: str = "",
    w: int = 12,
    h: int = 8,
    instant: bool = False,
    thresholds: list[tuple[str, float | None]] | None = None,
) -> Panel:
    steps = [{"color": c, "value": v} for c, v in (thresholds or [("green", None)])]
    p: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {},
        "targets": [_target(e, lg, i, instant) for i, (e, lg) in enumerate(queries)],
    }
    if kind == "timeseries":
        p["options"] = {"legend": {"displayMode": "table", "placement": "right", "calcs": ["max"]}}
    if kind == "table":
        p["options"] = {"showHeader": True}
        p["transformations"] = [{"id": "merge"}]
        for t in p["targets"]:
            t["format"] = "table"
    return p


def ts(title: str, queries: list[tuple[str, str]], **kw: Any) -> Panel:
    return panel("timeseries", title, queries, **kw)


def stat(title: str, queries: list[tuple[str, str]], **kw: Any) -> Panel:
    kw.setdefault("w", 6)
    kw.setdefault("h", 5)
    return panel("stat", title, queries, instant=True, **kw)


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}}


def variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


DATASOURCE_VAR = {
    "name": "datasource",
    "label": "Prometheus",
    "type": "datasource",
    "query": "prometheus",
    "current": {"selected": True, "text": "Prometheus", "value": "prometheus"},
}


def dashboard(
    uid: str, title: str, description: str, variables: list[dict[str, Any]], panels: list[Panel]
) -> dict[str, Any]:
    # Lay panels out left to right, wrapping at Grafana's 24 columns.
    x = y = row_h = 0
    for n, p in enumerate(panels, start=1):
        g = p["gridPos"]
        if p["type"] == "row" or x + g["w"] > 24:
            x, y, row_h = 0, y + row_h, 0
        g["x"], g["y"] = x, y
        p["id"] = n
        x += g["w"]
        row_h = max(row_h, g["h"])
        if p["type"] == "row":
            x, y, row_h = 0, y + g["h"], 0
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["porte-voix"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "graphTooltip": 1,
        "templating": {"list": [DATASOURCE_VAR, *variables]},
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["porte-voix"],
                "asDropdown": True,
                "title": "Porte-Voix",
            }
        ],
        "panels": panels,
    }


SVC = 'service=~"$service"'


def zero_if_none(ratio: str, denominator: str) -> str:
    """A ratio that reads 0 (not "No data") when the numerator has no series yet."""
    return f"({ratio}) or ({denominator} * 0)"


def overview() -> dict[str, Any]:
    bus_rate = f"sum by (service, consumer) (rate(pv_bus_messages_total{{{SVC}}}[{RI}]))"
    http_rate = f"sum by (route) (rate(pv_http_requests_total[{RI}]))"
    return dashboard(
        "pv-overview",
        "Porte-Voix / Platform overview",
        "RED per service (bus consumers and HTTP API), stream lag and dead letters.",
        [variable("service", "Service", "label_values(pv_service_info, service)")],
        [
            row("Services"),
            stat(
                "Instances up",
                [(f'sum by (service) (up{{{SVC}, service!=""}})', "{{service}}")],
                w=8,
                thresholds=[("red", None), ("green", 1)],
            ),
            stat(
                "Dead letters (range)",
                [(f"sum(increase(pv_dead_letters_total{{{SVC}}}[$__range]))", "dead letters")],
                w=8,
                thresholds=[("green", None), ("orange", 1)],
            ),
            stat(
                "Max consumer backlog",
                [("max(pv_consumer_pending)", "pending")],
                w=8,
                thresholds=[("green", None), ("orange", 1000), ("red", 10000)],
            ),
            row("Bus consumers: RED per durable consumer (handler)"),
            ts(
                "Messages consumed by outcome",
                [
                    (
                        f"sum by (service, consumer, outcome) (rate(pv_bus_messages_total{{{SVC}}}[{RI}]))",
                        "{{service}}/{{consumer}} {{outcome}}",
                    )
                ],
                unit="ops",
            ),
            ts(
                "Error ratio (retried + dead-lettered)",
                [
                    (
                        zero_if_none(
                            f'sum by (service, consumer) (rate(pv_bus_messages_total{{{SVC}, outcome=~"dead_lettered|retried"}}[{RI}])) / {bus_rate}',
                            bus_rate,
                        ),
                        "{{service}}/{{consumer}}",
                    )
                ],
                unit="percentunit",
            ),
            ts(
                "Batch duration p50 / p99",
                [
                    (
                        f"histogram_quantile(0.5, sum by (le, service, consumer) (rate(pv_bus_batch_seconds_bucket{{{SVC}}}[{RI}])))",
                        "{{service}}/{{consumer}} p50",
                    ),
                    (
                        f"histogram_quantile(0.99, sum by (le, service, consumer) (rate(pv_bus_batch_seconds_bucket{{{SVC}}}[{RI}])))",
                        "{{service}}/{{consumer}} p99",
                    ),
                ],
                unit="s",
            ),
            ts(
                "Messages per pulled batch (mean)",
                [
                    (
                        f"sum by (service, consumer) (rate(pv_bus_batch_size_sum{{{SVC}}}[{RI}])) / sum by (service, consumer) (rate(pv_bus_batch_size_count{{{SVC}}}[{RI}]))",
                        "{{service}}/{{consumer}}",
                    )
                ],
            ),
            row("API (HTTP RED)"),
            ts(
                "Requests by route and status",
                [
                    (
                        f"sum by (route, status) (rate(pv_http_requests_total[{RI}]))",
                        "{{route}} {{status}}",
                    )
                ],
                unit="reqps",
            ),
            ts(
                "5xx ratio by route",
                [
                    (
                        zero_if_none(
                            f'sum by (route) (rate(pv_http_requests_total{{status=~"5.."}}[{RI}])) / {http_rate}',
                            http_rate,
                        ),
                        "{{route}}",
                    )
                ],
                unit="percentunit",
            ),
            ts(
                "Latency p99 by route",
                [
                    (
                        f"histogram_quantile(0.99, sum by (le, route) (rate(pv_http_request_seconds_bucket[{RI}])))",
                        "{{route}}",
                    )
                ],
                unit="s",
            ),
            ts(
                "4xx by route",
                [
                    (
                        f'sum by (route, status) (rate(pv_http_requests_total{{status=~"4.."}}[{RI}]))',
                        "{{route}} {{status}}",
                    )
                ],
                unit="reqps",
            ),
            row("Streams and dead letters"),
            ts(
                "Consumer backlog (not yet delivered)",
                [("max by (stream, consumer) (pv_consumer_pending)", "{{stream}} / {{consumer}}")],
            ),
            ts(
                "Delivered, not yet acknowledged",
                [
                    (
                        "max by (stream, consumer) (pv_consumer_ack_pending)",
                        "{{stream}} / {{consumer}}",
                    )
                ],
            ),
            ts(
                "Redelivered, still unacknowledged",
                [
                    (
                        "max by (stream, consumer) (pv_consumer_redelivered)",
                        "{{stream}} / {{consumer}}",
                    )
                ],
            ),
            ts(
                "Dead letters by service and reason",
                [
                    (
                        f"sum by (service, reason) (increase(pv_dead_letters_total{{{SVC}}}[{RI}]))",
                        "{{service}} {{reason}}",
                    )
                ],
            ),
            ts(
                "Events published by subject",
                [
                    (
                        f"sum by (subject) (rate(pv_events_published_total{{{SVC}}}[{RI}]))",
                        "{{subject}}",
                    )
                ],
                unit="ops",
            ),
        ],
    )


def moderation() -> dict[str, Any]:
    rule_sel = 'rule=~"$rule", principle=~"$principle"'
    held = f'sum by (rule) (increase(pv_moderation_findings_total{{{rule_sel}, verdict=~"review|block"}}[$__range]))'
    return dashboard(
        "pv-moderation",
        "Porte-Voix / Moderation",
        "Verdicts, findings by charter rule and principle, the review queue, overturn rates.",
        [
            variable(
                "principle", "Principle", "label_values(pv_moderation_findings_total, principle)"
            ),
            variable(
                "rule",
                "Rule",
                'label_values(pv_moderation_findings_total{principle=~"$principle"}, rule)',
            ),
        ],
        [
            row("Review queue"),
            stat(
                "Posts waiting for review",
                [("max(pv_review_queue_depth)", "depth")],
                thresholds=[("green", None), ("orange", 50), ("red", 200)],
            ),
            stat(
                "Oldest waiting post",
                [("max(pv_review_queue_oldest_age_seconds)", "age")],
                unit="s",
                thresholds=[("green", None), ("orange", 900), ("red", 1800)],
            ),
            stat(
                "Moderation backlog",
                [('max(pv_consumer_pending{consumer=~"moderation.*"})', "pending")],
            ),
            stat(
                "Posts checked (range)",
                [("sum(increase(pv_moderation_verdicts_total[$__range]))", "posts")],
            ),
            ts(
                "Review queue depth and oldest age",
                [
                    ("max(pv_review_queue_depth)", "depth"),
                    ("max(pv_review_queue_oldest_age_seconds) / 60", "oldest (min)"),
                ],
                w=24,
            ),
            row("Verdicts"),
            ts(
                "Verdicts per second",
                [(f"sum by (verdict) (rate(pv_moderation_verdicts_total[{RI}]))", "{{verdict}}")],
                unit="ops",
            ),
            panel(
                "piechart",
                "Verdict share (range)",
                [
                    (
                        "sum by (verdict) (increase(pv_moderation_verdicts_total[$__range]))",
                        "{{verdict}}",
                    )
                ],
                instant=True,
            ),
            ts(
                "Findings by principle",
                [
                    (
                        f"sum by (principle) (rate(pv_moderation_findings_total{{{rule_sel}}}[{RI}]))",
                        "{{principle}}",
                    )
                ],
                unit="ops",
            ),
            panel(
                "table",
                "Top rules (range)",
                [
                    (
                        f"topk(15, sum by (rule, principle, verdict) (increase(pv_moderation_findings_total{{{rule_sel}}}[$__range])))",
                        "",
                    )
                ],
                instant=True,
            ),
            ts(
                "Charter check time per batch p50 / p99",
                [
                    (
                        f"histogram_quantile(0.5, sum by (le) (rate(pv_moderation_check_seconds_bucket[{RI}])))",
                        "p50",
                    ),
                    (
                        f"histogram_quantile(0.99, sum by (le) (rate(pv_moderation_check_seconds_bucket[{RI}])))",
                        "p99",
                    ),
                ],
                unit="s",
            ),
            row("Human review"),
            panel(
                "bargauge",
                "Overturn rate per rule (range)",
                [
                    (
                        zero_if_none(
                            f'sum by (rule) (increase(pv_moderation_overturns_total{{rule=~"$rule"}}[$__range])) / {held}',
                            held,
                        ),
                        "{{rule}}",
                    )
                ],
                unit="percentunit",
                instant=True,
                description="Share of a rule's holds and blocks that moderators overturned: "
                "a high rate means the rule is too strict.",
            ),
            ts(
                "Overturns per rule",
                [
                    (
                        f'sum by (rule) (increase(pv_moderation_overturns_total{{rule=~"$rule"}}[{RI}]))',
                        "{{rule}}",
                    )
                ],
            ),
        ],
    )


def ambassadors() -> dict[str, Any]:
    net = 'network=~"$network"'
    return dashboard(
        "pv-ambassadors",
        "Porte-Voix / Ambassador programme",
        "Participation, activity by network, points, top teams and earned media value.",
        [variable("network", "Network", "label_values(pv_ingest_events_total, network)")],
        [
            row("Participation"),
            stat(
                "Participation rate (30 days)",
                [
                    (
                        "max(pv_ambassadors_active) / max(pv_ambassadors_registered)",
                        "active / registered",
                    )
                ],
                unit="percentunit",
                w=4,
            ),
            stat(
                "Registered ambassadors",
                [("max(pv_ambassadors_registered)", "registered")],
                w=4,
                description="Consenting registered ambassadors (read models, via the API).",
            ),
            stat(
                "Active ambassadors (30 days)",
                [("max(pv_ambassadors_active)", "active")],
                w=4,
                description="Consenting ambassadors who posted, relayed or engaged as an "
                "ambassador in the last 30 local days (same figure as GET /v1/analytics).",
            ),
            stat(
                "Programme metrics read errors (range)",
                [("sum(increase(pv_programme_metrics_errors_total[$__range]))", "errors")],
                description="The API could not read the programme figures from Redis; it keeps "
                "the last ones for programme_metrics_max_age_s, then they disappear.",
                thresholds=[("green", None), ("orange", 1)],
                w=4,
            ),
            stat(
                "Posts (range)",
                [
                    (
                        f'sum(increase(pv_ingest_events_total{{{net}, type="post"}}[$__range]))',
                        "posts",
                    )
                ],
                w=4,
            ),
            stat(
                "Points earned (range)",
                [('sum(increase(pv_points_total{op=~"award|release"}[$__range]))', "points")],
                description="Paid at once (award) or after review (release).",
                w=4,
            ),
            ts(
                "Activity by network and type",
                [
                    (
                        f"sum by (network, type) (rate(pv_ingest_events_total{{{net}}}[{RI}]))",
                        "{{network}} {{type}}",
                    )
                ],
                unit="ops",
            ),
            ts(
                "Unknown, withheld and replayed activity",
                [
                    (f"sum(rate(pv_ingest_parked_total[{RI}]))", "parked (unknown handle)"),
                    (f"sum(rate(pv_ingest_withheld_total[{RI}]))", "withheld (no consent)"),
                    (f"sum(rate(pv_ingest_replayed_total[{RI}]))", "replayed after registration"),
                ],
                unit="ops",
            ),
            ts(
                "Parked activity waiting for its handle to register",
                [
                    ("max(pv_ingest_parked_items)", "parked events"),
                    ("max(pv_ingest_parked_handles)", "unknown handles"),
                ],
            ),
            ts(
                "Input refused by reason",
                [(f"sum by (reason) (rate(pv_ingest_rejects_total[{RI}]))", "{{reason}}")],
                unit="ops",
            ),
            row("Points and leaderboards"),
            ts(
                "Points moved by ledger operation",
                [(f"sum by (op) (rate(pv_points_total[{RI}]))", "{{op}}")],
            ),
            panel(
                "bargauge",
                "Top teams (points)",
                [("topk(10, max by (team) (pv_team_points))", "{{team}}")],
                instant=True,
            ),
            panel(
                "bargauge",
                "Badges awarded (range)",
                [("sum by (badge) (increase(pv_badges_awarded_total[$__range]))", "{{badge}}")],
                instant=True,
            ),
            ts(
                "Scoring outcomes",
                [(f"sum by (outcome) (rate(pv_scoring_events_total[{RI}]))", "{{outcome}}")],
                unit="ops",
            ),
            ts(
                "Leaderboard update lag p50 / p99",
                [
                    (
                        f"histogram_quantile(0.5, sum by (le) (rate(pv_leaderboard_update_lag_seconds_bucket[{RI}])))",
                        "p50",
                    ),
                    (
                        f"histogram_quantile(0.99, sum by (le) (rate(pv_leaderboard_update_lag_seconds_bucket[{RI}])))",
                        "p99",
                    ),
                ],
                unit="s",
            ),
            row("Earned media value"),
            ts(
                "Earned media value by network (all time)",
                [(f"max by (network, currency) (pv_emv{{{net}}})", "{{network}} ({{currency}})")],
                unit="currencyEUR",
                description="All-time EMV of the live scoring generation (a gauge: takedowns and "
                "rebuilds with a new points table can lower it). `unattributed`: EMV scored "
                "before scoring recorded the network.",
            ),
            stat(
                "EMV earned (range)",
                [
                    (
                        "sum by (currency) (max by (network, currency) "
                        f"(delta(pv_emv{{{net}}}[$__range])))",
                        "{{currency}}",
                    )
                ],
                unit="currencyEUR",
                description="Change of the all-time EMV over the range, net of reversals.",
            ),
        ],
    )


def infrastructure() -> dict[str, Any]:
    srv = 'server_id=~"$nats_server"'
    red = 'instance=~"$redis"'
    return dashboard(
        "pv-infrastructure",
        "Porte-Voix / Infrastructure",
        "NATS (prometheus-nats-exporter: varz and JetStream) and Redis (redis_exporter).",
        [
            variable(
                "nats_server", "NATS server", "label_values(gnatsd_varz_connections, server_id)"
            ),
            variable("redis", "Redis", "label_values(redis_up, instance)"),
        ],
        [
            row("Scrape targets"),
            ts("Targets up by job", [("sum by (job) (up)", "{{job}}")], w=24, h=6),
            row("NATS"),
            ts("Client connections", [(f"gnatsd_varz_connections{{{srv}}}", "{{server_id}}")]),
            ts(
                "Messages in / out",
                [
                    (
                        f"sum by (server_id) (rate(gnatsd_varz_in_msgs{{{srv}}}[{RI}]))",
                        "{{server_id}} in",
                    ),
                    (
                        f"sum by (server_id) (rate(gnatsd_varz_out_msgs{{{srv}}}[{RI}]))",
                        "{{server_id}} out",
                    ),
                ],
                unit="ops",
            ),
            ts(
                "Bytes in / out",
                [
                    (
                        f"sum by (server_id) (rate(gnatsd_varz_in_bytes{{{srv}}}[{RI}]))",
                        "{{server_id}} in",
                    ),
                    (
                        f"sum by (server_id) (rate(gnatsd_varz_out_bytes{{{srv}}}[{RI}]))",
                        "{{server_id}} out",
                    ),
                ],
                unit="Bps",
            ),
            ts(
                "Slow consumers and cluster routes",
                [
                    (f"gnatsd_varz_slow_consumers{{{srv}}}", "{{server_id}} slow consumers"),
                    (f"gnatsd_varz_routes{{{srv}}}", "{{server_id}} routes"),
                ],
            ),
            ts("Server memory", [(f"gnatsd_varz_mem{{{srv}}}", "{{server_id}}")], unit="bytes"),
            ts("Server CPU", [(f"gnatsd_varz_cpu{{{srv}}}", "{{server_id}}")], unit="percent"),
            row("JetStream"),
            ts(
                "Stream messages",
                [("max by (stream_name) (jetstream_stream_total_messages)", "{{stream_name}}")],
            ),
            ts(
                "Stream bytes",
                [("max by (stream_name) (jetstream_stream_total_bytes)", "{{stream_name}}")],
                unit="bytes",
            ),
            ts(
                "Consumer pending (server view)",
                [
                    (
                        "max by (stream_name, consumer_name) (jetstream_consumer_num_pending)",
                        "{{stream_name}} / {{consumer_name}}",
                    )
                ],
            ),
            ts(
                "Consumer ack pending and redelivered (server view)",
                [
                    (
                        "max by (stream_name, consumer_name) (jetstream_consumer_num_ack_pending)",
                        "{{stream_name}} / {{consumer_name}} ack pending",
                    ),
                    (
                        "max by (stream_name, consumer_name) (jetstream_consumer_num_redelivered)",
                        "{{stream_name}} / {{consumer_name}} redelivered",
                    ),
                ],
            ),
            row("Redis"),
            stat(
                "Redis up",
                [(f"redis_up{{{red}}}", "{{instance}}")],
                thresholds=[("red", None), ("green", 1)],
            ),
            stat("Connected clients", [(f"sum(redis_connected_clients{{{red}}})", "clients")]),
            stat("Keys", [(f"sum(redis_db_keys{{{red}}})", "keys")]),
            stat("Memory used", [(f"sum(redis_memory_used_bytes{{{red}}})", "used")], unit="bytes"),
            ts(
                "Commands per second",
                [
                    (
                        f"sum by (instance) (rate(redis_commands_processed_total{{{red}}}[{RI}]))",
                        "{{instance}}",
                    )
                ],
                unit="ops",
            ),
            ts(
                "Command time by command",
                [
                    (
                        f"sum by (cmd) (rate(redis_commands_duration_seconds_total{{{red}}}[{RI}])) / sum by (cmd) (rate(redis_commands_total{{{red}}}[{RI}]))",
                        "{{cmd}}",
                    )
                ],
                unit="s",
            ),
            ts(
                "Memory used / max",
                [
                    (f"redis_memory_used_bytes{{{red}}}", "{{instance}} used"),
                    (f"redis_memory_max_bytes{{{red}}}", "{{instance}} max"),
                ],
                unit="bytes",
            ),
            ts(
                "Evicted and expired keys",
                [
                    (f"sum(rate(redis_evicted_keys_total{{{red}}}[{RI}]))", "evicted"),
                    (f"sum(rate(redis_expired_keys_total{{{red}}}[{RI}]))", "expired"),
                ],
                unit="ops",
            ),
        ],
    )


DASHBOARDS = {
    "overview": overview,
    "moderation": moderation,
    "ambassadors": ambassadors,
    "infrastructure": infrastructure,
}


def render() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {
        f"porte-voix-{name}.json": json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

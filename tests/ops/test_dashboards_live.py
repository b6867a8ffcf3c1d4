"""Every dashboard panel and alert rule, run by a real Prometheus scraping the running platform."""

from __future__ import annotations

import time

import pytest

from tests.e2e.helpers import eventually
from tests.ops.announced import JSZ_METRICS, exempt_from_data
from tests.ops.conftest import SERVICE_JOBS, OpsStack
from tests.ops.observability import (
    PanelQuery,
    dashboard_variables,
    load_dashboards,
    load_rules,
    metric_names_in,
    panel_queries,
    parse_label_values,
    substitute,
    variable_queries,
)

pytestmark = pytest.mark.e2e

DASHBOARDS = load_dashboards()
# Long enough for the pipeline to settle and for rate() to see two scrapes after it.
CONVERGE_S = 45


def _expand(q: PanelQuery) -> str:
    return substitute(q.expr, dashboard_variables(DASHBOARDS[q.dashboard]))


def _needs_data(expr: str) -> bool:
    return not any(exempt_from_data(n) for n in metric_names_in(expr))


def test_prometheus_scrapes_every_service_with_its_service_label(ops_stack: OpsStack) -> None:
    prom = ops_stack.prometheus
    deadline = time.monotonic() + 20
    up: dict[str, float] = {}
    while time.monotonic() < deadline:
        res = prom.query('up{service!=""}')["data"]["result"]
        up = {r["metric"]["service"]: float(r["value"][1]) for r in res}
        if sorted(up) == sorted(SERVICE_JOBS) and all(v == 1 for v in up.values()):
            break
        time.sleep(0.5)
    assert up == dict.fromkeys(SERVICE_JOBS, 1.0)
    # honor_labels keeps the workers' own `service` label (no exported_service duplicates).
    info = prom.query("pv_service_info")["data"]["result"]
    assert sorted(r["metric"]["service"] for r in info) == sorted(SERVICE_JOBS)
    assert not prom.query("{exported_service!=''}")["data"]["result"]
    # The only job the deployment scrapes that cannot run here is the NATS exporter.
    assert ops_stack.dropped_jobs == ["nats"]


def test_every_panel_query_returns_data(ops_stack: OpsStack) -> None:
    prom = ops_stack.prometheus
    queries = panel_queries(DASHBOARDS)
    assert len(queries) >= 40
    # Every query is valid and evaluates; the rest of the platform settles meanwhile.
    errors: dict[str, str] = {}
    for q in queries:
        res = prom.query(_expand(q))
        if res["status"] != "success":
            errors[str(q)] = f"{res.get('errorType')}: {res.get('error')} in {_expand(q)}"
    assert not errors, "invalid panel queries:\n" + "\n".join(
        f"{k}: {v}" for k, v in errors.items()
    )

    todo = [q for q in queries if _needs_data(_expand(q))]
    deadline = time.monotonic() + CONVERGE_S
    while todo and time.monotonic() < deadline:
        todo = [q for q in todo if not prom.query(_expand(q))["data"]["result"]]
        if todo:
            time.sleep(1)
    assert not todo, "panels without data:\n" + "\n".join(f"{q}: {_expand(q)}" for q in todo)
    # The exempt panels are few and named: everything else was checked for data above.
    exempt = [q for q in queries if not _needs_data(_expand(q))]
    assert len(exempt) < len(queries) / 2


def test_every_template_variable_finds_values(ops_stack: OpsStack) -> None:
    prom = ops_stack.prometheus
    missing = []
    for dash, name, query in variable_queries(DASHBOARDS):
        selector, label = parse_label_values(
            substitute(query, dashboard_variables(DASHBOARDS[dash]))
        )
        res = prom.api("series", **{"match[]": selector})
        assert res["status"] == "success", (dash, name, res)
        values = {s.get(label) for s in res["data"]} - {None}
        if not values and _needs_data(selector):
            missing.append(f"{dash} ${name}: {query}")
    assert not missing, missing


def test_every_metric_named_by_panels_and_rules_is_known(ops_stack: OpsStack) -> None:
    """A misspelt metric name would only show as an empty panel: each name must be scraped,
    announced, or an exporter metric checked against the exporter itself."""
    scraped = ops_stack.prometheus.metric_names()
    exprs = [_expand(q) for q in panel_queries(DASHBOARDS)] + [r["expr"] for r in load_rules()]
    unknown = {
        n for e in exprs for n in metric_names_in(e) if n not in scraped and not exempt_from_data(n)
    }
    assert not unknown, sorted(unknown)


def test_nats_exporter_metric_names_match_a_real_server(ops_stack: OpsStack) -> None:
    """prometheus-nats-exporter maps /varz keys to gnatsd_varz_<key>: check against the real
    /varz of the platform's nats-server; jetstream_* against the exporter's jsz collector."""
    varz = ops_stack.nats.varz()
    numeric = {k for k, v in varz.items() if isinstance(v, int | float)}
    exprs = [_expand(q) for q in panel_queries(DASHBOARDS)] + [r["expr"] for r in load_rules()]
    names = {n for e in exprs for n in metric_names_in(e)}
    varz_names = {n for n in names if n.startswith("gnatsd_varz_")}
    assert varz_names, "the infrastructure dashboard should show NATS server metrics"
    assert {n.removeprefix("gnatsd_varz_") for n in varz_names} <= numeric, sorted(
        n for n in varz_names if n.removeprefix("gnatsd_varz_") not in numeric
    )
    js_names = {n for n in names if n.startswith("jetstream_")}
    assert js_names and js_names <= JSZ_METRICS, sorted(js_names - JSZ_METRICS)


def test_every_alert_rule_evaluates_without_error(ops_stack: OpsStack) -> None:
    prom = ops_stack.prometheus
    expected = {r.get("alert") or r.get("record") for r in load_rules()}
    deadline = time.monotonic() + 20
    rules: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        groups = prom.api("rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        # health stays "unknown" until a rule group has been evaluated once.
        if {r["name"] for r in rules} == expected and all(r["health"] != "unknown" for r in rules):
            break
        time.sleep(0.5)
    assert {r["name"] for r in rules} == expected
    bad = {str(r["name"]): r.get("lastError") for r in rules if r.get("health") != "ok"}
    assert not bad, bad
    # The malformed messages published by the traffic really reached the dead-letter counter.
    q = 'sum by (reason) (pv_dead_letters_total{service="ingest"})'
    eventually(
        lambda: (
            {r["metric"]["reason"] for r in prom.query(q)["data"]["result"]} >= {"invalid_json"}
        ),
        timeout_s=20,
    )

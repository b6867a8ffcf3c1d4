"""Dashboards as code: the JSON is what the generator writes, well formed, and provisioned."""

from __future__ import annotations

import importlib.util
import subprocess
from types import ModuleType

import pytest
import yaml

from portevoix.runtime.platform import SERVICES
from tests.ops.observability import (
    DASHBOARD_DIR,
    DEPLOY,
    PROMETHEUS_CONFIG,
    dashboard_variables,
    ensure_debian_tools,
    iter_panels,
    load_dashboards,
    metric_names_in,
    parse_label_values,
    substitute,
)

PROVISIONING = DEPLOY / "grafana" / "provisioning"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "pv_dashboards", DEPLOY / "grafana" / "dashboards.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_json_is_what_the_generator_writes() -> None:
    rendered: dict[str, str] = _generator().render()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARD_DIR.glob("*.json")}
    assert rendered.keys() == on_disk.keys()
    stale = [n for n in rendered if rendered[n] != on_disk[n]]
    assert not stale, f"run `python deploy/grafana/dashboards.py`: {stale} are out of date"


def test_the_four_dashboards_exist_with_unique_uids() -> None:
    dashboards = load_dashboards()
    uids = [d["uid"] for d in dashboards.values()]
    assert sorted(uids) == ["pv-ambassadors", "pv-infrastructure", "pv-moderation", "pv-overview"]


@pytest.mark.parametrize("name", sorted(load_dashboards()))
def test_panels_are_well_formed(name: str) -> None:
    d = load_dashboards()[name]
    variables = dashboard_variables(d)
    assert variables.get("datasource"), "every dashboard selects its Prometheus"
    ids = []
    for p in iter_panels(d["panels"]):
        ids.append(p["id"])
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], f"{p['title']} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            expr = substitute(t["expr"], variables)  # raises on an undefined variable
            assert metric_names_in(expr), f"{p['title']}: no metric in {expr!r}"
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            parse_label_values(v["query"]["query"])
            assert v["includeAll"] and v["allValue"] == ".*", v["name"]


def test_promql_names_and_grafana_variables() -> None:
    assert metric_names_in(
        'sum by (le, svc) (rate(a_bucket{x=~"y|z"}[5m])) / on (svc) group_left b_total offset 5m'
    ) == {"a_bucket", "b_total"}
    assert metric_names_in('absent(up{service="api"}) or vector(0) > 30 * 60') == {"up"}
    assert substitute('x{s=~"$service", t="${team:regex}"}[$__rate_interval]', {
        "service": ".*", "team": "a"
    }) == 'x{s=~".*", t="a"}[20s]'  # fmt: skip
    with pytest.raises(KeyError):
        substitute('x{s=~"$nope"}', {})


def test_provisioning_points_at_the_dashboards_and_the_datasource() -> None:
    ds = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())
    (prom,) = ds["datasources"]
    assert prom["type"] == "prometheus" and prom["url"] == "http://prometheus:9090"
    for d in load_dashboards().values():
        (var,) = [v for v in d["templating"]["list"] if v["name"] == "datasource"]
        assert var["current"]["value"] == prom["uid"]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "porte-voix.yaml").read_text())
    (provider,) = providers["providers"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_prometheus_config_scrapes_every_service_with_a_service_label() -> None:
    ensure_debian_tools()
    done = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    cfg = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    for svc in SERVICES:
        job = jobs[svc]
        # The workers export their own `service` label: honour it instead of renaming it.
        assert job["honor_labels"] is True
        assert {"target_label": "service", "replacement": svc} in job["relabel_configs"]
    assert {"nats", "redis"} <= jobs.keys()

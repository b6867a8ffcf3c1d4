"""What the ops tests run and read: Debian's Prometheus and redis exporter, the deploy configs,
Grafana dashboards (panels, template variables) and the PromQL inside them."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from portevoix.runtime.embedded import EmbeddedNats, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD_DIR = DEPLOY / "grafana" / "dashboards"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES_DIR = DEPLOY / "prometheus" / "rules"
RULE_TESTS_DIR = DEPLOY / "prometheus" / "tests"

DEBIAN_PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
}


def ensure_debian_tools() -> None:
    """Install Debian's prometheus (with promtool) and redis exporter when missing; never skip."""
    missing = sorted({pkg for tool, pkg in DEBIAN_PACKAGES.items() if not shutil.which(tool)})
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ]
    for cmd in steps:
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.fail(f"cannot install {missing} with `{' '.join(cmd)}`: {exc}", pytrace=False)
        if done.returncode != 0:
            pytest.fail(
                f"cannot install Debian packages {missing}: `{' '.join(cmd)}` exited "
                f"{done.returncode} (root and Debian's archive are needed):\n{done.stderr[-2000:]}",
                pytrace=False,
            )
    still = sorted(tool for tool in DEBIAN_PACKAGES if not shutil.which(tool))
    if still:
        pytest.fail(f"installed {missing} but {still} still not on PATH", pytrace=False)


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


# -- processes -------------------------------------------------------------------------------
class MonitoredNats(EmbeddedNats):
    """The embedded NATS with its HTTP monitoring port (/varz, /jsz) switched on."""

    name = "nats"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.monitor_port = free_port()

    def command(self) -> list[str]:
        return [*super().command(), "-m", str(self.monitor_port)]

    def varz(self) -> dict[str, Any]:
        data: dict[str, Any] = http_json(f"http://127.0.0.1:{self.monitor_port}/varz")
        return data


@dataclass
class Process:
    """A server binary on a free loopback port, logging to a file."""

    command: list[str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port("127.0.0.1", self.port, timeout_s, self.proc)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{self.command[0]} did not start: {self.log_tail()}") from exc
        return self

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def redis_exporter(redis_url: str, run_dir: Path) -> Process:
    port = free_port()
    return Process(
        [
            "prometheus-redis-exporter",
            "-redis.addr",
            redis_url,
            "-web.listen-address",
            f"127.0.0.1:{port}",
        ],
        port,
        run_dir / "redis-exporter.log",
    )


@dataclass
class Prometheus:
    """A real Prometheus server in a temporary directory; `query` is its HTTP API."""

    config: dict[str, Any]
    run_dir: Path
    port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.run_dir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(self.config, sort_keys=False))
        check = subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
        self.process = Process(
            [
                "prometheus",
                f"--config.file={cfg}",
                f"--storage.tsdb.path={self.run_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            self.port,
            self.run_dir / "prometheus.log",
        ).start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/-/ready") as r:
                if r.status == 200:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready: {self.process.log_tail()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET /api/v1/<path>; HTTP errors (bad queries answer 400) are returned, not raised."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body: dict[str, Any] = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        return body

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", query=expr)

    def metric_names(self) -> set[str]:
        return set(self.api("label/__name__/values")["data"])


def scrape_config_for(
    deploy_config: dict[str, Any],
    *,
    targets: dict[str, str],
    rule_files: list[str],
    interval: str = "1s",
) -> tuple[dict[str, Any], list[str]]:
    """The deployment's Prometheus config pointed at local targets (job → host:port).

    Jobs keep their relabelling, paths and label handling; only discovery changes. Jobs without a
    local target are dropped and returned, so the caller can say why.
    """
    cfg = json.loads(json.dumps(deploy_config))  # deep copy
    cfg["global"]["scrape_interval"] = interval
    cfg["global"]["evaluation_interval"] = interval
    cfg["rule_files"] = rule_files
    kept, dropped = [], []
    for job in cfg["scrape_configs"]:
        name = job["job_name"]
        if name not in targets:
            dropped.append(name)
            continue
        for key in [k for k in job if k.endswith("_sd_configs") or k == "static_configs"]:
            del job[key]
        job["static_configs"] = [{"targets": [targets[name]]}]
        kept.append(job)
    cfg["scrape_configs"] = kept
    return cfg, dropped


# -- dashboards ------------------------------------------------------------------------------
def load_dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(DASHBOARD_DIR.glob("*.json"))
    }


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for p in panels:
        yield p
        yield from iter_panels(p.get("panels", []))


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str
    instant: bool

    def __str__(self) -> str:
        return f"{self.dashboard} › {self.panel} [{self.ref}]"


def panel_queries(dashboards: dict[str, dict[str, Any]]) -> list[PanelQuery]:
    out = []
    for name, d in dashboards.items():
        for p in iter_panels(d.get("panels", [])):
            for t in p.get("targets", []):
                out.append(
                    PanelQuery(
                        name, p.get("title", "?"), t.get("refId", "?"), t["expr"],
                        bool(t.get("instant")),
                    )
                )  # fmt: skip
    return out


def variable_queries(dashboards: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(dashboard, variable name, query) for every query-type template variable."""
    out = []
    for name, d in dashboards.items():
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                q = v["query"]
                out.append((name, v["name"], q["query"] if isinstance(q, dict) else q))
    return out


# Grafana's built-in interval variables, as they would expand for a short test window.
BUILTINS = {
    "__rate_interval": "20s",
    "__interval": "5s",
    "__interval_ms": "5000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}
_VAR = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Expand Grafana variables ($v, ${v}, ${v:fmt}, [[v]]) and built-ins; unknown ones raise."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in variables:
            return variables[name]
        raise KeyError(f"undefined Grafana variable ${name} in {expr!r}")

    return _VAR.sub(repl, expr)


def dashboard_variables(d: dict[str, Any]) -> dict[str, str]:
    """Each template variable at its "All" value (what a first visit shows)."""
    out = {}
    for v in d.get("templating", {}).get("list", []):
        out[v["name"]] = v.get("allValue") or ".*"
    return out


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*?)\s*,\s*(\w+)\s*\)\s*$", re.S)


def parse_label_values(query: str) -> tuple[str, str]:
    m = _LABEL_VALUES.match(query)
    if not m:
        raise ValueError(f"not a label_values(selector, label) query: {query!r}")
    return m.group(1), m.group(2)


# -- PromQL ----------------------------------------------------------------------------------
_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2", "start", "end",
}  # fmt: skip
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# Whole identifiers only (no backtracking into "rat" from "rate("), and not function names.
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:]|\s*\()")


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (after Grafana substitution)."""
    s = _STRINGS.sub('""', expr)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = _GROUPING.sub("", s)
    names = set()
    for m in _IDENT.finditer(s):
        word = m.group(1)
        if word.lower() not in _KEYWORDS:
            names.add(word)
    return names


def load_rules() -> list[dict[str, Any]]:
    rules = []
    for path in sorted(RULES_DIR.glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules

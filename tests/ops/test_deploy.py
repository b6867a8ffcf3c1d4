"""Deployment files, each checked by a real validator: hadolint (Dockerfiles), the compose-spec
JSON schema (compose.yaml), Helm's own SDK (lint + render) with kubernetes-validate (manifests),
nats-server and valkey-server themselves (configs, authentication on)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import nats
import pytest
import redis
import yaml
from nats.errors import Error as NatsError

from portevoix.runtime.embedded import (
    free_port,
    nats_server_binary,
    valkey_server_binary,
    wait_for_port,
)
from portevoix.runtime.platform import SERVICES
from tests.ops.observability import DEPLOY, RULES_DIR, load_dashboards

HERE = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
CHART = DEPLOY / "helm" / "porte-voix"
HADOLINT = str(Path(sys.executable).parent / "hadolint")
COMPOSE_SCHEMA = HERE / "schemas" / "compose-spec.json"
K8S_VERSION = "1.30.0"
CRDS = {"PodMonitor", "PrometheusRule"}


# -- Dockerfiles -----------------------------------------------------------------------------
def _dockerfile(svc: str) -> Path:
    return DEPLOY / "docker" / f"{svc}.Dockerfile"


@pytest.mark.parametrize("svc", SERVICES)
def test_dockerfile_passes_hadolint(svc: str) -> None:
    done = subprocess.run([HADOLINT, str(_dockerfile(svc))], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_rejects_a_careless_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nRUN pip install requests\n")
    assert subprocess.run([HADOLINT, str(bad)], capture_output=True).returncode != 0


@pytest.mark.parametrize("svc", SERVICES)
def test_dockerfile_is_multistage_non_root_with_healthcheck(svc: str) -> None:
    lines = _instructions(_dockerfile(svc).read_text())
    froms = [a for i, a in lines if i == "FROM"]
    assert len(froms) >= 2, "multi-stage: build, then a runtime image without build tools"
    final = lines[max(n for n, (i, _) in enumerate(lines) if i == "FROM") :]
    users = [a for i, a in final if i == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) > 0
    assert any(i == "HEALTHCHECK" for i, _ in final)
    (entry,) = [json.loads(a) for i, a in final if i == "ENTRYPOINT"]
    assert entry == ["python", "-m", f"portevoix_{svc}"]
    for i, args in lines:
        if i == "COPY" and "--from=" not in args:
            *sources, _dest = args.split()
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    assert _dockerfile(svc).with_name(f"{svc}.Dockerfile.dockerignore").exists()


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


# -- compose ---------------------------------------------------------------------------------
def _env_example() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    return {k: v for k, v in pairs}


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error}; an unset required variable raises."""

    def repl(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op in (":-", "-"):
            return arg or ""
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return ""

    return re.sub(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}", repl, text.replace("$$", "\0")).replace(
        "\0", "$"
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(
        _interpolate((DEPLOY / "compose.yaml").read_text(), _env_example())
    )
    return doc


def _schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]


def test_compose_file_follows_the_compose_spec(compose: dict[str, Any]) -> None:
    assert _schema_errors(compose) == []
    # The check can fail: a misspelt key, a wrong type.
    typo = json.loads(json.dumps(compose))
    typo["services"]["api"]["replicas_typo"] = 2
    assert _schema_errors(typo)
    wrong = json.loads(json.dumps(compose))
    wrong["services"]["ingest"]["deploy"]["resources"]["limits"] = ["1.0"]
    assert _schema_errors(wrong)


def test_compose_refuses_to_start_without_secrets() -> None:
    env = _env_example()
    del env["REDIS_PASSWORD"]
    with pytest.raises(KeyError, match="REDIS_PASSWORD"):
        _interpolate((DEPLOY / "compose.yaml").read_text(), env)


def test_compose_runs_a_nats_cluster_redis_monitoring_and_replicated_services(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    env = _env_example()
    nodes = [n for n in services if re.fullmatch(r"nats-\d", n)]
    assert len(nodes) == 3
    for svc in SERVICES:
        s = services[svc]
        assert s["deploy"]["replicas"] >= 2, svc
        assert s["build"]["dockerfile"] == f"deploy/docker/{svc}.Dockerfile"
        e = s["environment"]
        urls = e["NATS_URL"].split(",")
        creds = f"{env['NATS_USER']}:{env['NATS_PASSWORD']}@"
        assert sorted(u.split("@")[1] for u in urls) == [f"{n}:4222" for n in sorted(nodes)]
        assert all(creds in u for u in urls), "services authenticate to NATS"
        assert f":{env['REDIS_PASSWORD']}@redis:6379" in e["REDIS_URL"]
        assert e["PORTEVOIX_VAULT_MASTER_KEY"] == env["PORTEVOIX_VAULT_MASTER_KEY"]
        if svc == "api":
            assert e["PORTEVOIX_HOST"] == "0.0.0.0" and "PORTEVOIX_ADMIN_TOKEN" in e
            assert "/v1/ready" in " ".join(s["healthcheck"]["test"])
        else:
            assert e["PORTEVOIX_METRICS_HOST"] == "0.0.0.0"
            assert e["PORTEVOIX_METRICS_PORT"] == "9100"
    assert "--requirepass" in " ".join(services["redis"]["command"])
    for name in ("prometheus", "grafana", "redis-exporter", "nats-exporter-1"):
        assert name in services
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in services["prometheus"]["volumes"]
    for s in services.values():
        for vol in s.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (DEPLOY / src).exists(), f"bind mount {src} missing"


# -- NATS and Valkey configs, run for real ---------------------------------------------------
def _nats_env(tmp: Path) -> dict[str, str]:
    env = {
        "NATS_SERVER_NAME": "nats-1", "NATS_USER": "pv", "NATS_PASSWORD": "pv-secret",
        "NATS_SYS_USER": "sys", "NATS_SYS_PASSWORD": "sys-secret",
        "NATS_CLUSTER_USER": "route", "NATS_CLUSTER_PASSWORD": "route-secret",
    }  # fmt: skip
    for n in (1, 2, 3):  # peers that do not exist: the node runs alone
        env[f"NATS_ROUTE_{n}"] = f"nats-route://route:route-secret@127.0.0.1:{free_port()}"
    return env


@pytest.fixture
def nats_node(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port, cluster = free_port(), free_port()
    # The deployed file, with only the JetStream directory moved into the test's temp dir.
    conf = tmp_path / "nats.conf"
    conf.write_text(
        (DEPLOY / "nats" / "nats.conf").read_text().replace("/data/jetstream", str(tmp_path / "js"))
    )
    cmd = [
        nats_server_binary(), "-c", str(conf),
        "-a", "127.0.0.1", "-p", str(port), "-m", str(free_port()),
        "--cluster", f"nats://127.0.0.1:{cluster}",
    ]  # fmt: skip
    with open(tmp_path / "nats.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=_nats_env(tmp_path), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, 20, proc)
        yield f"127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(10)


def test_nats_config_is_valid_and_needs_every_variable(tmp_path: Path) -> None:
    conf = str(DEPLOY / "nats" / "nats.conf")
    ok = subprocess.run([nats_server_binary(), "-c", conf, "-t"], env=_nats_env(tmp_path),
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    missing = {k: v for k, v in _nats_env(tmp_path).items() if k != "NATS_PASSWORD"}
    bad = subprocess.run([nats_server_binary(), "-c", conf, "-t"], env=missing,
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode != 0 and "NATS_PASSWORD" in bad.stdout + bad.stderr


def test_nats_node_refuses_anonymous_clients(
    nats_node: tuple[str, subprocess.Popen[bytes]],
) -> None:
    addr, _ = nats_node

    async def connect(url: str) -> bool:
        try:
            nc = await nats.connect(url, allow_reconnect=False, connect_timeout=3,
                                    max_reconnect_attempts=0)  # fmt: skip
        except (NatsError, OSError):
            return False
        ok = nc.is_connected
        await nc.close()
        return ok

    assert asyncio.run(connect(f"nats://pv:pv-secret@{addr}")) is True
    assert asyncio.run(connect(f"nats://{addr}")) is False
    assert asyncio.run(connect(f"nats://pv:wrong@{addr}")) is False


def test_valkey_config_persists_refuses_eviction_and_needs_the_password(tmp_path: Path) -> None:
    port = free_port()
    cmd = [
        valkey_server_binary(), str(DEPLOY / "redis" / "valkey.conf"),
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
        "--requirepass", "redis-secret", "--daemonize", "no",
    ]  # fmt: skip
    with open(tmp_path / "valkey.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, 20, proc)
        anonymous = redis.Redis(port=port, socket_timeout=3)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        client = redis.Redis.from_url(f"redis://:redis-secret@127.0.0.1:{port}/0")
        assert client.ping()
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
        anonymous.close()
    finally:
        proc.terminate()
        proc.wait(10)


# -- Helm chart ------------------------------------------------------------------------------
FULL_VALUES: dict[str, Any] = {
    "secret": {"create": True, "natsUrl": "nats://pv:s@nats-0.nats:4222",
               "redisUrl": "redis://:s@valkey:6379/0", "adminToken": "t",
               "vaultMasterKey": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
    "metrics": {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                "grafanaDashboards": {"enabled": True}},
    "image": {"registry": "registry.example.org/acme", "tag": "1.2.3"},
}  # fmt: skip
EXISTING_SECRET: dict[str, Any] = {"secret": {"existingSecret": "porte-voix-connections"}}


def _render(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values, name="pv", namespace="porte-voix", is_install=True)
    docs: list[dict[str, Any]] = []
    for path, text in out.items():
        if path.endswith(".yaml"):
            docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def test_chart_lints_clean() -> None:
    for values in (EXISTING_SECRET, FULL_VALUES):
        report = helm.lint(CHART, values, strict=True, kube_version=f"v{K8S_VERSION}")
        errors = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not errors, errors


@pytest.mark.parametrize("values", [EXISTING_SECRET, FULL_VALUES], ids=["existing", "full"])
def test_rendered_manifests_validate_against_kubernetes_schemas(values: dict[str, Any]) -> None:
    docs = _render(values)
    assert docs
    for doc in docs:
        if doc["kind"] in CRDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kubernetes_validate_rejects_a_wrong_manifest() -> None:
    (dep, *_) = [d for d in _render(EXISTING_SECRET) if d["kind"] == "Deployment"]
    dep["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSION, strict=True)


def test_every_service_is_deployed_with_probes_resources_secrets_and_autoscaling() -> None:
    docs = _render(EXISTING_SECRET)
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    assert "Secret" not in by_kind, "an existing Secret is referenced, not rendered"
    for svc in SERVICES:
        dep = by_kind["Deployment"][f"pv-porte-voix-{svc}"]
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (c,) = pod["containers"]
        assert {"livenessProbe", "readinessProbe", "startupProbe"} <= c.keys()
        assert c["resources"]["requests"] and c["resources"]["limits"]
        env = {e["name"]: e for e in c["env"]}
        for var in ("NATS_URL", "REDIS_URL", "PORTEVOIX_VAULT_MASTER_KEY"):
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "porte-voix-connections" and "value" not in env[var]
        assert env["PORTEVOIX_STREAM_REPLICAS"]["value"] == "3"
        if svc == "api":
            assert c["readinessProbe"]["httpGet"]["path"] == "/v1/ready"
            assert c["livenessProbe"]["httpGet"]["path"] == "/v1/health"
            assert "secretKeyRef" in env["PORTEVOIX_ADMIN_TOKEN"]["valueFrom"]
        else:
            assert env["PORTEVOIX_METRICS_HOST"]["value"] == "0.0.0.0"
            assert c["livenessProbe"]["httpGet"]["path"] == "/metrics"
        hpa = by_kind["HorizontalPodAutoscaler"][f"pv-porte-voix-{svc}"]
        assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
        assert hpa["spec"]["minReplicas"] >= 2
        assert f"pv-porte-voix-{svc}" in by_kind["PodDisruptionBudget"]


def test_chart_ships_the_same_rules_and_dashboards() -> None:
    docs = _render(FULL_VALUES)
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    expected = yaml.safe_load((RULES_DIR / "porte-voix.rules.yml").read_text())
    assert rule["spec"] == expected
    maps = {
        k: json.loads(v) for d in docs if d["kind"] == "ConfigMap" for k, v in d["data"].items()
    }
    assert maps == load_dashboards()
    deps = [d for d in docs if d["kind"] == "Deployment"]
    images = {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deps}
    assert images == {f"registry.example.org/acme/porte-voix/{s}:1.2.3" for s in SERVICES}


def test_chart_refuses_to_render_without_connection_secrets() -> None:
    with pytest.raises(helm.errors.HelmError, match="existingSecret"):
        _render({})

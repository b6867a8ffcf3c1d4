"""Alert rules: promtool parses them, their unit tests pass, and every alert is tested firing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ops.observability import (
    RULE_TESTS_DIR,
    RULES_DIR,
    ensure_debian_tools,
    load_rules,
)

RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
TEST_FILES = sorted(RULE_TESTS_DIR.glob("*.test.yml"))


@pytest.fixture(scope="module", autouse=True)
def _promtool() -> None:
    ensure_debian_tools()


def _promtool_run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_every_rule_file_parses() -> None:
    assert RULE_FILES
    done = _promtool_run("check", "rules", *map(str, RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check above could fail: an invalid expression is refused."""
    bad = tmp_path / "bad.rules.yml"
    bad.write_text(
        "groups:\n- name: x\n  rules:\n  - alert: Broken\n    expr: sum by (service (up)\n"
    )
    assert _promtool_run("check", "rules", str(bad)).returncode != 0


def test_rule_unit_tests_pass() -> None:
    assert TEST_FILES
    for path in TEST_FILES:
        done = _promtool_run("test", "rules", path.name, cwd=path.parent)
        assert done.returncode == 0, f"{path.name}:\n{done.stdout}{done.stderr}"


def test_every_alert_has_a_firing_unit_test() -> None:
    fired: set[str] = set()
    covered_files: set[str] = set()
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text())
        covered_files |= {(path.parent / f).resolve().name for f in doc["rule_files"]}
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    assert {p.name for p in RULE_FILES} <= covered_files
    alerts = {r["alert"] for r in load_rules() if "alert" in r}
    assert alerts - fired == set(), f"alerts never tested firing: {sorted(alerts - fired)}"


def test_every_alert_says_what_and_how_bad() -> None:
    for rule in load_rules():
        if "alert" not in rule:
            continue
        assert rule["alert"].startswith("PorteVoix"), rule["alert"]
        assert rule.get("labels", {}).get("severity") in {"critical", "warning", "info"}, rule
        assert {"summary", "description"} <= set(rule.get("annotations", {})), rule["alert"]

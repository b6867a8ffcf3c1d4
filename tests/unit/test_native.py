"""Scoring's hot modules compiled with mypyc (portevoix/native.py): used when current, never
when their sources changed, and scoring the same as the sources do."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import portevoix_scoring
from portevoix import native

GROUP = native.GROUPS["scoring"]
PACKAGE_DIR = Path(portevoix_scoring.__file__).parent


def _compiler() -> bool:
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    return bool(cc) and shutil.which(cc[0]) is not None


def _python(code: str, *, path: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "PORTEVOIX_NATIVE"} | env
    if path is not None:  # a copy of the package, found first
        environ["PYTHONPATH"] = os.pathsep.join([str(path), environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                          text=True, check=True, timeout=120)  # fmt: skip


WHERE = "import json, portevoix_scoring.store as s, portevoix_scoring.domain.scorer as d; " \
        "print(json.dumps([s.__file__, d.__file__]))"  # fmt: skip


@pytest.mark.parametrize("name", sorted(native.GROUPS))
def test_the_build_is_current_and_its_extensions_load(name: str) -> None:
    # `make test` compiles first (`make native`); a machine with no C compiler records why
    # the build failed, and runs the sources.
    group = native.GROUPS[name]
    record = native.record_of(group)
    assert record is not None, "python -m portevoix.native ensure has not run"
    assert record["sources"] == group.sources_digest(), "sources changed: run `make native`"
    modules = [f"{group.package}.{m}" for m in group.modules]
    code = f"import importlib, json; print(json.dumps([importlib.import_module(m).__file__ " \
           f"for m in {modules!r}]))"  # fmt: skip
    files = json.loads(_python(code).stdout)
    if _compiler():
        assert record["built"] is True, record.get("error")
        assert native.status(name) == "compiled"
        assert all(f.endswith(".so") for f in files), files
    else:
        assert record["built"] is False and record["error"]
        assert all(f.endswith(".py") for f in files), files


@pytest.mark.parametrize("name", sorted(native.GROUPS))
def test_the_suite_itself_runs_what_the_services_run(name: str) -> None:
    group = native.GROUPS[name]
    for module in group.modules:  # imported by the tests that use them; here in any case
        __import__(f"{group.package}.{module}")
    if _compiler():
        assert native.mode(name) == "compiled"
    else:
        assert native.mode(name).startswith("interpreted (build failed")


def test_an_edited_source_turns_the_whole_group_back_to_sources(tmp_path: Path) -> None:
    copy = tmp_path / "portevoix_scoring"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    # The copy as built: its extensions load (when there are any).
    before = json.loads(_python(WHERE, path=tmp_path).stdout)
    assert all(str(tmp_path) in f for f in before), before
    # One module edited: an extension would run the old code, so none of the group is used.
    with (copy / "domain" / "scorer.py").open("a") as f:
        f.write("\nEDITED = True\n")
    done = _python(WHERE + "; print(d.EDITED)", path=tmp_path)
    after, edited = done.stdout.splitlines()
    assert edited == "True"
    assert all(f.endswith(".py") and str(tmp_path) in f for f in json.loads(after))
    if any(copy.rglob("*.so")):
        assert "sources changed since the build" in done.stderr


def test_portevoix_native_0_runs_the_sources() -> None:
    files = json.loads(_python(WHERE, PORTEVOIX_NATIVE="0").stdout)
    assert all(f.endswith(".py") for f in files), files


SCORE = """
import json, orjson
from datetime import UTC, datetime
from zoneinfo import ZoneInfo
from portevoix import native
from portevoix.simulation.generator import SimulationConfig, simulate
from portevoix_scoring.domain.table import default_table
from portevoix_scoring.offline import OfflineScoring

config = SimulationConfig(start=datetime(2026, 11, 2, 8, tzinfo=UTC), seed=11, events=6000,
                          ambassadors=60)
offline = OfflineScoring(default_table(), ZoneInfo("Europe/Paris"))
offline.feed(orjson.dumps(e) for e in simulate(config))
print(json.dumps({"mode": native.mode("scoring"), "report": offline.report()}, sort_keys=True))
"""


def test_compiled_and_interpreted_scoring_give_the_same_report() -> None:
    # The same simulated programme (colleagues, rings, caps, held and blocked posts) through
    # `portevoix score`'s code, once per mode: every total, ledger-derived count and badge equal.
    compiled = json.loads(_python(SCORE).stdout)
    interpreted = json.loads(_python(SCORE, PORTEVOIX_NATIVE="0").stdout)
    assert interpreted["mode"] == "interpreted (PORTEVOIX_NATIVE=0)"
    if _compiler():
        assert compiled["mode"] == "compiled"
    assert compiled["report"]["totals"], "the simulation scored nobody"
    assert compiled["report"] == interpreted["report"]


def test_the_build_types_the_code_as_the_type_checker_does() -> None:
    # The build runs mypy on a copy (an installed package has no pyproject.toml): same settings.
    import configparser
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["tool"]
    build = configparser.ConfigParser()
    build.read_string(native.MYPY_CONFIG)
    assert build["mypy"]["plugins"].split(",") == project["mypy"]["plugins"]
    assert (
        build.getboolean("mypy", "ignore_missing_imports")
        is project["mypy"]["ignore_missing_imports"]
    )


def test_portevoix_native_may_name_the_groups_to_compile() -> None:
    assert native.status("scoring") != "interpreted (PORTEVOIX_NATIVE=other)"
    files = json.loads(_python(WHERE, PORTEVOIX_NATIVE="other").stdout)
    assert all(f.endswith(".py") for f in files), files
    both = json.loads(_python(WHERE, PORTEVOIX_NATIVE="other,scoring").stdout)
    assert all(f.endswith(".so") for f in both) == _compiler(), both

"""Hot modules compiled to C with mypyc, used only while they match their sources.

Scoring's per-event work (the points rules, the batch writer, the pipeline) is plain typed
Python; mypyc compiles the same files into C extensions that sit next to them. Python imports an
extension before a `.py` of the same name, so an edited source would silently lose to an old
build: `use_if_current` (called by the package's `__init__`) compares the build's record of its
sources with the files on disk and, if they differ or `PORTEVOIX_NATIVE` says so (`0`: none
compiled; `scoring`: only that group; `1`, the default: all), loads the sources
instead. A group is all or nothing: compiled modules call each other directly in C, so one stale
module means the whole group runs from source. Modules outside the group are called through
Python, so their changes need no rebuild; the exception would be a `typing.Final` constant
imported from one (mypyc copies its value in): the group imports none.

`python -m portevoix.native ensure` compiles, in place, every group whose build is missing or
older than its sources (`make run`, `make test` and `make bench` run it; a missing compiler
leaves the interpreted modules, with a note, and is not retried until the sources change);
`build` compiles regardless; `status` says what a process would use.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

log = logging.getLogger("portevoix.native")
PYTHON = sys.version.split()[0]  # an extension only loads into the Python it was built for
RECORD = "native-build.json"  # in the package's directory, next to the extensions
# pyproject.toml's [tool.mypy] as the build needs it (an installed package has no pyproject):
# the pydantic plugin types the events' constructors as the type checker does. Not `strict`:
# its extra checks change nothing compiled, and an install without the test extra's stub
# packages (types-PyYAML) would fail them (`make typecheck` runs them).
MYPY_CONFIG = "[mypy]\nplugins = pydantic.mypy\nignore_missing_imports = True\n"


@dataclass(frozen=True)
class Group:
    """Modules compiled together into one shared library (`<package>._compiled__mypyc`)."""

    package: str
    modules: tuple[str, ...]  # dotted names, relative to the package

    @property
    def package_dir(self) -> Path:
        """Where the package is imported from (a copy elsewhere checks its own files)."""
        package = sys.modules.get(self.package)
        if package is not None and getattr(package, "__path__", None):
            return Path(next(iter(package.__path__)))
        spec = importlib.util.find_spec(self.package)
        assert spec is not None and spec.submodule_search_locations, self.package
        return Path(next(iter(spec.submodule_search_locations)))

    @property
    def home(self) -> Path:
        return self.package_dir.parent

    def source(self, module: str) -> Path:
        return self.package_dir.joinpath(*module.split(".")).with_suffix(".py")

    def sources_digest(self) -> str:
        digest = hashlib.sha256()
        for module in self.modules:
            digest.update(module.encode() + b"\0" + self.source(module).read_bytes() + b"\0")
        return digest.hexdigest()


# Tried and left out. Moderation: with its detectors' closures left interpreted (mypyc cannot
# compile their dynamic classes), the compiled engine checked 3,900 posts/s against 6,100 from
# source. Ingest (normalisation, directory, pipeline): its handle path took 15 % less CPU per
# event alone, but in the end-to-end bench the service used as much CPU and 26 MB more memory
# (176 against 150 MB, against a 150 MB target), for reasons not found yet.
GROUPS = {
    "scoring": Group(
        "portevoix_scoring",
        (
            "domain.ambassador_state",
            "domain.post_state",
            "domain.scorer",
            "state_cache",
            "store",
            "pipeline",
        ),
    ),
}


def _build_key() -> dict[str, str]:
    """What else a build depends on: an extension only loads into the Python it was built for."""
    try:
        from mypy.version import __version__ as mypy_version
    except ImportError:  # pragma: no cover - the record is then only read, never written
        mypy_version = "none"
    return {"python": PYTHON, "abi": sysconfig.get_config_var("SOABI") or "",
            "mypy": mypy_version}  # fmt: skip


def record_of(group: Group) -> dict[str, object] | None:
    try:
        data = json.loads((group.package_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _packages(wanted: str) -> set[str]:
    """`PORTEVOIX_NATIVE=scoring,ingest`: the packages of the groups named."""
    return {GROUPS[n].package for n in wanted.split(",") if n in GROUPS}


def stale_reason(group: Group) -> str | None:
    """Why the group's extensions must not be used (None: they are current and wanted)."""
    wanted = os.environ.get("PORTEVOIX_NATIVE", "1")
    if wanted == "0" or (wanted != "1" and group.package not in _packages(wanted)):
        return f"PORTEVOIX_NATIVE={wanted}"
    record = record_of(group)
    if record is None:
        return "not built"
    if not record.get("built"):
        return f"build failed: {record.get('error', '?')}"
    return _not_for_these(record, group)


def _not_for_these(record: dict[str, object], group: Group) -> str | None:
    """Why a build (or a failed one) was not made of these sources by this Python."""
    if record.get("python") != PYTHON:
        return f"built for Python {record.get('python')}"
    if record.get("sources") != group.sources_digest():
        return "sources changed since the build (make native)"
    return None


def _label(reason: str | None) -> str:
    return "compiled" if reason is None else f"interpreted ({reason})"


class _Sources(importlib.abc.MetaPathFinder):
    """Finds the group's modules as their `.py` files, ahead of the extensions beside them."""

    def __init__(self, group: Group) -> None:
        self._paths = {f"{group.package}.{m}": str(group.source(m)) for m in group.modules}

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self._paths.get(fullname)
        return importlib.util.spec_from_file_location(fullname, source) if source else None


_in_use: dict[str, str | None] = {}  # group -> why it runs from source (None: compiled)


def use_if_current(name: str) -> None:
    """Called by the package's `__init__`, before any of its modules is imported."""
    group = GROUPS[name]
    reason = stale_reason(group)
    _in_use[name] = reason
    if reason is None:
        return
    if any(group.package_dir.rglob("*.so")) and not reason.startswith("PORTEVOIX_NATIVE="):
        log.warning("compiled %s modules not used: %s", group.package, reason)
    sys.meta_path.insert(0, _Sources(group))


def status(name: str) -> str:
    """What a process importing the group now would run: "compiled" or "interpreted (why)"."""
    return _label(stale_reason(GROUPS[name]))


def mode(name: str) -> str:
    """ "compiled" or "interpreted (<why>)" for the group, as imported in this process."""
    group = GROUPS[name]
    first = sys.modules.get(f"{group.package}.{group.modules[0]}")
    if first is None:
        return _label(_in_use[name]) if name in _in_use else status(name)
    compiled = (first.__file__ or "").endswith((".so", ".pyd"))
    return _label(None if compiled else _in_use.get(name) or "no build")


_BUILD = """
import sys
from setuptools import setup
from mypyc.build import mypycify
paths, group, tmp = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
setup(name=group, packages=[], ext_modules=mypycify(paths, group_name=group, target_dir=tmp + "/c"),
      script_args=["build_ext", "--inplace", "--build-temp", tmp + "/o", "--build-lib", tmp + "/lib",
                   "-j", "2"])
"""


def build(name: str, *, quiet: bool = True) -> dict[str, object]:
    """Compile the group and put its extensions beside its sources; write its record (also
    when the build fails: the record says why, and the sources are used)."""
    import shutil  # build-only: kept out of every service's import
    import subprocess
    import tempfile

    group = GROUPS[name]
    record: dict[str, object] = {"sources": group.sources_digest(), **_build_key()}
    # Record first, extensions next: a process starting meanwhile finds no record and runs the
    # sources, never a mix of old, new and missing extensions. The record comes back last.
    (group.package_dir / RECORD).unlink(missing_ok=True)
    for old in group.package_dir.rglob("*.so"):
        old.unlink()
    # Built in a copy of the package and of `portevoix` (its imports), so that mypy sees the
    # same sources from a checkout and from site-packages (where it would take every module
    # installed beside them for the project's own, and refuses untyped installed packages);
    # the C sources, objects and mypy's cache stay in the temporary directory too.
    with tempfile.TemporaryDirectory(prefix="pv-native-") as tmp:
        src = Path(tmp) / "src"
        skip = shutil.ignore_patterns("__pycache__", "*.so", RECORD)
        shutil.copytree(group.package_dir, src / group.package, ignore=skip)
        shutil.copytree(Path(__file__).parent, src / "portevoix", ignore=skip)
        (src / "mypy.ini").write_text(MYPY_CONFIG)
        paths = ",".join(
            str(Path(group.package, *m.split(".")).with_suffix(".py")) for m in group.modules
        )
        try:
            done = subprocess.run(
                [sys.executable, "-c", _BUILD, paths, f"{group.package}._compiled", tmp],
                cwd=src,
                env={**os.environ, "MYPY_CACHE_DIR": f"{tmp}/mypy"},
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError as exc:
            done = subprocess.CompletedProcess([], 1, "", str(exc))
        if done.returncode == 0:
            for built in (src / group.package).rglob("*.so"):
                shutil.copy2(built, group.package_dir / built.relative_to(src / group.package))
            record["built"] = True
        else:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            record |= {"built": False, "error": " | ".join(tail) or f"exit {done.returncode}"}
    if not quiet:
        sys.stdout.write((done.stdout or "") + (done.stderr or ""))
    (group.package_dir / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    return record


def needs_build(group: Group) -> bool:
    """No current build, and no failed one for these same sources (not retried each time)."""
    record = record_of(group)
    return record is None or _not_for_these(record, group) is not None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "status"
    if command in ("build", "ensure"):
        from concurrent.futures import ThreadPoolExecutor

        names = [n for n, g in GROUPS.items() if command == "build" or needs_build(g)]
        for name in GROUPS:
            if name not in names:
                print(f"{name}: {status(name)}")
        for name in names:
            print(f"{name}: compiling {len(GROUPS[name].modules)} modules with mypyc")
        # One compiler per group, side by side (each mostly compiles one large C file).
        with ThreadPoolExecutor(max(1, len(names))) as pool:
            records = list(pool.map(lambda n: build(n, quiet="-v" not in args), names))
        failed = False
        for name, record in zip(names, records, strict=True):
            if record["built"]:
                print(f"{name}: compiled")
            else:
                failed = True
                print(f"{name}: left interpreted, the build failed: {record['error']}")
        # --strict (container images): a failed build is an error, not a slower service.
        return 1 if failed and "--strict" in args else 0
    if command == "status":
        for name in GROUPS:
            print(f"{name}: {status(name)}")
        return 0
    print(
        "usage: python -m portevoix.native [ensure | build [-v] [--strict] | status]",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())

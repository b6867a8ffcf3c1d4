"""Load a charter from a YAML file or text, validate it and compile it (or raise CharterError)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .compiler import CompiledCharter, compile_charter
from .errors import CharterError
from .model import Charter

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_CHARTER_PATH = DATA_DIR / "default.yaml"


def _looks_like_path(value: str) -> bool:
    return "\n" not in value and (
        value.endswith((".yaml", ".yml", ".json")) or os.path.exists(value)
    )


def _format_loc(loc: tuple[int | str, ...], raw: Any) -> tuple[str | None, str]:
    """Return (rule id, dotted field path) for a pydantic error location."""
    rule_id: str | None = None
    parts: list[str] = []
    rest = list(loc)
    if len(rest) >= 2 and rest[0] == "rules" and isinstance(rest[1], int):
        idx = rest[1]
        rules = raw.get("rules") if isinstance(raw, dict) else None
        if isinstance(rules, list) and idx < len(rules) and isinstance(rules[idx], dict):
            rule_id = str(rules[idx].get("id", f"#{idx}"))
        else:
            rule_id = f"#{idx}"
        rest = rest[2:]
    for p in rest:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + p)
    return rule_id, "".join(parts) or "(top level)"


def _validation_error(exc: ValidationError, raw: Any, source: str) -> CharterError:
    errors = exc.errors()
    first = errors[0]
    rule_id, path = _format_loc(tuple(first["loc"]), raw)
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    msg = first["msg"]
    if first["type"] == "enum" and "principle" in path:
        msg = "unknown principle " + repr(first.get("input")) + "; " + msg
    return CharterError(f"{path}: {msg}{more}", source=source, rule=rule_id)


def load_charter_text(text: str) -> Charter:
    """Load a charter from YAML text received from outside (API, bus): never read as a path,
    and files it names resolve only against the shipped data directory."""
    return load_charter(text, _untrusted=True)


def load_charter(path_or_text: str | Path, *, _untrusted: bool = False) -> Charter:
    """Load a charter from a path or from YAML text; raise ``CharterError`` if it is broken."""
    if not _untrusted and (isinstance(path_or_text, Path) or _looks_like_path(path_or_text)):
        path = Path(path_or_text)
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CharterError(f"cannot read charter: {exc.strerror}", source=source) from None
        base_dirs: tuple[str, ...] = (str(path.parent), str(DATA_DIR))
    else:
        text, source = str(path_or_text), "<text>"
        base_dirs = (str(DATA_DIR),) if _untrusted else (os.getcwd(), str(DATA_DIR))
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CharterError(f"invalid YAML{where}: {problem}", source=source) from None
    if not isinstance(raw, dict):
        raise CharterError(
            "a charter must be a YAML mapping (version, name, rules…)", source=source
        )
    try:
        charter = Charter.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(exc, raw, source) from None
    attach(charter, compile_charter(charter, base_dirs, source), base_dirs, source)
    return charter


def attach(
    charter: Charter, compiled: CompiledCharter, base_dirs: tuple[str, ...], source: str
) -> None:
    charter._compiled = compiled
    charter._base_dirs = base_dirs
    charter._source = source


def compiled_of(charter: Charter) -> CompiledCharter:
    """The compiled form, compiling a charter built in code on first use."""
    compiled = charter._compiled
    if compiled is None:
        base_dirs = charter._base_dirs or (os.getcwd(), str(DATA_DIR))
        compiled = compile_charter(charter, base_dirs, charter._source)
        attach(charter, compiled, base_dirs, charter._source)
    assert isinstance(compiled, CompiledCharter)
    return compiled


@lru_cache(maxsize=1)
def default_charter() -> Charter:
    """The charter shipped with Porte-Voix (French and English, the nine principles)."""
    return load_charter(DEFAULT_CHARTER_PATH)

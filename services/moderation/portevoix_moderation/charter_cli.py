"""``portevoix charter test|check``: run a charter's examples, or check posts from JSONL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, TextIO

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .charter import Charter, CharterEngine, CharterError, InMemoryPostHistory
from .charter.evaluation import record_to_post
from .charter.examples import run_examples
from .charter.loader import default_charter, load_charter

charter_app = typer.Typer(help="Charter moderation: test a charter, check posts.")


def _load(path: Path | None) -> Charter:
    try:
        return load_charter(path) if path is not None else default_charter()
    except CharterError as exc:
        typer.echo(f"charter error: {exc}", err=True)
        raise typer.Exit(2) from None


@charter_app.command("test")
def test_cmd(
    file: Annotated[
        Path | None, typer.Argument(help="Charter YAML (default charter if omitted)")
    ] = None,
) -> None:
    """Run every rule's must_match / must_not_match examples; exit 1 if one fails."""
    charter = _load(file)
    results = run_examples(charter)
    table = Table(title=f"{charter.name} — version {charter.version}")
    for col in ("rule", "must_match", "must_not_match", "status"):
        table.add_column(col)
    failures = [r for r in results if not r.passed]
    for rule in charter.rules:
        mine = [r for r in results if r.rule == rule.id]
        ok_m = sum(r.passed for r in mine if r.expectation == "must_match")
        ok_n = sum(r.passed for r in mine if r.expectation == "must_not_match")
        n_m = sum(1 for r in mine if r.expectation == "must_match")
        n_n = len(mine) - n_m
        status = "[green]ok[/]" if ok_m == n_m and ok_n == n_n else "[red]FAIL[/]"
        table.add_row(rule.id, f"{ok_m}/{n_m}", f"{ok_n}/{n_n}", status)
    console = Console()
    console.print(table)
    for f in failures:
        verb = "did not fire on" if f.expectation == "must_match" else "fired on"
        console.print(f"[red]✗[/] {escape(f.rule)} {verb}: {escape(repr(f.text))}", highlight=False)
    console.print(f"{len(results) - len(failures)}/{len(results)} examples passed")
    raise typer.Exit(1 if failures else 0)


def _line_result(engine: CharterEngine, rec: Any, lineno: int) -> dict[str, Any]:
    if not isinstance(rec, dict):
        return {"id": None, "error": f"line {lineno}: expected a JSON object"}
    rid = rec.get("id")
    if rid is None or not isinstance(rec.get("text"), str):
        return {"id": rid, "error": f"line {lineno}: 'id' and a string 'text' are required"}
    if rec.get("kind", "original") not in ("original", "relay"):
        return {"id": rid, "error": f"line {lineno}: 'kind' must be 'original' or 'relay'"}
    try:
        decision = engine.check(record_to_post(rec, post_id=str(rid)))
    except (TypeError, ValueError) as exc:
        return {"id": rid, "error": f"line {lineno}: {exc}"}
    return {
        "id": rid,
        "verdict": decision.verdict,
        "lang": decision.lang,
        "decision_id": decision.decision_id,
        "charter_version": decision.charter_version,
        "findings": [f.to_dict() for f in decision.findings],
    }


def _check_stream(engine: CharterEngine, stream: TextIO) -> int:
    errors = 0
    out = sys.stdout
    for lineno, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            result: dict[str, Any] = {"id": None, "error": f"line {lineno}: invalid JSON: {exc}"}
        else:
            result = _line_result(engine, rec, lineno)
        errors += "error" in result
        out.write(orjson.dumps(result).decode() + "\n")
    out.flush()
    return errors


@charter_app.command("check")
def check_cmd(
    jsonl: Annotated[str, typer.Option("--jsonl", help="Posts as JSON lines, '-' for stdin")],
    charter_file: Annotated[Path | None, typer.Option("--charter", help="Charter YAML")] = None,
    history: Annotated[bool, typer.Option(help="Compare posts with the previous ones")] = True,
) -> None:
    """Print one JSON line per input line: {"id","verdict","findings":[…]} or {"id","error"}."""
    charter = _load(charter_file)
    engine = CharterEngine(charter, history=InMemoryPostHistory() if history else None)
    if jsonl == "-":
        errors = _check_stream(engine, sys.stdin)
    else:
        try:
            with open(jsonl, encoding="utf-8") as fh:
                errors = _check_stream(engine, fh)
        except OSError as exc:
            typer.echo(f"cannot read {jsonl}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
    if errors:
        typer.echo(f"{errors} malformed line(s)", err=True)
        raise typer.Exit(1)

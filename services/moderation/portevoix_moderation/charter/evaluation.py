"""Per-family precision/recall of a charter on a labelled corpus (tests and benchmark)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from .context import PostToCheck
from .engine import CharterEngine, Decision
from .model import Charter

CLEAN = "clean"


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def record_to_post(rec: dict[str, Any], post_id: str | None = None) -> PostToCheck:
    occurred = rec.get("occurred_at")
    return PostToCheck(
        post_id=str(post_id if post_id is not None else rec["id"]),
        text=str(rec["text"]),
        kind=rec.get("kind", "original"),
        network=rec.get("network"),
        lang=rec.get("lang"),
        author_registered=bool(rec.get("author_registered", True)),
        author_consenting=bool(rec.get("author_consenting", True)),
        campaign=rec.get("campaign"),
        ambassador_id=rec.get("ambassador_id"),
        occurred_at=datetime.fromisoformat(occurred) if occurred else None,
    )


def families_of(charter: Charter, decision: Decision) -> set[str]:
    """Families of the enforced (non-shadow) findings; ``clean`` when there is none."""
    fams = {charter.rule(f.rule).family or f.rule for f in decision.findings if not f.shadow}
    return fams or {CLEAN}


def _pairs(
    charter: Charter, records: Iterable[dict[str, Any]]
) -> Iterator[tuple[dict[str, Any], Decision]]:
    engine = CharterEngine(charter)  # stateless: corpus lines are independent
    for rec in records:
        yield rec, engine.check(record_to_post(rec), record=False)


def evaluate(charter: Charter, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Return ``{"families": {f: {precision, recall, tp, fp, fn}}, "verdict_accuracy": x}``."""
    counts: dict[str, dict[str, int]] = {}
    good_verdicts = 0
    errors: list[dict[str, Any]] = []
    for rec, d in _pairs(charter, records):
        expected = set(rec["families"]) or {CLEAN}
        predicted = families_of(charter, d)
        for fam in expected | predicted:
            c = counts.setdefault(fam, {"tp": 0, "fp": 0, "fn": 0})
            if fam in expected and fam in predicted:
                c["tp"] += 1
            elif fam in predicted:
                c["fp"] += 1
            else:
                c["fn"] += 1
        ok = d.verdict == rec["expected_verdict"]
        good_verdicts += ok
        if not ok or expected != predicted:
            errors.append(
                {
                    "id": rec["id"],
                    "expected": sorted(expected),
                    "predicted": sorted(predicted),
                    "expected_verdict": rec["expected_verdict"],
                    "verdict": d.verdict,
                }
            )
    fams = {}
    for fam, c in sorted(counts.items()):
        tp, fp, fn = c["tp"], c["fp"], c["fn"]
        fams[fam] = {
            "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
            **c,
        }
    return {
        "families": fams,
        "verdict_accuracy": round(good_verdicts / max(1, len(records)), 4),
        "errors": errors,
    }

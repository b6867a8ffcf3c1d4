from pathlib import Path

import pytest

from portevoix_moderation.charter import Charter
from portevoix_moderation.charter.evaluation import evaluate, read_jsonl

CORPUS = Path(__file__).parent / "corpus" / "eval.jsonl"
REQUIRED = {
    "insult",
    "personal_data",
    "confidentiality",
    "spam",
    "bait",
    "shouting",
    "disclosure",
    "language",
    "clean",
}


@pytest.fixture(scope="module")
def report(charter: Charter) -> dict:  # type: ignore[type-arg]
    return evaluate(charter, read_jsonl(CORPUS))


def test_corpus_is_large_labelled_and_bilingual() -> None:
    records = read_jsonl(CORPUS)
    assert len(records) >= 150
    assert len({r["id"] for r in records}) == len(records)
    for r in records:
        assert set(r) >= {"id", "text", "kind", "expected_verdict", "families"}
        assert r["expected_verdict"] in {"allow", "nudge", "review", "block"}
    families = {f for r in records for f in r["families"]}
    assert families >= REQUIRED
    assert sum(r["kind"] == "relay" for r in records) >= 10


def test_per_family_precision_and_recall(report: dict) -> None:  # type: ignore[type-arg]
    low = {
        fam: (v["precision"], v["recall"])
        for fam, v in report["families"].items()
        if v["precision"] < 0.9 or v["recall"] < 0.9
    }
    assert not low, (low, report["errors"])
    assert set(report["families"]) >= REQUIRED


def test_verdicts_match_the_labels(report: dict) -> None:  # type: ignore[type-arg]
    assert report["verdict_accuracy"] >= 0.95, report["errors"]

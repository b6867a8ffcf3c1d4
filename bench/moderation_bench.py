"""Moderation benchmark: posts/s on one core, Presidio side by side, per-family P/R.

Usage: ``.venv/bin/python bench/moderation_bench.py [--posts 20000] [--rounds 3]``
Prints one JSON object on stdout (progress goes to stderr).

* Posts are the labelled evaluation corpus repeated up to ``--posts``.
* ``posts_per_s``: default charter, stateless (``history=None``), best of ``--rounds``.
* ``posts_per_s_with_history``: same with an ``InMemoryPostHistory`` (MinHash per post,
  near-duplicate, burst and template checks), each post recorded.
* ``presidio_posts_per_s``: presidio-analyzer with its predefined *pattern* recognizers
  only (no spaCy model: a no-op NLP engine), the same posts, best of ``--rounds``.
  ``presidio_pii_posts_per_s`` is Presidio limited to the 4 recognizers that overlap our
  personal-data detector (email, phone, IBAN, credit card).
Every figure is measured in this one process, so on this one core.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "unit" / "moderation" / "corpus" / "eval.jsonl"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pin_one_core() -> None:
    # Measure on ONE core even on a multi-core machine.
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _best_rate(run: Callable[[], None], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        gc.collect()
        # CPU time of this (single-threaded) process: posts per core-second, robust to the
        # other work sharing this machine (wall time under load measures the neighbours).
        t0 = time.process_time()
        run()
        best = min(best, time.process_time() - t0)
    return n / best


def _presidio(pii_only: bool) -> Any:
    """A Presidio AnalyzerEngine with pattern recognizers only, fully offline."""
    import tldextract

    # Presidio's e-mail recognizer calls tldextract, which would fetch the public suffix
    # list over the network; use the snapshot bundled with tldextract instead.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # type: ignore[assignment]

    from presidio_analyzer import AnalyzerEngine, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        PhoneRecognizer,
    )

    class NoNlpEngine(NlpEngine):
        """Returns empty artifacts: no spaCy model is needed (nor downloaded)."""

        def __init__(self) -> None:
            pass

        def load(self) -> None:
            pass

        def is_loaded(self) -> bool:
            return True

        def process_text(self, text: str, language: str) -> Any:
            return NlpArtifacts(
                entities=[],
                tokens=[],  # type: ignore[arg-type]
                tokens_indices=[],
                lemmas=[],
                nlp_engine=self,
                language=language,
            )

        def process_batch(self, texts: Any, language: str, **_: Any) -> Iterator[Any]:  # type: ignore[override]
            for t in texts:
                yield t, self.process_text(t, language)

        def is_stopword(self, word: str, language: str) -> bool:
            return False

        def is_punct(self, word: str, language: str) -> bool:
            return False

        def get_supported_entities(self) -> list[str]:
            return []

        def get_supported_languages(self) -> list[str]:
            return ["en"]

    nlp = NoNlpEngine()
    registry = RecognizerRegistry(supported_languages=["en"])
    if pii_only:
        for rec in (
            CreditCardRecognizer(),
            EmailRecognizer(),
            IbanRecognizer(),
            PhoneRecognizer(supported_regions=("FR", "GB", "US")),
        ):
            registry.add_recognizer(rec)
    else:
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
        # Keep pattern recognizers (PhoneRecognizer is phonenumbers-based, no model);
        # drop the spaCy NER recognizer.
        registry.recognizers = [
            r
            for r in registry.recognizers
            if isinstance(r, PatternRecognizer) or type(r).__name__ == "PhoneRecognizer"
        ]
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--posts", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-presidio", action="store_true")
    args = ap.parse_args()
    _pin_one_core()

    sys.path.insert(0, str(ROOT / "services" / "moderation"))
    from portevoix_moderation.charter import CharterEngine, InMemoryPostHistory, default_charter
    from portevoix_moderation.charter.evaluation import evaluate, read_jsonl, record_to_post

    records = read_jsonl(CORPUS)
    reps = -(-args.posts // len(records))
    stream = (records * reps)[: args.posts]
    posts = [record_to_post(r, post_id=f"bench:{i}") for i, r in enumerate(stream)]
    texts = [p.text for p in posts]
    n = len(posts)

    charter = default_charter()
    engine = CharterEngine(charter)
    engine.warm_up(language_model=True)  # no lazy load inside a timed round

    def run_stateless() -> None:
        check = engine.check
        for p in posts:
            check(p, record=False)

    def run_history() -> None:
        # Authors rotate over 200 ambassadors, one post a second: a realistic stream.
        from dataclasses import replace
        from datetime import UTC, datetime, timedelta

        e = CharterEngine(charter, history=InMemoryPostHistory())
        t0 = datetime(2026, 6, 1, 8, tzinfo=UTC)
        for i, p in enumerate(timed):
            e.check(replace(p, ambassador_id=f"a{i % 200}", occurred_at=t0 + timedelta(seconds=i)))

    timed = posts
    _log(f"moderation: {n} posts, {args.rounds} rounds")
    rate = _best_rate(run_stateless, n, args.rounds)
    _log(f"  stateless: {rate:,.0f} posts/s")
    rate_hist = _best_rate(run_history, n, max(1, args.rounds - 1))
    _log(f"  with history: {rate_hist:,.0f} posts/s")

    result: dict[str, Any] = {
        "posts_per_s": round(rate, 1),
        "posts_per_s_with_history": round(rate_hist, 1),
        "rules": len(charter.rules),
    }
    if not args.no_presidio:
        try:
            presidio_full = _presidio(pii_only=False)
            presidio_pii = _presidio(pii_only=True)
        except Exception as exc:  # report why instead of failing the whole benchmark
            _log(f"presidio unavailable: {type(exc).__name__}: {exc}")
        else:
            for a in (presidio_full, presidio_pii):
                a.analyze(texts[0], language="en")

            def run_full() -> None:
                for t in texts:
                    presidio_full.analyze(t, language="en")

            def run_pii() -> None:
                for t in texts:
                    presidio_pii.analyze(t, language="en")

            p_full = _best_rate(run_full, n, args.rounds)
            _log(f"  presidio (pattern recognizers): {p_full:,.0f} posts/s")
            p_pii = _best_rate(run_pii, n, args.rounds)
            _log(f"  presidio (4 PII recognizers): {p_pii:,.0f} posts/s")
            result.update(
                presidio_posts_per_s=round(p_full, 1),
                presidio_recognizers=len(presidio_full.registry.recognizers),
                ratio_vs_presidio=round(rate / p_full, 2),
                presidio_pii_posts_per_s=round(p_pii, 1),
                ratio_vs_presidio_pii=round(rate / p_pii, 2),
            )

    ev = evaluate(charter, records)
    for fam, v in ev["families"].items():
        result[f"precision_{fam}"] = v["precision"]
        result[f"recall_{fam}"] = v["recall"]
    result["verdict_accuracy"] = ev["verdict_accuracy"]
    load = os.getloadavg()[0]
    notes = (
        f"{n} posts (labelled corpus repeated), best of {args.rounds} rounds of CPU time "
        f"(process_time), pinned to one core; charter {charter.version}; load average {load:.2f} on "
        f"{os.cpu_count()} cores while measuring (other work shares the machine). History: "
        "InMemoryPostHistory, 200 authors, one post a second (each text recurs ~50 times "
        "in the window: a worst case for the burst scans). Since 2026-11-21: MinHash "
        "signatures computed in the project (datasketch-identical values, 3x cheaper, no "
        "scipy import), an exact pigeonhole band index (13 bands at 0.8) for bursts, one "
        "vectorised comparison with the author's recent posts, the template answer shared "
        "between rules; language by a 7-language stop-word vote, the model only for posts "
        "showing a foreign language the vote cannot settle (none in this corpus). "
        "Presidio: pattern recognizers only, no spaCy model."
    )
    targets = {"posts_per_s": [">=", 5000], "posts_per_s_with_history": [">=", 5000]}
    print(
        json.dumps(
            {"moderation": {"results": result, "targets": targets, "notes": notes}},
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()

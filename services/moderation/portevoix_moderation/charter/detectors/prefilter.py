"""Required-literal prefilter for regexes.

Python's ``re`` tries a pattern like ``\\b(?:greves?|plan social|...)`` at every position of
every post. From the parsed pattern we derive literals that any match must contain; one
Aho-Corasick pass over the folded post then tells which regexes are worth running.
"""

from __future__ import annotations

import importlib
from typing import Any

# The regex parser of the standard library (private but stable since 3.11; the public
# ``sre_parse`` alias is deprecated).
sre_c: Any = importlib.import_module("re._constants")
sre_parse: Any = importlib.import_module("re._parser")

_REPEATS = {sre_c.MAX_REPEAT, sre_c.MIN_REPEAT}
if hasattr(sre_c, "POSSESSIVE_REPEAT"):
    _REPEATS.add(sre_c.POSSESSIVE_REPEAT)

Need = frozenset[str] | None  # None: no literal is required (always run the regex)


def _score(need: Need) -> int:
    return min((len(s) for s in need), default=0) if need else 0


def _seq(items: Any) -> Need:
    best: Need = None
    run: list[str] = []

    def close() -> None:
        nonlocal best, run
        if run:
            cand = frozenset({"".join(run)})
            if _score(cand) > _score(best):
                best = cand
            run = []

    for op, av in items:
        if op == sre_c.LITERAL:
            run.append(chr(av).lower())
            continue
        close()
        cand = _item(op, av)
        if cand is not None and _score(cand) > _score(best):
            best = cand
    close()
    return best


def _item(op: Any, av: Any) -> Need:
    if op == sre_c.SUBPATTERN:
        return _seq(av[-1])
    if op == sre_c.BRANCH:
        out: set[str] = set()
        for alt in av[1]:
            need = _seq(alt)
            if need is None:
                return None
            out |= need
        return frozenset(out)
    if op in _REPEATS:
        lo, _hi, inner = av
        return _seq(inner) if lo >= 1 else None
    return None


def min_width(pattern: str) -> int:
    """Length of the shortest string the pattern can match."""
    return int(sre_parse.parse(pattern).getwidth()[0])


def required_literals(pattern: str, *, min_len: int = 2) -> Need:
    """Literals (lower case) one of which occurs in any match, or None if none is known."""
    need = _seq(sre_parse.parse(pattern))
    if need is None or _score(need) < min_len:
        return None
    return need

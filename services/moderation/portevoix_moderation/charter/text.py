"""Text normalisation shared by every detector.

Two views of a post are derived once per post:

* ``fold(text)``: lower case, accents stripped, typographic quotes unified. It is a 1:1
  character translation, so offsets in the folded text are offsets in the original.
* ``Skeleton``: the folded text with leetspeak undone, punctuation turned into spaces,
  spaced-out letters joined (``c.o.n`` -> ``con``) and repeated characters collapsed
  (``connnnard`` -> ``conard``). Deletions are recorded so a hit can be mapped back to
  the original text.
"""

from __future__ import annotations

import bisect
import hashlib
import re
import unicodedata
from dataclasses import dataclass


def _build_fold_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for cp in range(0x41, 0x5B):
        table[cp] = chr(cp + 32)
    # Latin-1 supplement and Latin Extended-A/B: strip diacritics, keep one char per char.
    for cp in range(0xC0, 0x250):
        ch = chr(cp)
        base = "".join(
            c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)
        ).lower()
        if len(base) == 1 and base != ch:
            table[cp] = base
    extra = {
        "œ": "o",
        "Œ": "o",
        "æ": "a",
        "Æ": "a",
        "ß": "s",
        "ø": "o",
        "Ø": "o",
        "đ": "d",
        "ł": "l",
        "Ł": "l",
        "’": "'",
        "‘": "'",
        "ʼ": "'",
        "“": '"',
        "”": '"',
        "\u00a0": " ",
        "\u202f": " ",
        "\u2009": " ",
        # Cyrillic homoglyphs used to dodge word filters.
        "а": "a",
        "е": "e",
        "о": "o",
        "р": "p",
        "с": "c",
        "у": "y",
        "х": "x",
        "і": "i",
    }
    for k, v in extra.items():
        table[ord(k)] = v
    return table


def _as_list(table: dict[int, str], size: int = 0x2200) -> list[str]:
    # str.translate is ~2x faster with a list than with a dict; code points past the end
    # raise IndexError, which translate treats as "keep the character".
    out = [chr(i) for i in range(size)]
    for k, v in table.items():
        if k < size:
            out[k] = v
    return out


_FOLD = _as_list(_build_fold_table())


def fold(text: str) -> str:
    """Lower-case and strip accents without changing the length of the text."""
    return text.translate(_FOLD)


_LEET = {
    ord("0"): "o",
    ord("1"): "i",
    ord("3"): "e",
    ord("4"): "a",
    ord("5"): "s",
    ord("7"): "t",
    ord("@"): "a",
    ord("$"): "s",
    ord("€"): "e",
}
_SEPARATORS = ".,;:!?'\"-_/\\()[]{}«»…–—·•~^`+=<>|*%&\t\n\r"
_SKELETON_MAP = dict(_LEET)
for _c in _SEPARATORS:
    _SKELETON_MAP[ord(_c)] = " "
_SKELETON_TABLE = _as_list(_SKELETON_MAP)

# Invisible characters (soft hyphen, zero-width space/joiners, BOM) split words for the eye
# of a filter but not for a reader: they are deleted before matching.
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
_SPACED_LETTERS = re.compile(r"(?<![a-z])(?:[a-z] +){2,}[a-z](?![a-z])")
_REPEATS = re.compile(r"(.)\1+")
_SPACES = re.compile(r" +")


class OffsetMap:
    """Maps indices of a text with deletions back to the text before the deletions."""

    __slots__ = ("_cum", "_deletions", "_new_pos")

    def __init__(self, deletions: list[tuple[int, int]]) -> None:
        # deletions: sorted (start, end) ranges removed from the source text. The lookup
        # tables are built on first use: most posts never map a hit back.
        self._deletions = deletions
        self._new_pos: list[int] | None = None
        self._cum: list[int] = []

    def _build(self) -> list[int]:
        new_pos: list[int] = []
        removed = 0
        for start, end in self._deletions:
            new_pos.append(start - removed)
            removed += end - start
            self._cum.append(removed)
        self._new_pos = new_pos
        return new_pos

    def to_source(self, index: int) -> int:
        new_pos = self._new_pos if self._new_pos is not None else self._build()
        i = bisect.bisect_right(new_pos, index) - 1
        return index if i < 0 else index + self._cum[i]


def _delete(text: str, deletions: list[tuple[int, int]]) -> str:
    parts: list[str] = []
    prev = 0
    for start, end in deletions:
        parts.append(text[prev:start])
        prev = end
    parts.append(text[prev:])
    return "".join(parts)


@dataclass(slots=True)
class Skeleton:
    """A matching view of a post; ``source`` is the folded text it was derived from."""

    text: str
    source: str
    maps: tuple[OffsetMap, ...]

    def to_source(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) range of the skeleton to the original/folded text."""
        s, e = start, end - 1
        for m in reversed(self.maps):
            s, e = m.to_source(s), m.to_source(e)
        e += 1
        # A collapsed run at the end of a hit belongs to the hit.
        src = self.source
        while e < len(src) and src[e] == src[e - 1] and src[e].isalpha():
            e += 1
        return s, e


def skeleton(folded: str) -> Skeleton:
    """Build the obfuscation-resistant view of an already folded text."""
    text = folded.translate(_SKELETON_TABLE)
    maps: list[OffsetMap] = []
    invisible = [(m.start(), m.end()) for m in _INVISIBLE.finditer(text)]
    if invisible:
        text = _delete(text, invisible)
        maps.append(OffsetMap(invisible))
    spaced = [
        (m.start() + i, m.start() + i + 1)
        for m in _SPACED_LETTERS.finditer(text)
        for i, ch in enumerate(m.group())
        if ch == " "
    ]
    if spaced:
        text = _delete(text, spaced)
        maps.append(OffsetMap(spaced))
    runs = [(m.start() + 1, m.end()) for m in _REPEATS.finditer(text)]
    if runs:
        text = _delete(text, runs)
        maps.append(OffsetMap(runs))
    return Skeleton(text=text, source=folded, maps=tuple(maps))


def skeleton_of_entry(entry: str) -> str:
    """Normalise a lexicon entry exactly like post text, then trim spaces."""
    return _SPACES.sub(" ", skeleton(fold(entry)).text).strip()


_WS = re.compile(r"\s+")
_WS_TO_FIX = re.compile(r"\s\s|[^\S ]")  # only rewrite when whitespace is not single spaces


def content_hash(text: str) -> str:
    """sha256 of the NFC, whitespace-collapsed text: stable across cosmetic edits."""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    normal = _WS.sub(" ", text).strip() if _WS_TO_FIX.search(text) else text.strip()
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


_WORD = re.compile(r"[a-z0-9]+")


def words(folded: str) -> list[str]:
    return _WORD.findall(folded)

"""Word lists (Aho-Corasick over the obfuscation-resistant skeleton) and regex lists."""

from __future__ import annotations

import re
from pathlib import Path

import ahocorasick

from ..context import Hit, PostContext
from ..text import fold, skeleton_of_entry
from .base import CompileContext, DetectorFn, Params, detector
from .prefilter import min_width, required_literals

_LEET_ALNUM = str.maketrans("01345@$7", "oieasast")


def _letters(text: str) -> int:
    return sum(1 for c in text.translate(_LEET_ALNUM) if c.isalnum())


Candidate = tuple[int, int, int, bool]  # skeleton start, end, letters needed, prefix entry


class LexiconBank:
    """One Aho-Corasick automaton for every word list of a charter.

    Each post's skeleton is scanned once (result cached on the post context) instead of
    once per list; each list then only post-processes its own candidates."""

    def __init__(self) -> None:
        self._auto = ahocorasick.Automaton()
        self._count = 0
        self._ready = False

    def new_id(self) -> int:
        self._count += 1
        return self._count - 1

    def add(self, lex_id: int, key: str, prefix: bool, need: int) -> None:
        # Plural "s" is accepted on words of 4+ letters ("connards", "idiots") but not on
        # short ones where it makes another word ("cons" as in "pros and cons").
        plural = need >= 4 and " " not in key
        prev = self._auto.get(key, ())
        self._auto.add_word(key, (*prev, (lex_id, len(key), prefix, need, plural)))
        self._ready = False

    def finalize(self) -> None:
        if len(self._auto) and not self._ready:
            self._auto.make_automaton()
            self._ready = True

    def scan(self, ctx: PostContext) -> dict[int, list[Candidate]]:
        cached: dict[int, list[Candidate]] | None = ctx.cache.get(self)
        if cached is not None:
            return cached
        self.finalize()
        out: dict[int, list[Candidate]] = {}
        if self._ready:
            t = ctx.skeleton.text
            n = len(t)
            for end_idx, values in self._auto.iter(t):
                for lex_id, length, prefix, need, plural in values:
                    start, end = end_idx - length + 1, end_idx + 1
                    if start > 0 and t[start - 1].isalnum():
                        continue
                    if (
                        plural
                        and end < n
                        and t[end] == "s"
                        and (end + 1 == n or not t[end + 1].isalnum())
                    ):
                        end += 1
                    if not prefix and end < n and t[end].isalnum():
                        continue
                    out.setdefault(lex_id, []).append((start, end, need, prefix))
        ctx.cache[self] = out
        return out


class CompiledLexicon:
    """A word list: whole-word by default, ``word*`` matches any word starting with ``word``.

    Entries and posts share the same normalisation (case, accents, leetspeak, separators,
    repeated letters). Because repeated letters are collapsed, a hit must also have at least
    as many letters as the entry: ``as`` does not match ``ass``, ``cône`` not ``conne``.
    """

    def __init__(
        self, name: str, entries: list[str], allow: list[str], bank: LexiconBank | None = None
    ) -> None:
        self.name = name
        self._bank = bank or LexiconBank()
        self._id = self._bank.new_id()
        keys: dict[str, tuple[bool, int]] = {}
        for raw in entries:
            prefix = raw.endswith("*")
            entry = raw.rstrip("*").strip()
            key = skeleton_of_entry(entry)
            if not key:
                continue
            need = _letters(fold(entry))
            if key in keys:
                prefix = prefix or keys[key][0]
                need = min(need, keys[key][1])
            keys[key] = (prefix, need)
        for key, (prefix, need) in keys.items():
            self._bank.add(self._id, key, prefix, need)
        self.size = len(keys)
        self._allow_words = {fold(a).strip() for a in allow if " " not in a.strip()}
        phrases = [skeleton_of_entry(a) for a in allow if " " in a.strip()]
        self._allow = ahocorasick.Automaton()
        for p in phrases:
            self._allow.add_word(p, len(p))
        self._has_phrases = bool(phrases)
        if phrases:
            self._allow.make_automaton()

    @property
    def bank_id(self) -> int:
        return self._id

    def find(self, ctx: PostContext) -> list[Hit]:
        found = self._bank.scan(ctx).get(self._id)
        if not found:
            return []
        sk = ctx.skeleton
        allowed = self._allowed_ranges(sk.text) if self._has_phrases else []
        src = ctx.text
        folded = ctx.folded
        hits: list[Hit] = []
        for start, end, need, prefix in found:
            if any(a <= start and end <= b for a, b in allowed):
                continue
            s, e = sk.to_source(start, end)
            if prefix:
                while e < len(folded) and folded[e].isalnum():
                    e += 1
            span = src[s:e]
            if not any(c.isalpha() for c in span) or _letters(folded[s:e]) < need:
                continue  # a bare number is not leetspeak; "as" is not "ass"
            if folded[s:e].strip() in self._allow_words:
                continue
            hits.append(Hit(s, e, span))
        return _outermost(hits)

    def _allowed_ranges(self, t: str) -> list[tuple[int, int]]:
        return [(end - length + 1, end + 1) for end, length in self._allow.iter(t)]


def _outermost(hits: list[Hit]) -> list[Hit]:
    """Drop hits inside a longer hit ("pute" inside "fils de pute")."""
    hits.sort(key=lambda h: (h.start or 0, -(h.end or 0)))
    out: list[Hit] = []
    for h in hits:
        if out and (h.end or 0) <= (out[-1].end or 0):
            continue
        out.append(h)
    return out


class PatternBank:
    """One Aho-Corasick automaton over the required literals of every gated regex."""

    def __init__(self) -> None:
        self._auto = ahocorasick.Automaton()
        self._ready = False
        self._count = 0

    def new_id(self) -> int:
        self._count += 1
        return self._count - 1

    def add(self, literal: str, key: tuple[int, int]) -> None:
        prev = self._auto.get(literal, ())
        self._auto.add_word(literal, (*prev, key))
        self._ready = False

    def finalize(self) -> None:
        if len(self._auto) and not self._ready:
            self._auto.make_automaton()
            self._ready = True

    def scan(self, ctx: PostContext) -> set[tuple[int, int]]:
        cached: set[tuple[int, int]] | None = ctx.cache.get(self)
        if cached is None:
            self.finalize()
            cached = set()
            if self._ready:
                for _, keys in self._auto.iter(ctx.folded):
                    cached.update(keys)
            ctx.cache[self] = cached
        return cached


class CompiledPatterns:
    """A regex list run on the folded text (or the original text, case-insensitive).

    Prefilters (see ``prefilter``): a regex runs only if one of its required literals
    occurs in the post and the post is at least as long as the shortest possible match."""

    def __init__(
        self,
        name: str,
        patterns: list[str],
        *,
        on_folded: bool = True,
        bank: PatternBank | None = None,
    ) -> None:
        self.name = name
        self._on_folded = on_folded
        self._bank = bank or PatternBank()
        self._id = self._bank.new_id()
        self._always: list[tuple[re.Pattern[str], int]] = []
        self._gated: list[tuple[re.Pattern[str], int]] = []
        for p in patterns:
            try:
                rx = re.compile(p, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"bad regex {p!r}: {exc}") from None
            min_len = min_width(p)
            need = required_literals(p) if on_folded else None
            if need is None or not all(lit.isascii() for lit in need):
                self._always.append((rx, min_len))
                continue
            for lit in need:
                self._bank.add(lit, (self._id, len(self._gated)))
            self._gated.append((rx, min_len))

    @property
    def gated_only(self) -> bool:
        """True when every regex has a literal prefilter."""
        return not self._always

    def find(self, ctx: PostContext) -> list[Hit]:
        hay = ctx.folded if self._on_folded else ctx.text
        regexes = self._always
        if self._gated:
            keys = self._bank.scan(ctx)
            if keys:
                me = self._id
                regexes = regexes + [g for i, g in enumerate(self._gated) if (me, i) in keys]
        text = ctx.text
        n = len(hay)
        return [
            Hit(m.start(), m.end(), text[m.start() : m.end()])
            for rx, min_len in regexes
            if n >= min_len
            for m in rx.finditer(hay)
        ]


def read_lexicon_file(name: str, base_dirs: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Lines of a lexicon file: ``#`` comments, ``!entry`` for the allow-list."""
    for base in base_dirs:
        path = Path(base) / name
        if path.is_file():
            words: list[str] = []
            allow: list[str] = []
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                (allow if line.startswith("!") else words).append(line.lstrip("!").strip())
            return words, allow
    raise ValueError(f"lexicon file {name!r} not found in {', '.join(base_dirs)}")


def compile_named_lexicon(cctx: CompileContext, name: str) -> CompiledLexicon:
    spec = cctx.charter.lexicons.get(name)
    if spec is None:
        known = ", ".join(sorted(cctx.charter.lexicons)) or "none"
        raise ValueError(f"unknown lexicon {name!r} (known: {known})")
    if spec.kind != "words":
        raise ValueError(f"lexicon {name!r} is a regex list; use the 'patterns' detector")
    words = list(spec.words)
    allow = list(spec.allow)
    for f in spec.files:
        w, a = read_lexicon_file(f, cctx.base_dirs)
        words += w
        allow += a
    return CompiledLexicon(name, words, allow, cctx.bank)


def compile_patterns(cctx: CompileContext, name: str) -> CompiledPatterns:
    spec = cctx.charter.lexicons.get(name)
    if spec is None:
        raise ValueError(f"unknown lexicon {name!r}")
    if spec.kind != "regex":
        raise ValueError(f"lexicon {name!r} is a word list; use the 'lexicon' detector")
    patterns = list(spec.patterns)
    for f in spec.files:
        patterns += read_lexicon_file(f, cctx.base_dirs)[0]
    return CompiledPatterns(name, patterns, bank=cctx.pattern_bank)


class LexiconParams(Params):
    lexicons: list[str]


@detector("lexicon", "lexicon", LexiconParams)
def lexicon_detector(params: LexiconParams, cctx: CompileContext) -> DetectorFn:
    """Fires on any whole-word entry of the named word lists."""
    compiled = [cctx.lexicon(name) for name in params.lexicons]
    bank = cctx.bank
    ids = frozenset(lex.bank_id for lex in compiled)

    def check(ctx: PostContext) -> list[Hit] | None:
        found = bank.scan(ctx)
        if not found or ids.isdisjoint(found):
            return None  # the common case: no candidate at all for these lists
        hits = [h for lex in compiled for h in lex.find(ctx)]
        return hits or None

    return check


class PatternsParams(Params):
    lexicons: list[str]


@detector("patterns", "lexicon", PatternsParams)
def patterns_detector(params: PatternsParams, cctx: CompileContext) -> DetectorFn:
    """Fires on any regex of the named regex lists (run on the folded text)."""
    compiled = [compile_patterns(cctx, name) for name in params.lexicons]
    bank = cctx.pattern_bank
    gated_only = all(p.gated_only for p in compiled)

    def check(ctx: PostContext) -> list[Hit] | None:
        if gated_only and not bank.scan(ctx):
            return None
        hits = [h for p in compiled for h in p.find(ctx)]
        return hits or None

    return check


class RegexParams(Params):
    pattern: str
    target: str = "folded"


@detector("regex", "regex", RegexParams)
def regex_detector(params: RegexParams, cctx: CompileContext) -> DetectorFn:
    """Fires on a regex; ``target: folded`` (default: lower case, no accents) or ``text``."""
    if params.target not in ("folded", "text"):
        raise ValueError("'target' must be 'folded' or 'text'")
    compiled = CompiledPatterns(
        "regex", [params.pattern], on_folded=params.target == "folded", bank=cctx.pattern_bank
    )

    def check(ctx: PostContext) -> list[Hit] | None:
        return compiled.find(ctx) or None

    return check
